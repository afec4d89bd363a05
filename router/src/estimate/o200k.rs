//! A token counter for `o200k_base` (the encoding of OpenAI's GPT-4o, GPT-4.1,
//! GPT-5 and o-series models) that counts exactly what tiktoken's
//! `encode_ordinary(text).len()` does, in a fraction of its memory: it keeps
//! the vocabulary compact (see [`vocab`](super::vocab)), never decodes, and
//! knows no special tokens.
//!
//! Counting follows tiktoken: the text is cut into pieces by the encoding's
//! pattern; a piece that is a token counts one; any other piece is
//! byte-pair merged (the adjacent pair whose concatenation has the lowest
//! rank is merged first, the leftmost on a tie, until no pair is a token) and
//! counts as many tokens as parts remain.

use std::collections::BinaryHeap;

use fancy_regex::Regex;

use super::vocab::Vocab;

/// How `o200k_base` cuts text into pieces before merging (tiktoken's
/// `O200K_BASE_PAT_STR`): words with their leading punctuation and trailing
/// contractions, numbers of up to three digits, punctuation runs, newlines,
/// and whitespace (whose last character joins the word that follows it).
pub(super) const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// Pieces shorter than this are merged by scanning an array on the stack;
/// longer ones (long runs of spaces or punctuation, mostly) with a heap, so
/// a piece's cost stays `n log n`. tiktoken switches at the same length.
const SMALL_PIECE: usize = 100;

/// Counts `o200k_base` tokens.
pub(super) struct O200k {
    pattern: Regex,
    vocab: Vocab,
}

impl O200k {
    /// Compiles the pattern and indexes the vocabulary.
    pub(super) fn new() -> Result<Self, String> {
        Ok(Self {
            pattern: Regex::new(PATTERN).map_err(|err| err.to_string())?,
            vocab: Vocab::o200k()?,
        })
    }

    /// The number of tokens in `text`, as `encode_ordinary(text).len()`.
    /// Fails only where tiktoken panics: when the pattern's backtracking
    /// gives up on a pathological text.
    pub(super) fn count(&self, text: &str) -> Result<usize, fancy_regex::Error> {
        if text.is_ascii() {
            // Most prompts and answers: cut by hand, as the pattern would.
            return Ok(ascii_pieces(text.as_bytes())
                .map(|piece| self.count_piece(piece))
                .sum());
        }
        let mut tokens = 0;
        for piece in self.pattern.find_iter(text) {
            tokens += self.count_piece(piece?.as_str().as_bytes());
        }
        Ok(tokens)
    }

    /// The tokens of one piece of the pattern's.
    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.is_empty() {
            0
        } else if self.vocab.rank(piece).is_some() {
            1
        } else if piece.len() < SMALL_PIECE {
            self.merge_small(piece)
        } else {
            self.merge_large(piece)
        }
    }

    /// The rank of `piece[start..end]`, or `u32::MAX` when it is no token.
    #[inline]
    fn rank(&self, piece: &[u8], start: usize, end: usize) -> u32 {
        piece
            .get(start..end)
            .and_then(|bytes| self.vocab.rank(bytes))
            .unwrap_or(u32::MAX)
    }

    /// Byte-pair merges a piece of `2..SMALL_PIECE` bytes and counts the
    /// parts left. Part `i` is `parts[i]`: where it starts in the low 32
    /// bits, and above them the rank of it joined with part `i + 1`; an
    /// entry past the last part marks the end. The lowest entry is then the
    /// lowest-ranked pair, the leftmost of equals, as tiktoken merges.
    fn merge_small(&self, piece: &[u8]) -> usize {
        const NONE: u64 = (u32::MAX as u64) << 32;
        let n = piece.len().min(SMALL_PIECE);
        let mut parts = [NONE; SMALL_PIECE + 1];
        for (i, part) in parts.iter_mut().enumerate().take(n + 1) {
            let rank = if i + 2 <= n {
                self.rank(piece, i, i + 2)
            } else {
                u32::MAX
            };
            *part = u64::from(rank) << 32 | i as u64;
        }
        let start = |part: u64| (part & 0xffff_ffff) as usize;
        let mut len = n;
        loop {
            let mut best = (NONE, 0);
            for (i, &part) in parts[..len.saturating_sub(1)].iter().enumerate() {
                if part < best.0 {
                    best = (part, i);
                }
            }
            if best.0 >= NONE {
                return len;
            }
            // Join part `i` and part `i + 1`, then rank the new part's pairs.
            let i = best.1;
            parts.copy_within(i + 2..=len, i + 1);
            len -= 1;
            let pair = |parts: &[u64], j: usize| {
                let rank = if j + 2 <= len {
                    self.rank(piece, start(parts[j]), start(parts[j + 2]))
                } else {
                    u32::MAX
                };
                u64::from(rank) << 32 | (parts[j] & 0xffff_ffff)
            };
            parts[i] = pair(&parts, i);
            if i > 0 {
                parts[i - 1] = pair(&parts, i - 1);
            }
        }
    }

    /// Byte-pair merges a long piece and counts the parts left, with the
    /// candidate merges in a heap (lowest rank first, then leftmost) and the
    /// parts as a linked list over byte positions.
    fn merge_large(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        // For the part starting at byte `i`: where it ends, where the part
        // before it starts, and the rank of it joined with the next part.
        let mut end: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut pair_rank: Vec<u32> = (0..n).map(|i| self.rank(piece, i, i + 2)).collect();
        let mut heap: BinaryHeap<Merge> = (pair_rank.iter().enumerate())
            .filter(|&(_, &rank)| rank != u32::MAX)
            .map(|(start, &rank)| Merge { rank, start })
            .collect();
        let mut parts = n;
        while let Some(Merge { rank, start }) = heap.pop() {
            if pair_rank[start] != rank {
                // A merge a neighbour's merge has since replaced.
                continue;
            }
            let right = end[start];
            let right_end = end[right];
            end[start] = right_end;
            pair_rank[right] = u32::MAX;
            parts -= 1;
            if right_end < n {
                prev[right_end] = start;
                let rank = self.rank(piece, start, end[right_end]);
                pair_rank[start] = rank;
                if rank != u32::MAX {
                    heap.push(Merge { rank, start });
                }
            } else {
                pair_rank[start] = u32::MAX;
            }
            if start > 0 {
                let before = prev[start];
                let rank = self.rank(piece, before, right_end);
                pair_rank[before] = rank;
                if rank != u32::MAX {
                    heap.push(Merge {
                        rank,
                        start: before,
                    });
                }
            }
        }
        parts
    }
}

