"""The ledger records the SDK traffic (named to run after the other files).

Rows reach the database through a batching writer with a short flush interval,
so the spend report is polled until it shows them, with a deadline.
"""

import time

import pytest

from conftest import MODELS, OUTPUT_TOKENS

DEADLINE_SECONDS = 10


def _spend_by_model(http, master_key):
    reply = http.get(
        "/admin/spend", params={"group_by": "model"}, headers={"Authorization": f"Bearer {master_key}"}
    )
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["object"] == "spend_report"
    assert report["group_by"] == "model"
    return {row["group"]: row for row in report["data"]}


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

    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        rows = _spend_by_model(http, master_key)
        if all(_requests(rows, m) >= _requests(before, m) + 2 for m in MODELS):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the ledger did not record the requests within {DEADLINE_SECONDS}s: {rows}")
        time.sleep(0.1)

    for model in MODELS:
        row = rows[model]
        assert row["requests"] > 0
        assert row["output_tokens"] >= OUTPUT_TOKENS * 2
        assert row["input_tokens"] + row["cached_input_tokens"] > 0
        assert row["cost_picousd"] > 0
