//! Translated streams between OpenAI chat chunks and Anthropic events.

use bytes::Bytes;
use serde_json::Value;

use super::{
    anthropic_error_frame, flow_step, malformed, meter_anthropic_event, meter_chat_chunk,
    openai_error_frame, Codec, Meter, Step,
};
use crate::relay::End;
use crate::translate::{AnthropicToChat, ChatToAnthropic};

/// Anthropic upstream, OpenAI client.
pub(super) struct AnthropicToOpenAi(pub(super) AnthropicToChat);

impl Codec for AnthropicToOpenAi {
    fn event(&mut self, _name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        meter_anthropic_event(&value, m);
        let flow = self.0.event(&value, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Vec<Bytes>) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without message_stop".into(),
        ))
    }

    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(openai_error_frame(end));
    }
}

/// OpenAI upstream, Anthropic client.
pub(super) struct OpenAiToAnthropic(pub(super) ChatToAnthropic);

impl Codec for OpenAiToAnthropic {
    fn event(&mut self, _name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if data == "[DONE]" {
            return flow_step(self.0.end(out));
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        meter_chat_chunk(&chunk, m);
        let flow = self.0.chunk(&chunk, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if self.0.finished() {
            flow_step(self.0.end(out))
        } else {
            Step::End(End::UpstreamDisconnected(
                "the stream closed without a final chunk".into(),
            ))
        }
    }

    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(anthropic_error_frame(end));
    }
}
