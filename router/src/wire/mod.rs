//! Client wire formats: request validation and the error shapes each format
//! expects.

pub mod anthropic;
pub mod openai;

/// A wire format, spoken by a client or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI's chat completions (and embeddings).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Wire {
    /// A label for logs, metrics and the ledger.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}
