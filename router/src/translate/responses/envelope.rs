//! Tollgate's reasoning envelope: what a translated upstream's reasoning
//! needs to come back to it, carried in a reasoning item's
//! `encrypted_content`.
//!
//! The format is `"tgr1." + base64url-no-pad(JSON)`, the JSON being one of
//! `{"reasoning_content": "..."}` (an OpenAI-compatible upstream's reasoning,
//! which Kimi and DeepSeek want back on tool-call turns),
//! `{"thinking": "...", "signature": "..."}` (an Anthropic thinking block,
//! whose signature Anthropic checks) or `{"redacted_thinking": "<data>"}`.
//! It is opaque to clients, as OpenAI's own `encrypted_content` is; it is not
//! encrypted, which is no loss: the client already saw the reasoning text in
//! the item's summary.

use base64::Engine as _;
use serde_json::{json, Value};

/// The prefix that marks Tollgate's envelope.
const PREFIX: &str = "tgr1.";

/// Reasoning as an upstream produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// An OpenAI-compatible upstream's `reasoning_content`.
    Chat {
        /// The reasoning text.
        reasoning_content: String,
    },
    /// An Anthropic `thinking` block.
    Thinking {
        /// The thinking text (may be empty when the upstream omits it).
        thinking: String,
        /// Anthropic's signature over the thinking.
        signature: String,
    },
    /// An Anthropic `redacted_thinking` block.
    Redacted {
        /// The opaque redacted data.
        data: String,
    },
}

impl Envelope {
    /// The envelope as an `encrypted_content` string.
    pub fn encode(&self) -> String {
        let inner = match self {
            Self::Chat { reasoning_content } => json!({"reasoning_content": reasoning_content}),
            Self::Thinking {
                thinking,
                signature,
            } => json!({"thinking": thinking, "signature": signature}),
            Self::Redacted { data } => json!({"redacted_thinking": data}),
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(inner.to_string());
        format!("{PREFIX}{b64}")
    }

    /// Reads an `encrypted_content` string; `None` when it is not Tollgate's
    /// (OpenAI's own encrypted reasoning, or anything damaged).
    pub fn decode(encrypted: &str) -> Option<Self> {
        let b64 = encrypted.strip_prefix(PREFIX)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        let inner: Value = serde_json::from_slice(&bytes).ok()?;
        let text = |key: &str| inner.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(data) = text("redacted_thinking") {
            return Some(Self::Redacted { data });
        }
        if let Some(signature) = text("signature") {
            return Some(Self::Thinking {
                thinking: text("thinking").unwrap_or_default(),
                signature,
            });
        }
        text("reasoning_content").map(|reasoning_content| Self::Chat { reasoning_content })
    }

    /// The readable reasoning text, if any.
    pub fn text(&self) -> &str {
        match self {
            Self::Chat { reasoning_content } => reasoning_content,
            Self::Thinking { thinking, .. } => thinking,
            Self::Redacted { .. } => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_a_round_trip() {
        let kinds = [
            Envelope::Chat {
                reasoning_content: "think \"hard\" ✓".into(),
            },
            Envelope::Thinking {
                thinking: "t".into(),
                signature: "EqQBCkYIBxgCKkA+/==".into(),
            },
            Envelope::Thinking {
                thinking: String::new(),
                signature: "sig".into(),
            },
            Envelope::Redacted {
                data: "opaque".into(),
            },
        ];
        for k in kinds {
            let s = k.encode();
            assert!(s.starts_with("tgr1."));
            assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
            assert_eq!(Envelope::decode(&s), Some(k));
        }
    }

    #[test]
    fn foreign_or_damaged_content_is_not_an_envelope() {
        assert_eq!(Envelope::decode("gAAAAABo-openai-encrypted"), None);
        assert_eq!(Envelope::decode("tgr1.!!!"), None);
        assert_eq!(
            Envelope::decode("tgr1.e30"),
            None,
            "an empty object carries nothing"
        );
    }
}
