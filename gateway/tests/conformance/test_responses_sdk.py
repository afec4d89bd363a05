"""The Responses door (/v1/responses, what Codex speaks) driven by the official OpenAI SDK.

Every behaviour is checked against each backend kind: `resp-mock` is served by
an OpenAI-kind provider with `responses = true`, which gets the body passed
through untouched; `gpt-mock` by a chat-completions one (the request
translated to chat and the answer back); `claude-mock` by an Anthropic one
(translated to the Messages API and back).
"""

import json

import openai
import pytest

from conftest import CACHED_TOKENS, OUTPUT_TOKENS, REASONING_TOKENS, RESPONSES_MODELS

# The backends Tollgate translates for; `resp-mock` is passed through.
TRANSLATED = ["gpt-mock", "claude-mock"]

# The backends whose usage splits out reasoning tokens (Anthropic's does not).
REPORTS_REASONING = {"gpt-mock", "resp-mock"}

PROVIDER = {"gpt-mock": "oai", "claude-mock": "ant", "resp-mock": "oai_resp"}

HELLO = [{"role": "user", "content": "hello"}]

LOOKUP_TOOL = {
    "type": "function",
    "name": "lookup",
    "description": "Look something up.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}

# A freeform tool as Codex declares apply_patch: raw text input, with a grammar.
PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch to the working tree.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/'},
}

TERMINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


def _items(response, kind):
    return [item for item in response.output if item.type == kind]


def _history(response):
    """A response's output items as input items for the next turn."""
    return [item.model_dump(exclude_none=True) for item in response.output]


def _assert_usage(usage, model):
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens == OUTPUT_TOKENS
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == CACHED_TOKENS
    if model in REPORTS_REASONING:
        assert usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS


def _assert_text_answer(response, model):
    """A finished text answer with the mock's usage and no tool calls."""
    assert response.object == "response"
    assert response.id
    assert response.model == model
    assert response.status == "completed"
    assert response.output_text
    assert len(_items(response, "message")) == 1
    assert _items(response, "message")[0].role == "assistant"
    assert not _items(response, "function_call")
    assert not _items(response, "custom_tool_call")
    _assert_usage(response.usage, model)


def _assert_openai_error(err, status):
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    assert err.status_code == status
    body = err.response.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["type"]
    assert err.body == body["error"]


