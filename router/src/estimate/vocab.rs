//! The `o200k_base` vocabulary, compact: every token's bytes once, in one
//! buffer that is part of the binary (`build.rs` writes it in rank order,
//! so a token's rank is its index, and where each token starts beside it),
//! and an open-addressing table from token bytes to rank built over it at
//! start: 2.75 MiB of plain arrays (a slot holds only the rank: the token's
//! bytes are found by the offsets the binary carries), no allocation per
//! token, nothing for decoding.
//!
//! The table is indexed rather than keyed by slices (a `HashMap<&[u8], u32>`
//! would need the buffer borrowed for `'static` and 24 bytes a slot, and it
//! hashes with SipHash unless given another hasher). A lookup hashes the
//! bytes to a slot and probes forward, reading a byte-wide tag per slot
//! until one matches, so a string that is no token (most lookups while
//! merging) is settled in a half-megabyte array that stays in cache; only a
//! matching tag reads the slot's rank and compares the bytes it names. Two-byte strings, the first pairs every merge ranks, have a
//! direct table instead.

/// Every token's bytes, back to back in rank order.
static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k.bytes"));
/// Where each token starts in [`BYTES`], plus one past the last: `u32`s,
/// little-endian.
static OFFSETS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k.offsets"));

/// log2 of the table's slots: 2^19 slots for 200k tokens keeps the table
/// under 40% full, so a probe for a missing string (the common case while
/// merging) ends after one or two slots.
const SLOT_BITS: u32 = 19;
const SLOTS: usize = 1 << SLOT_BITS;
/// A rank no token has: "not a token" in the two-byte table.
const NO_RANK: u32 = u32::MAX;

/// The tokens and the tables that find them.
pub(super) struct Vocab {
    bytes: &'static [u8],
    /// Where each token starts in `bytes` (see [`OFFSETS`]).
    offsets: &'static [u8],
    /// Per slot, 0 when empty, else eight bits of the token's hash (never
    /// 0): probing reads only these until one matches, so a string that is
    /// no token costs a read or two of this half-megabyte array.
    tags: Box<[u8]>,
    /// Per slot: the token's rank (its bytes are `bytes[offsets[rank]..
    /// offsets[rank + 1]]`).
    ranks: Box<[u32]>,
    /// The rank of every two-byte string (or [`NO_RANK`]), indexed by the
    /// two bytes: merging starts by ranking every adjacent byte pair.
    pairs: Box<[u32]>,
}

impl Vocab {
    /// Indexes the vocabulary embedded in the binary.
    pub(super) fn o200k() -> Result<Self, String> {
        Self::new(BYTES, OFFSETS)
    }

    fn new(bytes: &'static [u8], offsets: &'static [u8]) -> Result<Self, String> {
        let tokens = (offsets.len() / 4).saturating_sub(1);
        if !offsets.len().is_multiple_of(4) || tokens == 0 || 2 * tokens > SLOTS {
            return Err(format!("vocabulary offsets of {} bytes", offsets.len()));
        }
        let offset = |i: usize| offset_at(offsets, i);
        let mut vocab = Self {
            bytes,
            offsets,
            tags: vec![0; SLOTS].into_boxed_slice(),
            ranks: vec![0; SLOTS].into_boxed_slice(),
            pairs: vec![NO_RANK; 1 << 16].into_boxed_slice(),
        };
        for rank in 0..tokens {
            let (Some(start), Some(end)) = (offset(rank), offset(rank + 1)) else {
                return Err(format!("token {rank} has no offsets"));
            };
            let token = bytes
                .get(start as usize..end as usize)
                .filter(|t| !t.is_empty() && t.len() <= usize::from(u8::MAX))
                .ok_or_else(|| format!("token {rank}: bytes {start}..{end}"))?;
            if vocab.rank(token).is_some() {
                return Err(format!("token {rank} repeats an earlier one"));
            }
            if let [a, b] = *token {
                vocab.pairs[usize::from(a) << 8 | usize::from(b)] = rank as u32;
            }
            let (mut slot, tag) = place(token);
            while vocab.tags[slot] != 0 {
                slot = (slot + 1) % SLOTS;
            }
            vocab.tags[slot] = tag;
            vocab.ranks[slot] = rank as u32;
        }
        Ok(vocab)
    }

    /// The rank of the token with these bytes, if they are one.
    #[inline]
    pub(super) fn rank(&self, bytes: &[u8]) -> Option<u32> {
        if let [a, b] = *bytes {
            let rank = self.pairs[usize::from(a) << 8 | usize::from(b)];
            return (rank != NO_RANK).then_some(rank);
        }
        let (mut slot, tag) = place(bytes);
        loop {
            match self.tags[slot] {
                0 => return None,
                t if t == tag => {
                    let rank = self.ranks[slot];
                    if self.token(rank) == Some(bytes) {
                        return Some(rank);
                    }
                }
                _ => {}
            }
            slot = (slot + 1) % SLOTS;
        }
    }
}

