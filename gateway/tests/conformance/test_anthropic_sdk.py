"""The Anthropic door (/v1/messages, /v1/messages/count_tokens, /v1/models) driven by
the official Anthropic SDK.

Every behaviour is checked against both provider kinds: `claude-mock` is served
by an Anthropic-format upstream, `gpt-mock` by an OpenAI-format one, so the
second exercises the translation in both directions.
"""

import anthropic
import pytest

from conftest import CACHED_TOKENS, MODELS, OUTPUT_TOKENS

HELLO = [{"role": "user", "content": "hello"}]

LOOKUP_TOOL = {
    "name": "lookup",
    "description": "Look something up.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


def _text(message):
    return "".join(b.text for b in message.content if b.type == "text")


def _assert_complete_answer(message, model):
    """A finished text answer: thinking first, then text, with the mock's usage."""
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert _text(message)
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == OUTPUT_TOKENS
    assert message.usage.cache_read_input_tokens == CACHED_TOKENS
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_plain_message_answers_with_text_and_usage(ant, model):
    message = ant.messages.create(model=model, max_tokens=100, messages=HELLO)

    _assert_complete_answer(message, model)


@pytest.mark.parametrize("model", MODELS)
def test_sdk_default_authentication_is_accepted(ant_sdk_default, model):
    message = ant_sdk_default.messages.create(model=model, max_tokens=100, messages=HELLO)

    _assert_complete_answer(message, model)


@pytest.mark.parametrize("model", MODELS)
def test_bearer_auth_token_is_accepted(ant_bearer, model):
    message = ant_bearer.messages.create(model=model, max_tokens=100, messages=HELLO)

    _assert_complete_answer(message, model)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_message_reports_usage(ant, model):
    with ant.messages.stream(model=model, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()

    assert text
    assert text == _text(message)
    _assert_complete_answer(message, model)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_events_come_in_anthropic_order(ant, model):
    events = [e for e in ant.messages.create(model=model, max_tokens=100, messages=HELLO, stream=True)]
    types = [e.type for e in events if e.type != "ping"]

    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert events[0].message.content == []

    # Blocks are opened, filled and closed one at a time, indexed from 0.
    open_index = None
    deltas = {}
    stopped = []
    for event in events:
        if event.type == "content_block_start":
            assert open_index is None, "a block starts while another is open"
            assert event.index == len(stopped)
            open_index = event.index
            deltas[event.index] = 0
        elif event.type == "content_block_delta":
            assert event.index == open_index
            deltas[event.index] += 1
        elif event.type == "content_block_stop":
            assert event.index == open_index
            stopped.append(event.index)
            open_index = None
    assert open_index is None
    assert stopped, "the answer has content blocks"
    assert all(deltas[i] > 0 for i in stopped), "every block has deltas"

    final = [e for e in events if e.type == "message_delta"][-1]
    assert final.delta.stop_reason == "end_turn"
    assert final.usage.output_tokens == OUTPUT_TOKENS


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_thinking_block_comes_before_the_text(ant, model, stream):
    if stream:
        with ant.messages.stream(model=model, max_tokens=100, messages=HELLO) as s:
            message = s.get_final_message()
    else:
        message = ant.messages.create(model=model, max_tokens=100, messages=HELLO)

    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text"]
    assert message.content[0].thinking


def _answer_tool_use(client, model, assistant_content, tool_use_id, stream):
    """Sends the tool use back with its result; the model must answer in text."""
    messages = HELLO + [
        {"role": "assistant", "content": assistant_content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "42"}]},
    ]
    if stream:
        with client.messages.stream(model=model, max_tokens=100, tools=[LOOKUP_TOOL], messages=messages) as s:
            return s.get_final_message()
    return client.messages.create(model=model, max_tokens=100, tools=[LOOKUP_TOOL], messages=messages)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(ant, model, stream):
    request = dict(model=model, max_tokens=100, messages=HELLO, tools=[LOOKUP_TOOL], tool_choice={"type": "any"})
    if stream:
        with ant.messages.stream(**request) as s:
            message = s.get_final_message()
    else:
        message = ant.messages.create(**request)

    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.id
    assert use.name == "lookup"
    assert isinstance(use.input, dict)
    assert "query" in use.input

    assistant_content = [b.model_dump(exclude_none=True) for b in message.content]
    answer = _answer_tool_use(ant, model, assistant_content, use.id, stream)
    assert answer.stop_reason == "end_turn"
    assert _text(answer)
    assert not [b for b in answer.content if b.type == "tool_use"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cuts_the_answer_with_stop_reason_max_tokens(ant, model, stream):
    if stream:
        with ant.messages.stream(model=model, max_tokens=3, messages=HELLO) as s:
            message = s.get_final_message()
    else:
        message = ant.messages.create(model=model, max_tokens=3, messages=HELLO)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


@pytest.mark.parametrize("model", MODELS)
def test_beta_messages_are_served_as_claude_code_sends_them(ant, model):
    # The beta resource posts to /v1/messages?beta=true with an anthropic-beta header.
    message = ant.beta.messages.create(
        model=model, max_tokens=100, messages=HELLO, betas=["interleaved-thinking-2025-05-14"]
    )

    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == OUTPUT_TOKENS


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens_counts_the_prompt(ant, model):
    count = ant.messages.count_tokens(model=model, messages=HELLO)

    assert count.input_tokens > 0


def test_count_tokens_grows_with_the_prompt(ant):
    short = ant.messages.count_tokens(model="claude-mock", messages=HELLO)
    long = ant.messages.count_tokens(
        model="claude-mock", messages=[{"role": "user", "content": "hello " * 200}]
    )

    assert long.input_tokens > short.input_tokens


def test_models_list_contains_both_models(ant):
    ids = [m.id for m in ant.models.list()]

    assert "gpt-mock" in ids
    assert "claude-mock" in ids


def test_models_list_pages_through_every_model(ant):
    paged = [m.id for m in ant.models.list(limit=1)]

    assert paged == [m.id for m in ant.models.list(limit=1000)]
    assert len(paged) == len(set(paged))
    assert {"gpt-mock", "claude-mock"} <= set(paged)


@pytest.mark.parametrize("model", MODELS)
def test_models_retrieve_finds_the_model(ant, model):
    info = ant.models.retrieve(model)

    assert info.id == model
    assert info.type == "model"


def _assert_anthropic_error(err, status, error_type):
    assert err.status_code == status
    body = err.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert err.body == body


WRONG_KEY = "tg-not-a-real-key"


@pytest.mark.parametrize(
    "credentials",
    [
        {"auth_token": WRONG_KEY},
        {"api_key": WRONG_KEY, "default_headers": {"X-Api-Key": WRONG_KEY, "Authorization": anthropic.omit}},
    ],
    ids=["bearer", "x-api-key"],
)
def test_wrong_key_raises_authentication_error(base_url, credentials):
    client = anthropic.Anthropic(base_url=base_url, max_retries=0, **credentials)
    with pytest.raises(anthropic.AuthenticationError) as err:
        client.messages.create(model="claude-mock", max_tokens=100, messages=HELLO)

    _assert_anthropic_error(err.value, 401, "authentication_error")


def test_unknown_model_raises_not_found_error(ant):
    with pytest.raises(anthropic.NotFoundError) as err:
        ant.messages.create(model="no-such-model", max_tokens=100, messages=HELLO)

    _assert_anthropic_error(err.value, 404, "not_found_error")


@pytest.mark.parametrize("model", ["limited", "limited-claude"])
@pytest.mark.parametrize("stream", [False, True])
def test_rate_limited_upstream_raises_rate_limit_error(ant, model, stream):
    with pytest.raises(anthropic.RateLimitError) as err:
        ant.messages.create(model=model, max_tokens=100, messages=HELLO, stream=stream)

    _assert_anthropic_error(err.value, 429, "rate_limit_error")


@pytest.mark.parametrize("model", MODELS)
def test_system_message_inside_messages_is_accepted(ant, model):
    # Claude Code sends `role: "system"` messages inside `messages`: passed
    # through to an Anthropic upstream, translated in place for an OpenAI one.
    messages = [{"role": "system", "content": "Be terse."}] + HELLO
    message = ant.messages.create(model=model, max_tokens=100, messages=messages)

    _assert_complete_answer(message, model)


def test_unknown_role_the_openai_upstream_cannot_carry_raises_bad_request_error(ant):
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="gpt-mock", max_tokens=100, messages=[{"role": "narrator", "content": "x"}] + HELLO)

    _assert_anthropic_error(err.value, 400, "invalid_request_error")
    assert "messages.0.role" in err.value.response.json()["error"]["message"]


def test_unknown_role_is_passed_through_to_the_anthropic_upstream(ant):
    # Tollgate passes Anthropic requests through liberally; the upstream
    # judges them (the mock accepts any role).
    message = ant.messages.create(
        model="claude-mock", max_tokens=100, messages=[{"role": "narrator", "content": "x"}] + HELLO
    )

    _assert_complete_answer(message, "claude-mock")


def test_document_the_openai_upstream_cannot_serve_raises_bad_request_error(ant):
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(model="gpt-mock", max_tokens=100, messages=[{"role": "user", "content": [pdf]}])

    _assert_anthropic_error(err.value, 400, "invalid_request_error")


def test_head_root_answers_200(http):
    assert http.head("/").status_code == 200
