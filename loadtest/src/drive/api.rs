//! The APIs the driver speaks: where a request goes, how it presents its
//! key, and its body.

use bytes::Bytes;
use serde_json::json;

/// `max_tokens` for Messages requests when none is given (the field is
/// required there).
const MESSAGES_MAX_TOKENS: u32 = 1024;

/// Which API the driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {base}/chat/completions`, Bearer key; a stream ends with
    /// `data: [DONE]`.
    Chat,
    /// `POST .../v1/messages` (Anthropic), `x-api-key` and
    /// `anthropic-version`; a stream ends with `message_stop`.
    Messages,
    /// `POST {base}/responses`, Bearer key; a stream ends with
    /// `response.completed` (or `response.incomplete`).
    Responses,
}

impl Api {
    /// Parses `chat`, `messages` or `responses`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "chat" => Some(Self::Chat),
            "messages" => Some(Self::Messages),
            "responses" => Some(Self::Responses),
            _ => None,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Messages => "messages",
            Self::Responses => "responses",
        }
    }

    /// The URL requests go to. For chat and Responses the base URL is
    /// OpenAI-style (`http://host:port/v1`). For Messages both that and the
    /// host root (`http://host:port`) work: `/messages` is added after a
    /// base that ends in `/v1`, `/v1/messages` after any other.
    pub fn url(self, base_url: &str) -> String {
        let base = base_url.trim_end_matches('/');
        match self {
            Self::Chat => format!("{base}/chat/completions"),
            Self::Responses => format!("{base}/responses"),
            Self::Messages if base.ends_with("/v1") => format!("{base}/messages"),
            Self::Messages => format!("{base}/v1/messages"),
        }
    }

    /// Adds the key (if any) the way the API expects it, and the headers
    /// the API requires.
    pub(crate) fn present(
        self,
        req: reqwest::RequestBuilder,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match self {
            Self::Messages => {
                let req = req.header("anthropic-version", "2023-06-01");
                match key {
                    Some(k) => req.header("x-api-key", k),
                    None => req,
                }
            }
            Self::Chat | Self::Responses => match key {
                Some(k) => req.bearer_auth(k),
                None => req,
            },
        }
    }

    /// The body every request of a run sends, serialized once.
    pub(crate) fn body(
        self,
        model: &str,
        prompt_words: usize,
        stream: bool,
        max_tokens: Option<u32>,
    ) -> Bytes {
        let prompt = vec!["token"; prompt_words.max(1)].join(" ");
        let messages = json!([{"role": "user", "content": prompt}]);
        let mut body = match self {
            Self::Chat => json!({"model": model, "messages": messages, "stream": stream}),
            Self::Messages => json!({"model": model, "messages": messages, "stream": stream,
                                     "max_tokens": max_tokens.unwrap_or(MESSAGES_MAX_TOKENS)}),
            Self::Responses => {
                json!({"model": model, "input": prompt, "stream": stream, "store": false})
            }
        };
        match (self, max_tokens) {
            (Self::Chat, Some(m)) => body["max_tokens"] = json!(m),
            (Self::Responses, Some(m)) => body["max_output_tokens"] = json!(m),
            _ => {}
        }
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Api;

    #[test]
    fn messages_accept_a_host_root_or_a_v1_base_url() {
        assert_eq!(
            Api::Messages.url("http://h:1/v1/"),
            "http://h:1/v1/messages"
        );
        assert_eq!(Api::Messages.url("http://h:1"), "http://h:1/v1/messages");
        assert_eq!(
            Api::Chat.url("http://h:1/v1"),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            Api::Responses.url("http://h:1/v1"),
            "http://h:1/v1/responses"
        );
    }

    #[test]
    fn messages_bodies_always_carry_max_tokens() {
        let body: serde_json::Value =
            serde_json::from_slice(&Api::Messages.body("m", 3, true, None)).unwrap_or_default();
        assert_eq!(body["max_tokens"], 1024);
        assert_eq!(body["messages"][0]["content"], "token token token");
        let body: serde_json::Value =
            serde_json::from_slice(&Api::Responses.body("m", 1, false, Some(7)))
                .unwrap_or_default();
        assert_eq!(body["max_output_tokens"], 7);
    }
}
