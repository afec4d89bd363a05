//! A JSON reader for the views of stream events: walks one event's data in
//! place, checking its syntax as `serde_json` does, and hands out the
//! members a view names (strings borrowed when they have no escapes, other
//! values as raw slices) while it skips the rest without building them.
//! It allocates nothing unless a string it hands out has escapes.
//!
//! The views read every event of every stream, where a generic
//! deserializer spent more than the rest of the relay together. Whatever
//! this reader accepts, `serde_json` reads the same way (a fuzz target
//! checks it); what it does not accept (an unusual shape) goes to the
//! codec's slower path, which reads the whole value.

use std::borrow::Cow;

/// How deep values may nest, as `serde_json` allows.
const MAX_DEPTH: usize = 128;

/// The bytes that end a run of plain string content: the closing quote,
/// an escape, and control characters (which JSON strings may not hold).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A cursor over one JSON text. Every method returns `None` where the text
/// is not what it expects; the caller then gives up on the whole text.
pub(super) struct Scan<'a> {
    src: &'a str,
    i: usize,
    depth: usize,
}

impl<'a> Scan<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Self {
            src,
            i: 0,
            depth: 0,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        let mut i = self.i;
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
            i += 1;
        }
        self.i = i;
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    /// The end of the text: nothing but whitespace is left.
    pub(super) fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// Whether the next value is `null` (consumed if so).
    pub(super) fn null(&mut self) -> bool {
        self.ws();
        if self.src[self.i..].starts_with("null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A string: borrowed when it has no escapes, decoded as `serde_json`
    /// decodes it otherwise.
    pub(super) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.ws();
        if self.bytes().get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        self.i = start;
        let escaped = self.string_body()?;
        // Both ends are at quotes, so on character boundaries.
        let inner = self.src.get(start..self.i - 1)?;
        if !escaped {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.src.get(start - 1..self.i)?)
            .ok()
            .map(Cow::Owned)
    }

    /// Past the rest of a string whose opening quote was read; whether it
    /// had escapes.
    fn string_body(&mut self) -> Option<bool> {
        let b = self.bytes();
        let mut i = self.i;
        let mut escaped = false;
        loop {
            // Plain bytes, several at a time.
            while let Some(&c) = b.get(i) {
                if SPECIAL[usize::from(c)] {
                    break;
                }
                i += 1;
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let b = self.bytes();
        let start = self.i;
        while b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        let b = self.bytes();
        if b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if b.get(self.i) == Some(&b'.') {
            self.i += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = b.get(self.i) {
                self.i += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }

    /// A whole number that fits in a `u64`, written without a fraction or
    /// exponent (what `serde_json` reads into a `u64`).
    pub(super) fn u64(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        self.number()?;
        self.src[start..self.i].parse().ok()
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.src[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// Past one value of any kind, checking its syntax.
    pub(super) fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string_body().map(drop)
            }
            b'{' => self.object(|s, _| s.skip()),
            b'[' => self.array(Scan::skip),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    /// One value of any kind, as the slice of text it spans.
    pub(super) fn raw(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        self.skip()?;
        Some(&self.src[start..self.i])
    }

    fn nest(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object, each member handed to `member` with its key (decoded)
    /// and the cursor at its value, which `member` must consume.
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &str) -> Option<()>,
    ) -> Option<()> {
        self.items(b'{', b'}', |s| {
            let key = s.string()?;
            s.eat(b':')?;
            member(s, &key)
        })
    }

    /// An array, the cursor handed to `item` at each element, which `item`
    /// must consume.
    pub(super) fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.items(b'[', b']', item)
    }

    /// `open`, then what `item` reads, comma-separated, then `close`.
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.nest()?;
        if self.peek()? != close {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => break,
                    _ => return None,
                }
            }
        }
        self.i += 1;
        self.depth -= 1;
        Some(())
    }
}

/// Which members of an object were read: one named twice makes the text
/// one the views do not read (`serde_json` refuses a struct's field twice).
#[derive(Default)]
pub(super) struct Seen(u32);

impl Seen {
    /// `read`, unless member `bit` was read before.
    pub(super) fn first<T>(&mut self, bit: u32, read: Option<T>) -> Option<T> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut s = Scan::new(text);
        s.skip().is_some() && s.end().is_some()
    }

    #[test]
    fn syntax_is_checked_as_serde_json_checks_it() {
        for text in [
            r#"{"a":[1,-0.5e+3,true,false,null,"x\"\u00e9"],"b":{}}"#,
            " [ ] ",
            "0",
            "-12.25E-2",
            r#""\ud800""#,
        ] {
            assert!(skips(text), "{text}");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        }
        for text in [
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "\"\u{1}\"",
            "\"\\x\"",
            "\"\\u12g4\"",
            "[1] 2",
            "{a:1}",
            "\"open",
        ] {
            assert!(!skips(text), "{text}");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_err(),
                "{text}"
            );
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!skips(&deep));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let mut s = Scan::new(r#""plain""#);
        assert!(matches!(s.string(), Some(Cow::Borrowed("plain"))));
        let mut s = Scan::new(r#""a\"b\u00e9""#);
        assert_eq!(s.string().as_deref(), Some("a\"b\u{e9}"));
        // A lone surrogate reads as no string, as serde_json refuses it.
        assert!(Scan::new(r#""\ud800""#).string().is_none());
        assert_eq!(Scan::new("42").u64(), Some(42));
        assert_eq!(Scan::new("4.0").u64(), None);
        assert_eq!(Scan::new("-4").u64(), None);
        assert_eq!(Scan::new("18446744073709551616").u64(), None);
    }
}
