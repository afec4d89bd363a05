"""The real `tollgate` binary started as the chart's pods would start it: the
image's entrypoint with the container's args, the rendered ConfigMap as its
config file, and only the environment the container spec sets (Secrets
filled in). First every rendered config passes `check-config`; then, on the
local Postgres and Redis, the migration Job's container runs, the gateway's
container passes its startup, liveness and readiness probes on the port it
listens on, answers an authenticated request, and drains an open stream
into the ledger when told to stop."""

from __future__ import annotations

import http.client
import json
import threading
import time
import tomllib

import pytest

import chartlib as c
import podsim
from test_image import DOCKERFILE, exec_form, parse_dockerfile

MASTER_KEY = "helm-suite-master-key"
METRICS_TOKEN = "helm-suite-metrics-token"


def entrypoint() -> list[str]:
    return exec_form(parse_dockerfile(DOCKERFILE.read_text())[-1].last("ENTRYPOINT"))


def fake_secrets(database_url: str, redis_url: str, providers: dict) -> podsim.Secrets:
    """The Secrets the values files name, as an operator would create them."""
    secrets = {"tollgate": {
        "master-key": MASTER_KEY,
        "database-url": database_url,
        "redis-url": redis_url,
        "metrics-token": METRICS_TOKEN,
        "alert-webhook": "https://hooks.example.com/tollgate/secret-token",
    }}
    for ref in providers.values():
        secrets.setdefault(ref["name"], {})[ref["key"]] = f"sk-test-{ref['key']}"
    return secrets


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_every_rendered_config_passes_check_config(case, tollgate_bin, tmp_path):
    values = c.values_of(case)
    objects = c.render(values)
    secrets = fake_secrets("postgres://tollgate:pw@db.example.com:5432/tollgate",
                           "redis://redis.example.com:6379",
                           values["secrets"].get("providerKeys", {}))
    for owner in [c.workload(objects), c.migration_job(objects)]:
        if owner is None:
            continue
        root = tmp_path / owner["kind"].lower()
        pod = podsim.Container(objects, owner, root, secrets, entrypoint(), tollgate_bin)
        pod.argv = [pod.argv[0], "check-config"]
        done = pod.run(timeout=30)
        assert done.returncode == 0, f"{case} {owner['kind']}: {done.stdout}{done.stderr}"
        assert done.stdout.startswith(f"{pod.env['TOLLGATE_CONFIG']}: ok")
        # No secret reaches the output.
        for secret in [MASTER_KEY, "pw@", "sk-test-"]:
            assert secret not in done.stdout + done.stderr


def _stream(pod: podsim.Container, result: dict, started: threading.Event) -> None:
    """A streamed chat completion, read event by event."""
    conn = http.client.HTTPConnection("127.0.0.1", pod.port, timeout=30)
    body = json.dumps({"model": "demo", "stream": True,
                       "messages": [{"role": "user", "content": "Tell me a long story."}]})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    result["status"] = response.status
    events = []
    while True:
        line = response.readline()
        if not line:
            break
        line = line.decode().strip()
        if line.startswith("data: "):
            events.append(line[6:])
            started.set()
    result["events"] = events
    started.set()
    conn.close()


def test_migration_job_then_gateway_pod_probes_request_and_drain(
        tollgate_bin, postgres_database, redis_prefix, tmp_path):
    database_url, sql = postgres_database
    redis_url, prefix = redis_prefix
    values = c.deep_merge(c.values_of("serve"), {"config": {"redis": {"prefix": prefix}}})
    objects = c.render(values)
    secrets = fake_secrets(database_url, redis_url, {})

    # 1. The pre-install hook: `tollgate migrate` from the hook's own ConfigMap.
    job = podsim.Container(objects, c.migration_job(objects), tmp_path / "job", secrets,
                           entrypoint(), tollgate_bin)
    assert job.argv[1:] == ["migrate"]
    assert job.env["TOLLGATE_CONFIG"].startswith(str(tmp_path / "job" / "etc" / "tollgate"))
    done = job.run(timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sql("SELECT to_regclass('public.ledger') IS NOT NULL") == "t"
    assert sql("SELECT to_regclass('public.api_keys') IS NOT NULL") == "t"

    # 2. The gateway's container, probed as the kubelet would.
    owner = c.workload(objects)
    pod = podsim.Container(objects, owner, tmp_path / "pod", secrets, entrypoint(), tollgate_bin)
    assert pod.argv[1:] == ["serve"]
    pod.start()
    try:
        probes = owner["spec"]["template"]["spec"]["containers"][0]
        startup = probes["startupProbe"]
        pod.wait_for("startupProbe", startup["periodSeconds"] * startup["failureThreshold"])
        pod.wait_for("livenessProbe", 5)
        pod.wait_for("readinessProbe", 5)
        assert pod.get(pod.probe_url("readinessProbe"))[0] == 200

        # 3. One authenticated request: the configured models.
        status, body = pod.get("/v1/models", {"Authorization": f"Bearer {MASTER_KEY}"})
        assert status == 200, body
        ids = {m["id"] for m in json.loads(body)["data"]}
        assert set(values["config"]["models"]) <= ids
        assert pod.get("/v1/models")[0] == 401
        # /metrics wants the token from the Secret the ServiceMonitor would send.
        assert pod.get("/metrics")[0] == 401
        assert pod.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})[0] == 200

        # 4. A rollout: a stream is open when the kubelet sends SIGTERM (after
        # the preStop pause). The stream finishes, the row reaches Postgres,
        # and the process exits 0 well within terminationGracePeriodSeconds.
        result, started = {}, threading.Event()
        reader = threading.Thread(target=_stream, args=(pod, result, started), daemon=True)
        reader.start()
        assert started.wait(15), "the stream did not start"
        assert "[DONE]" not in result.get("events", []), "the stream ended before SIGTERM"
        pod.terminate()
        stopped_at = time.monotonic()
        grace = owner["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pause = probes["lifecycle"]["preStop"]["sleep"]["seconds"]
        code = pod.process.wait(timeout=grace - pause)
        took = time.monotonic() - stopped_at
        reader.join(timeout=5)
        assert code == 0, pod.logs()[-3000:]
        assert "draining in-flight requests" in pod.logs() and "shutdown complete" in pod.logs()
        assert result.get("status") == 200 and result["events"][-1] == "[DONE]", result
        shutdown_grace = int(tomllib.loads(c.config_toml(objects))["server"]["shutdown_grace"].rstrip("s"))
        assert took < shutdown_grace, f"the drain took {took:.1f}s"
        assert int(sql("SELECT count(*) FROM ledger WHERE stream = 1 AND outcome = 'complete'")) == 1
        # The spool was written out: nothing is left to replay.
        spool = tmp_path / "pod" / "var" / "lib" / "tollgate" / "spool"
        leftovers = [p for p in spool.glob("*.jsonl") if p.stat().st_size > 0]
        assert not leftovers, leftovers
    finally:
        pod.stop()
