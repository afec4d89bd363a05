"""The OpenAI door (/v1/chat/completions, /v1/models) driven by the official OpenAI SDK.

Every behaviour is checked against both provider kinds: `gpt-mock` is served by
an OpenAI-format upstream, `claude-mock` by an Anthropic-format one, so the
second exercises the translation in both directions.
"""

import json

import openai
import pytest

from conftest import CACHED_TOKENS, MODELS, OUTPUT_TOKENS

HELLO = [{"role": "user", "content": "hello"}]

LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


@pytest.mark.parametrize("model", MODELS)
def test_plain_chat_answers_with_text_and_usage(oai, model):
    reply = oai.chat.completions.create(model=model, messages=HELLO)

    assert reply.model == model
    choice = reply.choices[0]
    assert choice.message.content
    assert choice.finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == OUTPUT_TOKENS


@pytest.mark.parametrize("model", MODELS)
def test_plain_chat_response_carries_tollgate_headers(oai, model):
    raw = oai.chat.completions.with_raw_response.create(model=model, messages=HELLO)

    assert raw.headers["x-tollgate-request-id"]
    assert raw.headers["x-tollgate-provider"] == {"gpt-mock": "oai", "claude-mock": "ant"}[model]
    assert float(raw.headers["x-tollgate-cost-usd"]) > 0
    assert raw.parse().choices[0].message.content


@pytest.mark.parametrize("model", MODELS)
def test_streamed_chat_reports_usage(oai, model):
    stream = oai.chat.completions.create(
        model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None, "the last chunk carries the usage"
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == OUTPUT_TOKENS
    assert usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert all(c.model == model for c in chunks)


@pytest.mark.parametrize("model", MODELS)
def test_streamed_chat_without_include_usage_sends_no_usage(oai, model):
    chunks = list(oai.chat.completions.create(model=model, messages=HELLO, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)


def _answer_tool_call(oai, model, call_message, call_id):
    """Sends the tool call back with its result; the model must answer in text."""
    return oai.chat.completions.create(
        model=model,
        tools=[LOOKUP_TOOL],
        messages=HELLO + [call_message, {"role": "tool", "tool_call_id": call_id, "content": "42"}],
    )


@pytest.mark.parametrize("model", MODELS)
def test_tool_call_round_trip(oai, model):
    reply = oai.chat.completions.create(
        model=model, messages=HELLO, tools=[LOOKUP_TOOL], tool_choice="required"
    )

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "lookup"
    assert "query" in json.loads(call.function.arguments)

    answer = _answer_tool_call(oai, model, choice.message.model_dump(exclude_none=True), call.id)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content
    assert not answer.choices[0].message.tool_calls


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_call_round_trip(oai, model):
    stream = oai.chat.completions.create(
        model=model, messages=HELLO, tools=[LOOKUP_TOOL], tool_choice="required", stream=True
    )
    calls = {}  # index -> {"id", "name", "arguments"}
    finish = []
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.finish_reason:
            finish.append(choice.finish_reason)
        for piece in choice.delta.tool_calls or []:
            call = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": ""})
            if piece.id:
                call["id"] = piece.id
            if piece.function and piece.function.name:
                call["name"] += piece.function.name
            if piece.function and piece.function.arguments:
                call["arguments"] += piece.function.arguments

    assert finish == ["tool_calls"]
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"]
    assert call["name"] == "lookup"
    assert "query" in json.loads(call["arguments"])

    call_message = {
        "role": "assistant",
        "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        ],
    }
    stream = oai.chat.completions.create(
        model=model,
        tools=[LOOKUP_TOOL],
        messages=HELLO + [call_message, {"role": "tool", "tool_call_id": call["id"], "content": "42"}],
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


@pytest.mark.parametrize("model", MODELS)
def test_streamed_parallel_tool_calls_are_indexed_from_zero(oai, model):
    # The Anthropic upstream numbers its content blocks from the thinking block
    # on; OpenAI's tool-call index counts tool calls only.
    tools = [LOOKUP_TOOL, {"type": "function", "function": {**LOOKUP_TOOL["function"], "name": "fetch"}}]
    stream = oai.chat.completions.create(
        model=model, messages=HELLO, tools=tools, tool_choice="required", stream=True
    )
    calls = {}  # index -> [name, arguments]
    for chunk in stream:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(piece.index, ["", ""])
            call[0] += (piece.function and piece.function.name) or ""
            call[1] += (piece.function and piece.function.arguments) or ""

    assert sorted(calls) == [0, 1]
    assert [calls[0][0], calls[1][0]] == ["lookup", "fetch"]
    assert all("query" in json.loads(arguments) for _, arguments in calls.values())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_token_limit_cuts_the_answer_with_finish_reason_length(oai, model, limit):
    reply = oai.chat.completions.create(model=model, messages=HELLO, **{limit: 3})

    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


@pytest.mark.parametrize(
    "field, value",
    [("n", 2), ("response_format", {"type": "json_object"})],
)
def test_request_the_anthropic_upstream_cannot_serve_raises_bad_request_error(oai, field, value):
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="claude-mock", messages=HELLO, **{field: value})
    assert err.value.status_code == 400
    assert err.value.param == field


def test_wrong_key_raises_authentication_error(base_url):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="tg-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="gpt-mock", messages=HELLO)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"


def test_unknown_model_raises_not_found_error(oai):
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="no-such-model", messages=HELLO)
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limited_upstream_raises_rate_limit_error(oai, stream):
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model="limited", messages=HELLO, stream=stream)
    assert err.value.status_code == 429


def test_rate_limited_anthropic_upstream_raises_rate_limit_error(oai):
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model="limited-claude", messages=HELLO)
    assert err.value.status_code == 429


def test_models_list_contains_both_models(oai):
    ids = [m.id for m in oai.models.list()]
    assert "gpt-mock" in ids
    assert "claude-mock" in ids


@pytest.mark.parametrize("model", MODELS)
def test_models_retrieve_finds_the_model(oai, model):
    assert oai.models.retrieve(model).id == model