def _create(oai, stream, **request):
    """A whole response, asked for whole or through the SDK's stream helper."""
    if stream:
        with oai.responses.stream(**request) as s:
            return s.get_final_response()
    return oai.responses.create(**request)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_plain_response_answers_with_text_and_usage(oai, model):
    response = oai.responses.create(model=model, input="hello")

    _assert_text_answer(response, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_plain_response_carries_tollgate_headers(oai, model):
    raw = oai.responses.with_raw_response.create(model=model, input="hello")

    assert raw.headers["x-tollgate-request-id"]
    assert raw.headers["x-tollgate-provider"] == PROVIDER[model]
    assert float(raw.headers["x-tollgate-cost-usd"]) > 0
    assert raw.parse().output_text


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_instructions_and_message_history_are_accepted(oai, model):
    response = oai.responses.create(
        model=model,
        instructions="You are terse.",
        input=[
            {"role": "developer", "content": "Answer in one line."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "hi, what do you need?"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "the time"}]},
        ],
    )

    _assert_text_answer(response, model)
    assert response.instructions == "You are terse."


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_streamed_events_come_in_openai_order(oai, model):
    events = list(oai.responses.create(model=model, input="hello", stream=True))
    types = [e.type for e in events]

    assert types[0] == "response.created"
    assert events[0].response.status == "in_progress"
    assert [t for t in types if t in TERMINAL_EVENTS] == ["response.completed"]
    assert types[-1] == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers[0] == 0
    assert all(a < b for a, b in zip(numbers, numbers[1:])), f"sequence numbers not increasing: {numbers}"

    # Each output item is added, filled and done in turn; its events carry
    # its index and id, and none comes after its done.
    final = events[-1].response
    added = {}  # output_index -> the item as added
    done = {}  # output_index -> the item as done
    for event in events[1:-1]:
        index = getattr(event, "output_index", None)
        if event.type == "response.output_item.added":
            assert index not in added, f"output item {index} added twice"
            assert index == len(added), "output items are added in order from 0"
            assert all(i in done for i in added), "an item is added while another is open"
            added[index] = event.item
        elif event.type == "response.output_item.done":
            assert index in added and index not in done
            done[index] = event.item
        elif index is not None:
            assert index in added, f"{event.type} before output item {index} was added"
            assert index not in done, f"{event.type} after output item {index} was done"
            if getattr(added[index], "id", None) and getattr(event, "item_id", None):
                assert event.item_id == added[index].id
    assert sorted(done) == sorted(added) == list(range(len(final.output)))
    for index, item in done.items():
        assert item.type == added[index].type
        assert item.model_dump(exclude_none=True) == final.output[index].model_dump(exclude_none=True)

    # The text deltas make up the message, as done and as in the final response.
    message_index = next(i for i, item in done.items() if item.type == "message")
    text = "".join(
        e.delta for e in events if e.type == "response.output_text.delta" and e.output_index == message_index
    )
    assert text
    assert text == "".join(part.text for part in done[message_index].content if part.type == "output_text")
    assert text == final.output_text
    done_texts = [e.text for e in events if e.type == "response.output_text.done"]
    assert done_texts == [text]

    assert final.status == "completed"
    assert final.model == model
    assert all(e.response.model == model for e in events if hasattr(e, "response"))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    _assert_usage(final.usage, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_stream_helper_gives_the_final_response(oai, model):
    with oai.responses.stream(model=model, input=HELLO) as stream:
        types = []
        deltas = []
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)
        response = stream.get_final_response()

    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "".join(deltas) == response.output_text
    _assert_text_answer(response, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(oai, model, stream):
    response = _create(oai, stream, model=model, input=HELLO, tools=[LOOKUP_TOOL], tool_choice="required")

    assert response.status == "completed"
    assert response.model == model
    calls = _items(response, "function_call")
    assert len(calls) == 1
    call = calls[0]
    assert call.call_id
    assert call.name == "lookup"
    assert "query" in json.loads(call.arguments)
    assert not _items(response, "message")
    assert response.usage.output_tokens > 0

    history = HELLO + _history(response) + [{"type": "function_call_output", "call_id": call.call_id, "output": "42"}]
    answer = _create(oai, stream, model=model, input=history, tools=[LOOKUP_TOOL])

    _assert_text_answer(answer, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_streamed_function_call_arguments_arrive_as_deltas(oai, model):
    events = list(
        oai.responses.create(model=model, input=HELLO, tools=[LOOKUP_TOOL], tool_choice="required", stream=True)
    )

    added = [e.item for e in events if e.type == "response.output_item.added" and e.item.type == "function_call"]
    assert len(added) == 1
    assert added[0].name == "lookup"
    assert added[0].call_id
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert [e.arguments for e in events if e.type == "response.function_call_arguments.done"] == [arguments]
    done = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call"]
    assert len(done) == 1
    assert done[0].arguments == arguments
    assert done[0].call_id == added[0].call_id
    assert "query" in json.loads(arguments)
    assert events[-1].type == "response.completed"


@pytest.mark.parametrize("model", RESPONSES_MODELS)
@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_function_calls_are_separate_output_items(oai, model, parallel):
    # `required` makes the mock call every tool, unless parallel calls are off.
    tools = [LOOKUP_TOOL, {**LOOKUP_TOOL, "name": "fetch"}]
    with oai.responses.stream(
        model=model, input=HELLO, tools=tools, tool_choice="required", parallel_tool_calls=parallel
    ) as stream:
        events = list(stream)
        response = stream.get_final_response()

    calls = _items(response, "function_call")
    assert [c.name for c in calls] == (["lookup", "fetch"] if parallel else ["lookup"])
    assert len({c.call_id for c in calls}) == len(calls)
    assert all("query" in json.loads(c.arguments) for c in calls)
    indexes = [response.output.index(c) for c in calls]
    arguments = {}
    for event in events:
        if event.type == "response.function_call_arguments.delta":
            arguments[event.output_index] = arguments.get(event.output_index, "") + event.delta
    assert arguments == {i: c.arguments for i, c in zip(indexes, calls)}


@pytest.mark.parametrize("model", RESPONSES_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_item_carries_encrypted_content_and_goes_back(oai, model, stream):
    request = dict(
        model=model,
        reasoning={"effort": "medium"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    response = _create(oai, stream, input=HELLO, **request)

    _assert_text_answer(response, model)
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.encrypted_content
    assert reasoning.summary or reasoning.content

    history = HELLO + _history(response) + [{"role": "user", "content": "and again"}]
    again = _create(oai, stream, input=history, **request)

    _assert_text_answer(again, model)


_REASONING_REQUEST = dict(reasoning={"effort": "low"}, include=["reasoning.encrypted_content"], store=False)
_reasoning_turns = {}


def _reasoning_turn(oai, model):
    """One answer with a reasoning item from `model`, asked for once per session."""
    if model not in _reasoning_turns:
        _reasoning_turns[model] = oai.responses.create(model=model, input=HELLO, **_REASONING_REQUEST)
    return _reasoning_turns[model]


@pytest.mark.parametrize(
    "source, model",
    [(source, model) for source in RESPONSES_MODELS for model in RESPONSES_MODELS],
    ids=[f"{source}-to-{model}" for source in RESPONSES_MODELS for model in RESPONSES_MODELS],
)
def test_reasoning_from_any_backend_is_accepted_by_every_backend(oai, source, model):
    # A conversation that switches models carries the other backend's
    # reasoning items: Tollgate's envelope, or OpenAI's opaque content.
    history = HELLO + _history(_reasoning_turn(oai, source)) + [{"role": "user", "content": "and again"}]
    response = oai.responses.create(model=model, input=history, **_REASONING_REQUEST)

    _assert_text_answer(response, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_custom_tool_declared_beside_a_function_tool_is_accepted(oai, model):
    response = oai.responses.create(model=model, input=HELLO, tools=[LOOKUP_TOOL, PATCH_TOOL])

    _assert_text_answer(response, model)


def _patch_directive(model):
    """A prompt that makes the mock call apply_patch with `*** Begin Patch`.

    The model behind a translated backend sees the custom tool as a function
    taking one string, `input`, so it writes `{"input": ...}` (which Tollgate
    unwraps); behind `resp-mock` it sees the custom tool and writes the text.
    """
    arguments = '"*** Begin Patch"' if model == "resp-mock" else '{"input": "*** Begin Patch"}'
    return f"please patch\nTOLLGATE_CALL apply_patch {arguments}"


@pytest.mark.parametrize("model", RESPONSES_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_custom_tool_call_round_trip(oai, model, stream):
    prompt = [{"role": "user", "content": _patch_directive(model)}]
    tools = [LOOKUP_TOOL, PATCH_TOOL]
    response = _create(oai, stream, model=model, input=prompt, tools=tools)

    assert response.status == "completed"
    calls = _items(response, "custom_tool_call")
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "apply_patch"
    assert call.call_id
    assert call.input == "*** Begin Patch"
    assert not _items(response, "function_call")

    result = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "patched two files"}
    answer = _create(oai, stream, model=model, input=prompt + _history(response) + [result], tools=tools)

    # After a directive's call, the mock quotes the result it was sent.
    assert answer.status == "completed"
    assert answer.output_text == "tool result: patched two files"


@pytest.mark.parametrize("model", TRANSLATED)
def test_offered_hosted_tool_is_left_out_on_translated_backends(oai, model):
    response = oai.responses.create(model=model, input=HELLO, tools=[{"type": "web_search"}, LOOKUP_TOOL])

    _assert_text_answer(response, model)


@pytest.mark.parametrize("model", RESPONSES_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_cuts_the_answer_as_incomplete(oai, model, stream):
    request = dict(model=model, input="hello", max_output_tokens=3)
    if stream:
        events = list(oai.responses.create(stream=True, **request))
        assert [e.type for e in events if e.type in TERMINAL_EVENTS] == ["response.incomplete"]
        assert events[-1].type == "response.incomplete"
        response = events[-1].response
    else:
        response = oai.responses.create(**request)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 3


def test_wrong_key_raises_authentication_error(base_url):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="tg-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.responses.create(model="resp-mock", input="hello")

    _assert_openai_error(err.value, 401)
    assert err.value.code == "invalid_api_key"


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_raises_not_found_error(oai, stream):
    with pytest.raises(openai.NotFoundError) as err:
        oai.responses.create(model="no-such-model", input="hello", stream=stream)

    _assert_openai_error(err.value, 404)
    assert err.value.code == "model_not_found"


@pytest.mark.parametrize("model", TRANSLATED)
def test_previous_response_id_on_a_translated_backend_raises_bad_request_error(oai, model):
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model=model, input="hello", previous_response_id="resp_x")

    _assert_openai_error(err.value, 400)
    assert err.value.param == "previous_response_id"
    assert "stores no responses" in err.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.retrieve("resp_x"),
        lambda r: r.delete("resp_x"),
        lambda r: r.cancel("resp_x"),
    ],
    ids=["retrieve", "delete", "cancel"],
)
def test_stored_response_operations_raise_not_found_error(oai, call):
    with pytest.raises(openai.NotFoundError) as err:
        call(oai.responses)

    _assert_openai_error(err.value, 404)
    assert "stores no responses" in err.value.message


@pytest.mark.parametrize("model", ["limited", "limited-claude", "limited-resp"])
@pytest.mark.parametrize("stream", [False, True])
def test_rate_limited_upstream_raises_rate_limit_error(oai, model, stream):
    with pytest.raises(openai.RateLimitError) as err:
        oai.responses.create(model=model, input="hello", stream=stream)

    _assert_openai_error(err.value, 429)


JSON_SCHEMA_FORMAT = {
    "format": {
        "type": "json_schema",
        "name": "x",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    }
}


def test_json_schema_format_on_anthropic_raises_bad_request_error(oai):
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model="claude-mock", input="hello", text=JSON_SCHEMA_FORMAT)

    _assert_openai_error(err.value, 400)
    assert err.value.param == "text.format"
    assert "text.format" in err.value.message


@pytest.mark.parametrize("model", ["gpt-mock", "resp-mock"])
def test_json_schema_format_is_accepted_by_openai_backends(oai, model):
    response = oai.responses.create(model=model, input="hello", text=JSON_SCHEMA_FORMAT)

    assert response.status == "completed"
    assert response.output_text