/// ASCII text cut into the pieces [`PATTERN`] cuts it into, without the
/// regex (which costs several times the merging on everyday text). In
/// ASCII the pattern's letter classes are `A-Z` (upper case) and `a-z`
/// (lower case; no ASCII character is titlecase, modifier, other letter or
/// mark), its digits `0-9`, and `\s` is tab, newline, vertical tab, form
/// feed, carriage return and space. Each function below is one of the
/// pattern's alternatives, tried in its order at each position, with the
/// backtracking its quantifiers imply; a test holds the two to the same
/// pieces on random ASCII.
fn ascii_pieces(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let len = ascii_piece(&text[at..]);
        let piece = &text[at..at + len];
        at += len;
        Some(piece)
    })
}

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `[^\r\n\p{L}\p{N}]`: what may lead a word.
fn is_word_lead(b: u8) -> bool {
    !(b == b'\r' || b == b'\n' || b.is_ascii_alphanumeric())
}

/// The run of bytes at the start of `s` that `pred` accepts.
fn run(s: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    s.iter().take_while(|&&b| pred(b)).count()
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at the start of `s`: its length.
fn contraction(s: &[u8]) -> usize {
    if s.first() != Some(&b'\'') {
        return 0;
    }
    let lower = |i: usize| s.get(i).map(u8::to_ascii_lowercase);
    match (lower(1), lower(2)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => 2,
        (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 3,
        _ => 0,
    }
}

/// The length of the piece at the start of non-empty ASCII `s`.
fn ascii_piece(s: &[u8]) -> usize {
    // 1: lead? [A-Z]* [a-z]+ contraction? — the lead is taken when what
    // follows it matches, else the word is tried without it.
    // 2: lead? [A-Z]+ [a-z]* contraction?
    for lead in [1, 0] {
        if lead == 1 && !is_word_lead(s[0]) {
            continue;
        }
        let rest = &s[lead..];
        let upper = run(rest, |b| b.is_ascii_uppercase());
        let lower = run(&rest[upper..], |b| b.is_ascii_lowercase());
        if lower > 0 {
            let word = upper + lower;
            return lead + word + contraction(&rest[word..]);
        }
    }
    for lead in [1, 0] {
        if lead == 1 && !is_word_lead(s[0]) {
            continue;
        }
        let rest = &s[lead..];
        let upper = run(rest, |b| b.is_ascii_uppercase());
        if upper > 0 {
            // [a-z]* after [A-Z]+ is empty here: alternative 1 took any.
            return lead + upper + contraction(&rest[upper..]);
        }
    }
    // 3: \p{N}{1,3}
    let digits = run(s, |b| b.is_ascii_digit()).min(3);
    if digits > 0 {
        return digits;
    }
    // 4: ' '? [^\s\p{L}\p{N}]+ [\r\n/]*
    let other = |b: u8| !(is_space(b) || b.is_ascii_alphanumeric());
    for space in [usize::from(s[0] == b' '), 0] {
        let marks = run(&s[space..], other);
        if marks > 0 {
            let end = space + marks;
            return end + run(&s[end..], |b| matches!(b, b'\r' | b'\n' | b'/'));
        }
    }
    // Whitespace from here on: W is the run of it.
    let w = run(s, is_space);
    // 5: \s*[\r\n]+ — through W's last newline.
    if let Some(last) = s[..w].iter().rposition(|&b| b == b'\r' || b == b'\n') {
        return last + 1;
    }
    // 6: \s+(?!\S) — all of W at the end of the text, else all but its
    // last character (which joins the word after it).
    if w == s.len() {
        return w;
    }
    if w >= 2 {
        return w - 1;
    }
    // 7: \s+
    w.max(1)
}

/// A candidate merge of the part starting at `start` with the next one.
/// Ordered so the heap's greatest is the lowest rank, then the leftmost.
#[derive(PartialEq, Eq)]
struct Merge {
    rank: u32,
    start: usize,
}

impl Ord for Merge {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.start.cmp(&self.start))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests;
