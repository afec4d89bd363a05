//! Writes the `o200k_base` vocabulary the token counter embeds: every
//! ordinary token's bytes, in rank order, as one buffer (`o200k.bytes`) and
//! the offsets where each token starts, plus one past the last
//! (`o200k.offsets`, little-endian `u32`s). The counter indexes these at run
//! time; nothing else from the tokenizer crate reaches the binary.

use std::error::Error;
use std::path::PathBuf;

/// Ordinary tokens in `o200k_base`: ranks `0..TOKENS` are contiguous; the
/// special tokens (`<|endoftext|>` and `<|endofprompt|>`) come after.
const TOKENS: u32 = 199_998;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    let bpe = tiktoken_rs::o200k_base()?;
    let specials = bpe.special_tokens();

    let mut bytes = Vec::with_capacity(2 << 20);
    let mut offsets = Vec::with_capacity(4 * (TOKENS as usize + 1));
    offsets.extend_from_slice(&0u32.to_le_bytes());
    for rank in 0..TOKENS {
        let token = bpe.decode_bytes(&[rank])?;
        if token.is_empty() || specials.iter().any(|s| s.as_bytes() == token.as_slice()) {
            return Err(format!("rank {rank} is not an ordinary token").into());
        }
        bytes.extend_from_slice(&token);
        offsets.extend_from_slice(&u32::try_from(bytes.len())?.to_le_bytes());
    }
    // The ranks stop where the table says they do.
    if bpe.decode_bytes(&[TOKENS]).is_ok() {
        return Err(format!("o200k_base has an ordinary token past rank {TOKENS}").into());
    }

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("o200k.bytes"), bytes)?;
    std::fs::write(out.join("o200k.offsets"), offsets)?;
    Ok(())
}
