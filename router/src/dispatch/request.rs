//! The client's request, parsed in the client's format, and what each
//! candidate's upstream is sent for it: the same bytes when the formats
//! match, a translation when they differ.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::catalog::ModelEntry;
use crate::estimate;
use crate::provider::Operation;
use crate::route::Needs;
use crate::translate;
use crate::wire::anthropic::ParsedMessages;
use crate::wire::openai::{ParsedRequest, RequestError};
use crate::wire::responses::ParsedResponses;
use crate::wire::Wire;

/// A validated client request, in the client's format.
#[derive(Debug, Clone)]
pub enum ClientRequest {
    /// `POST /v1/chat/completions`.
    Chat(ParsedRequest),
    /// `POST /v1/embeddings`.
    Embeddings(ParsedRequest),
    /// `POST /v1/messages`.
    Messages(ParsedMessages),
    /// `POST /v1/responses`.
    Responses(ParsedResponses),
}

/// What one upstream is sent.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The operation (and so the path).
    pub operation: Operation,
    /// The format the upstream answers in.
    pub wire: Wire,
    /// The body.
    pub body: Bytes,
}

fn json(map: &Map<String, Value>) -> Bytes {
    // A map of JSON values always serializes.
    Bytes::from(serde_json::to_vec(map).unwrap_or_default())
}

impl ClientRequest {
    /// Parses a `POST /v1/chat/completions` body. A Responses-shaped body
    /// (`input` and no `messages`, as Cursor sends with a custom base URL)
    /// is read as the chat request it stands for, and answered as chat.
    pub fn chat(bytes: &[u8]) -> Result<Self, RequestError> {
        let body = crate::wire::parse_object(bytes)?;
        let no_messages = body.get("messages").is_none_or(Value::is_null);
        if no_messages && body.contains_key("input") {
            let r = crate::wire::responses::parse_responses_object(body)?;
            let chat = translate::responses::responses_to_chat(r.body(), &r.model)?;
            return Ok(Self::Chat(crate::wire::openai::parse_chat_object(chat)?));
        }
        Ok(Self::Chat(crate::wire::openai::parse_chat_object(body)?))
    }

    /// The `model` the client asked for.
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => &r.model,
            Self::Messages(r) => &r.model,
            Self::Responses(r) => &r.model,
        }
    }

    /// Whether the client asked for a stream.
    pub fn stream(&self) -> bool {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => r.stream,
            Self::Messages(r) => r.stream,
            Self::Responses(r) => r.stream,
        }
    }

    /// Whether the client wants usage in its stream (always, outside OpenAI's
    /// chat completions, where `stream_options.include_usage` asks for it).
    pub fn include_usage(&self) -> bool {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => r.include_usage,
            Self::Messages(_) | Self::Responses(_) => true,
        }
    }

    /// The client's wire format.
    pub fn client(&self) -> Wire {
        match self {
            Self::Chat(_) | Self::Embeddings(_) => Wire::OpenAi,
            Self::Messages(_) => Wire::Anthropic,
            Self::Responses(_) => Wire::Responses,
        }
    }

    /// The metric and ledger name of the endpoint.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Self::Chat(_) => "chat_completions",
            Self::Embeddings(_) => "embeddings",
            Self::Messages(_) => "messages",
            Self::Responses(_) => "responses",
        }
    }

    /// The body as the client sent it.
    pub fn body(&self) -> &Map<String, Value> {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => r.body(),
            Self::Messages(r) => r.body(),
            Self::Responses(r) => r.body(),
        }
    }

    /// What the request needs from a model (capabilities, context room), for
    /// routes' filters and budgets' worst cases.
    pub fn needs(&self) -> Needs {
        match self {
            Self::Chat(r) => Needs::of_chat(r.body()),
            Self::Embeddings(r) => Needs {
                prompt_tokens: estimate::embeddings_input(
                    &serde_json::json!({"input": r.body().get("input")}),
                ),
                max_output: Some(0),
                ..Needs::default()
            },
            Self::Messages(r) => Needs::of_messages(r.body()),
            Self::Responses(r) => Needs::of_responses(r.body()),
        }
    }

    /// What `entry`'s upstream is sent: the client's body with the upstream
    /// model name when the formats match, a translation when they differ,
    /// or a 400 naming what the upstream's format cannot carry.
    pub fn upstream_for(&self, entry: &ModelEntry) -> Result<UpstreamRequest, RequestError> {
        let up = entry.upstream_model.as_str();
        if let (Self::Responses(r), true) = (self, entry.provider.serves_responses()) {
            return Ok(UpstreamRequest {
                operation: Operation::Responses,
                wire: Wire::Responses,
                body: r.upstream_body(up),
            });
        }
        let wire = entry.provider.wire();
        let (operation, body) = match (self, wire) {
            (Self::Chat(r), Wire::OpenAi) => (Operation::ChatCompletions, r.upstream_body(up)),
            (Self::Chat(r), Wire::Anthropic) => (
                Operation::Messages,
                json(&translate::chat_to_messages(
                    r.body(),
                    up,
                    entry.max_output_tokens,
                )?),
            ),
            (Self::Embeddings(r), Wire::OpenAi) => (Operation::Embeddings, r.upstream_body(up)),
            (Self::Embeddings(_), _) => {
                return Err(RequestError::Unsupported {
                    field: "model".into(),
                    what: "the model is served by an Anthropic provider, which has no embeddings",
                })
            }
            (Self::Messages(r), Wire::Anthropic) => (Operation::Messages, r.upstream_body(up)),
            (Self::Messages(r), Wire::OpenAi) => (
                Operation::ChatCompletions,
                json(&translate::messages_to_chat(r.body(), up)?),
            ),
            (Self::Responses(r), Wire::OpenAi) => (
                Operation::ChatCompletions,
                json(&translate::responses::responses_to_chat(r.body(), up)?),
            ),
            (Self::Responses(r), Wire::Anthropic) => (
                Operation::Messages,
                json(&translate::responses::responses_to_messages(
                    r.body(),
                    up,
                    entry.max_output_tokens,
                )?),
            ),
            (_, Wire::Responses) => {
                return Err(RequestError::Unsupported {
                    field: "model".into(),
                    what: "no provider speaks only the Responses API",
                })
            }
        };
        Ok(UpstreamRequest {
            operation,
            wire,
            body,
        })
    }
}
