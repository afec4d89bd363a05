"""The ledger records the SDK traffic (named to run after the other files).

Rows reach the database through a batching writer with a short flush interval,
so the spend report is polled until it shows them, with a deadline.
"""

import re
import time

import openai
import pytest

from conftest import CACHED_TOKENS, MODELS, OUTPUT_TOKENS, REASONING_TOKENS, RESPONSES_MODELS

DEADLINE_SECONDS = 10


def _spend_by(http, master_key, group_by, **filters):
    reply = http.get(
        "/admin/spend",
        params={"group_by": group_by, **filters},
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["object"] == "spend_report"
    assert report["group_by"] == group_by
    return {row["group"]: row for row in report["data"]}


def _spend_by_model(http, master_key, **filters):
    return _spend_by(http, master_key, "model", **filters)


def _poll_until(http, master_key, done, **filters):
    """The spend by model once `done(rows)` holds, failing at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        rows = _spend_by_model(http, master_key, **filters)
        if done(rows):
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"the ledger did not record the requests within {DEADLINE_SECONDS}s: {rows}")
        time.sleep(0.1)


def _requests(rows, model):
    return rows.get(model, {}).get("requests", 0)


def test_admin_spend_refuses_a_virtual_key(http, api_key):
    reply = http.get("/admin/spend", headers={"Authorization": f"Bearer {api_key}"})

    assert reply.status_code == 403


def test_admin_spend_refuses_a_missing_key(http):
    assert http.get("/admin/spend").status_code == 401


def test_ledger_records_traffic_through_both_doors(http, master_key, oai, ant):
    before = _spend_by_model(http, master_key)

    # Two requests per model, one through each door, on top of whatever the
    # other test files sent.
    for model in MODELS:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
        ant.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": "hello"}])

    rows = _poll_until(http, master_key, lambda rows: all(_requests(rows, m) >= _requests(before, m) + 2 for m in MODELS))

    for model in MODELS:
        row = rows[model]
        assert row["requests"] > 0
        assert row["output_tokens"] >= OUTPUT_TOKENS * 2
        assert row["input_tokens"] + row["cached_input_tokens"] > 0
        assert row["cost_picousd"] > 0


def test_ledger_records_the_responses_door_under_the_keys_team(http, master_key, api_key, oai):
    me = http.get("/v1/me", headers={"Authorization": f"Bearer {api_key}"})
    assert me.status_code == 200, me.text
    team_id = me.json()["team"]["id"]
    before = _spend_by_model(http, master_key, team_id=team_id)

    # One request per backend kind through the Responses door. `resp-mock` is
    # reached through no other door in this suite, so its row is this door's
    # traffic alone (the spend report has no endpoint grouping).
    for model in RESPONSES_MODELS:
        oai.responses.create(model=model, input="hello")

    rows = _poll_until(
        http,
        master_key,
        lambda rows: all(_requests(rows, m) >= _requests(before, m) + 1 for m in RESPONSES_MODELS),
        team_id=team_id,
    )

    for model in RESPONSES_MODELS:
        row = rows[model]
        assert row["output_tokens"] >= OUTPUT_TOKENS
        assert row["input_tokens"] + row["cached_input_tokens"] > 0
        assert row["cost_picousd"] > 0
    # The passed-through answer's usage is read from the Responses shape.
    assert rows["resp-mock"]["reasoning_tokens"] >= REASONING_TOKENS
    assert rows["resp-mock"]["cached_input_tokens"] >= CACHED_TOKENS

    teams = _spend_by(http, master_key, "team")
    assert teams[team_id]["requests"] >= sum(row["requests"] for row in rows.values())


def _requests_total(http):
    """`tollgate_requests_total` from /metrics, as {(endpoint, model, provider, status): count}."""
    reply = http.get("/metrics")
    assert reply.status_code == 200
    totals = {}
    for line in reply.text.splitlines():
        match = re.fullmatch(r"tollgate_requests_total\{(.*)\} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1)))
            key = (labels["endpoint"], labels["model"], labels["provider"], labels["status"])
            totals[key] = float(match.group(2))
    return totals


def test_metrics_count_the_responses_door_by_endpoint(http, oai):
    # The spend report has no endpoint grouping; the request counter has.
    expected = [
        ("responses", "gpt-mock", "oai", "200"),
        ("responses", "claude-mock", "ant", "200"),
        ("responses", "resp-mock", "oai_resp", "200"),
        ("responses", "limited-resp", "limited_resp", "429"),
    ]
    before = _requests_total(http)
    for model in RESPONSES_MODELS:
        oai.responses.create(model=model, input="hello")
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model="limited-resp", input="hello")

    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        totals = _requests_total(http)
        if all(totals.get(key, 0) >= before.get(key, 0) + 1 for key in expected):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"/metrics did not count the requests within {DEADLINE_SECONDS}s: {totals}")
        time.sleep(0.1)