impl Vocab {
    /// The bytes of the token of this rank.
    #[inline]
    fn token(&self, rank: u32) -> Option<&'static [u8]> {
        let rank = rank as usize;
        let start = offset_at(self.offsets, rank)? as usize;
        let end = offset_at(self.offsets, rank + 1)? as usize;
        self.bytes.get(start..end)
    }
}

/// The `i`th little-endian `u32` of an offsets table.
#[inline]
fn offset_at(offsets: &[u8], i: usize) -> Option<u32> {
    let at = offsets.get(4 * i..4 * i + 4)?;
    Some(u32::from_le_bytes([at[0], at[1], at[2], at[3]]))
}

/// The first slot to probe for these bytes, and the tag their slot holds.
#[inline]
fn place(bytes: &[u8]) -> (usize, u8) {
    let hash = hash(bytes);
    let slot = (hash >> (64 - SLOT_BITS)) as usize;
    // Eight more bits of the hash, with 0 (an empty slot) moved to 1.
    let tag = (hash >> (64 - SLOT_BITS - 8)) as u8;
    (slot, tag.max(1))
}

/// A fast hash of a short byte string (tokens average seven bytes): the
/// string is read as at most a few words, overlapping where its length is
/// not a multiple of a word (as wyhash reads short keys, with no loop and no
/// partial copy), mixed with its length, and one multiply at the end
/// spreads the result into the high bits that choose the slot and the tag.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let len = bytes.len();
    let mix = |h: u64, word: u64| (h.rotate_left(26) ^ word).wrapping_mul(K);
    let h = match len {
        0 => 0,
        1..=3 => {
            let word = u64::from(bytes[0]) << 16 | u64::from(bytes[len / 2]) << 8;
            mix(len as u64, word | u64::from(bytes[len - 1]))
        }
        4..=8 => mix(
            len as u64,
            u64::from(u32_at(bytes, 0)) << 32 | u64::from(u32_at(bytes, len - 4)),
        ),
        _ => {
            let mut h = len as u64;
            let mut at = 0;
            while at + 8 < len {
                h = mix(h, u64_at(bytes, at));
                at += 8;
            }
            mix(h, u64_at(bytes, len - 8))
        }
    };
    // The high bits of a product depend on all the bits of its factors.
    (h ^ (h >> 29)).wrapping_mul(K)
}

#[inline]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[inline]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32_at(bytes, at)) | u64::from(u32_at(bytes, at + 4)) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_is_found_at_its_rank_and_other_bytes_are_not() {
        let vocab = Vocab::o200k().unwrap();
        let tokens = OFFSETS.len() / 4 - 1;
        assert_eq!(tokens, 199_998);
        for rank in 0..tokens {
            let at = |i: usize| u32::from_le_bytes(OFFSETS[4 * i..4 * i + 4].try_into().unwrap());
            let token = &BYTES[at(rank) as usize..at(rank + 1) as usize];
            assert_eq!(vocab.rank(token), Some(rank as u32), "{token:?}");
        }
        for byte in 0..=255u8 {
            assert!(vocab.rank(&[byte]).is_some(), "byte {byte}");
        }
        assert_eq!(vocab.rank(b""), None);
        assert_eq!(vocab.rank(b"<|endoftext|>"), None);
        assert_eq!(vocab.rank(&[0xff, 0xfe, 0xfd, 0xfc]), None);
    }

    fn offsets(ends: &[u32]) -> &'static [u8] {
        let bytes: Vec<u8> = [0]
            .iter()
            .chain(ends)
            .flat_map(|e| e.to_le_bytes())
            .collect();
        Box::leak(bytes.into_boxed_slice())
    }

    #[test]
    fn a_small_vocabulary_is_indexed_by_rank() {
        let vocab = Vocab::new(b"abcabbc\xe6\x9c\xba", offsets(&[1, 2, 3, 5, 7, 10])).unwrap();
        for (bytes, rank) in [(&b"a"[..], 0), (b"b", 1), (b"c", 2), (b"ab", 3), (b"bc", 4)] {
            assert_eq!(vocab.rank(bytes), Some(rank));
        }
        assert_eq!(vocab.rank("机".as_bytes()), Some(5));
        assert_eq!(vocab.rank(b"ba"), None);
        assert_eq!(vocab.rank(b"abc"), None);
        assert_eq!(vocab.rank(b"d"), None);
    }

    #[test]
    fn a_malformed_vocabulary_is_refused() {
        // The same token twice.
        assert!(Vocab::new(b"abab", offsets(&[2, 4])).is_err());
        // An empty token; offsets past the bytes; offsets that go back.
        assert!(Vocab::new(b"ab", offsets(&[1, 1, 2])).is_err());
        assert!(Vocab::new(b"ab", offsets(&[1, 3])).is_err());
        assert!(Vocab::new(b"abc", offsets(&[2, 1, 3])).is_err());
        // No tokens, or offsets cut short.
        assert!(Vocab::new(b"", offsets(&[])).is_err());
        assert!(Vocab::new(b"ab", &[0, 0, 0, 0, 1, 0]).is_err());
    }
}
