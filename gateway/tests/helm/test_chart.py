"""helm/tollgate rendered with Helm's own engine: lint, Kubernetes schemas,
golden renders, values that must be refused, and what the chart promises
(drain, secrets, security, hooks, scaling)."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

import chartlib as c
import crds

KUBERNETES = "1.37"


# ---- lint and Kubernetes schemas -------------------------------------------


def test_chart_is_apiversion_v2_with_the_workspace_version_as_app_version():
    meta = c.chart().metadata
    cargo = tomllib.loads((c.ROOT / "Cargo.toml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == cargo["workspace"]["package"]["version"]
    # No bundled database subcharts: Postgres and Redis are the operator's.
    assert not meta.get("dependencies")
    assert not (c.CHART / "charts").exists()


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_lint_finds_nothing_above_info(case):
    report = helm.lint(c.CHART, c.values_of(case), strict=True, kube_version=f"v{KUBERNETES}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_every_rendered_object_validates_against_kubernetes_schemas(case):
    objects = c.render_case(case)
    assert objects
    for obj in objects:
        obj = c.without_template(obj)
        if crds.validate_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{case}: {obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")


def test_kubernetes_schemas_are_a_current_release():
    assert kubernetes_validate.latest_version() >= "1.33"
    assert kubernetes_validate.latest_version().startswith(KUBERNETES)


# ---- golden renders -----------------------------------------------------------


@pytest.mark.parametrize("case", c.GOLDEN_CASES)
def test_render_equals_golden(case):
    got = c.golden_text(case)
    path = c.GOLDEN / f"{case}.yaml"
    if c.blessing():
        path.write_text(got)
        return
    assert path.exists(), f"{path} is missing: run gateway/tests/helm/run.sh --bless and review it"
    want = path.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(
            want.splitlines(True), got.splitlines(True), f"golden/{case}.yaml", "rendered", n=2))
        pytest.fail(f"the render of {case} changed (gateway/tests/helm/run.sh --bless accepts it):\n{diff[:6000]}")


# ---- values that must be refused ---------------------------------------------------


@pytest.mark.parametrize("case", c.BAD_CASES)
def test_bad_values_fail_with_a_message_naming_the_problem(case):
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as failed:
        c.render(c.values_of(case, bad=True))
    message = str(failed.value)
    assert re.search(c.expected_failure(case), message), message


@pytest.mark.parametrize("case", ["plaintext-api-key", "plaintext-alert-webhook"])
def test_a_refused_plaintext_secret_is_not_echoed(case):
    values = c.values_of(case, bad=True)
    secret = (values["config"].get("providers", {}).get("kimi", {}).get("api_key")
              or values["config"]["quotas"]["alert_webhook"])
    with pytest.raises(helm.HelmRenderError) as failed:
        c.render(values)
    assert secret not in str(failed.value)
    assert secret.split("/")[-1] not in str(failed.value)


def test_more_replicas_are_accepted_with_postgres_and_redis():
    values = c.deep_merge(c.values_of("minimal"), {
        "replicaCount": 4,
        "secrets": {"databaseUrl": {"name": "tollgate"}, "redisUrl": {"name": "tollgate"}},
    })
    assert c.workload(c.render(values))["spec"]["replicas"] == 4


# ---- values.yaml and values.schema.json -----------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads((c.CHART / "values.schema.json").read_text())


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follows $ref and picks the non-null branch of a oneOf."""
    while True:
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].split("/")[-1]]
        elif "oneOf" in node:
            branches = [b for b in node["oneOf"] if b.get("type") != "null"]
            if len(branches) != 1:
                return node  # a choice of scalars (int or percent): no keys
            node = branches[0]
        else:
            return node


def _key_differences(schema, node, value, path) -> list[str]:
    node = _resolve(schema, node)
    out = []
    if isinstance(value, dict) and "properties" in node:
        in_values, in_schema = set(value), set(node["properties"])
        out += [f"{path}.{k}: in values.yaml, not in the schema" for k in sorted(in_values - in_schema)]
        out += [f"{path}.{k}: in the schema, not in values.yaml" for k in sorted(in_schema - in_values)]
        for k in sorted(in_values & in_schema):
            out += _key_differences(schema, node["properties"][k], value[k], f"{path}.{k}")
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for k, v in value.items():
            out += _key_differences(schema, node["additionalProperties"], v, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, v in enumerate(value):
            out += _key_differences(schema, node["items"], v, f"{path}[{i}]")
    return out


def test_values_yaml_and_schema_name_the_same_keys():
    schema = _schema()
    values = yaml.safe_load((c.CHART / "values.yaml").read_text())
    differences = _key_differences(schema, schema, values, "")
    assert not differences, "\n".join(differences)


def test_default_values_validate_against_the_schema():
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((c.CHART / "values.yaml").read_text()))
    c.chart().validate_schema({})


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_every_good_values_file_validates_against_the_schema(case):
    c.chart().validate_schema(c.values_of(case))


# The keys of each [table] the chart writes itself (and so leaves out of
# `config` in the values).
CHART_OWNED = {
    "server": {"listen", "master_key", "shutdown_grace"},
    "ledger": {"spool_dir"},
    "database": {"url"},
    "redis": {"url"},
    "metrics": {"token"},
}


def _raw_structs() -> dict[str, dict[str, str]]:
    """The gateway's config structs as written: struct name -> {field: type}."""
    text = (c.ROOT / "gateway" / "src" / "config" / "raw.rs").read_text()
    structs = {}
    for name, body in re.findall(r"pub struct (Raw\w+) \{(.*?)\n\}", text, re.S):
        structs[name] = dict(re.findall(r"^\s*pub (\w+): ([^\n]+),$", body, re.M))
    return structs


def _inner_struct(rust_type: str) -> str | None:
    found = re.findall(r"Raw\w+", rust_type)
    return found[-1] if found else None


def _schema_fields(schema, node) -> tuple[dict[str, Any], str]:
    """An object schema's properties, through maps and arrays of objects."""
    node = _resolve(schema, node)
    if node.get("type") == "array":
        return _schema_fields(schema, node["items"])
    if "properties" not in node and isinstance(node.get("additionalProperties"), dict):
        return _schema_fields(schema, node["additionalProperties"])
    return node.get("properties", {}), node.get("type", "")


def _compare(schema, structs, struct, node, owned, path) -> list[str]:
    fields = structs[struct]
    props, _ = _schema_fields(schema, node) if node is not None else ({}, "")
    out = []
    for field in sorted(set(fields) - set(props) - owned):
        out.append(f"config.{path}{field}: the gateway reads it ({struct}), the chart's schema has no such key")
    for field in sorted(set(props) - set(fields)):
        out.append(f"config.{path}{field}: in the chart's schema, not a key of the gateway ({struct})")
    for field in sorted(set(props) & owned):
        out.append(f"config.{path}{field}: the chart writes it; values must not")
    for field, rust_type in fields.items():
        inner = _inner_struct(rust_type)
        if inner and field in props:
            out += _compare(schema, structs, inner, props[field], set(), f"{path}{field}.")
    return out


def test_config_schema_follows_the_gateways_config_keys():
    """Every key Tollgate's config reads (gateway/src/config/raw.rs) is in the
    schema's `config` or written by the chart, and nothing else is: a key
    added to the gateway shows up here."""
    schema = _schema()
    structs = _raw_structs()
    top = structs["RawConfig"]
    config_props = schema["properties"]["config"]["properties"]
    problems = []
    for table in sorted(set(config_props) - set(top)):
        problems.append(f"config.{table}: in the chart's schema, not a table of the gateway's config")
    for table, rust_type in top.items():
        struct = _inner_struct(rust_type)
        assert struct, rust_type
        owned = CHART_OWNED.get(table, set())
        if table not in config_props:
            if set(structs[struct]) - owned:
                problems.append(f"config.{table}: a table of the gateway's config the chart's schema lacks")
            continue
        problems += _compare(schema, structs, struct, config_props[table], owned, f"{table}.")
    assert not problems, "\n".join(problems)


# ---- the config: secrets by reference only ---------------------------------------------


SECRET_KEYS = [
    ("server", "master_key"),
    ("database", "url"),
    ("redis", "url"),
    ("metrics", "token"),
    ("quotas", "alert_webhook"),
]
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_config_holds_secrets_only_as_references_the_pods_can_fill(case):
    objects = c.render_case(case)
    text = c.config_toml(objects)
    config = tomllib.loads(text)
    secrets = [config.get(t, {}).get(k) for t, k in SECRET_KEYS]
    secrets += [p.get("api_key") for p in config.get("providers", {}).values()]
    for value in filter(None, secrets):
        if value.startswith("sqlite://"):
            continue
        assert re.fullmatch(r"\$\{[A-Z0-9_]+\}", value), f"{case}: a secret key holds {value!r}"
    # Every ${VAR} the config names is set in the gateway's environment, and
    # in the migration Job's, from a Secret when it is one.
    referenced = {m.group(1) for v in _strings(config) for m in ENV_REF.finditer(v) if ":-" not in m.group(0)}
    containers = [c.gateway_container(objects)]
    job = c.migration_job(objects)
    if job:
        containers.append(job["spec"]["template"]["spec"]["containers"][0])
    for container in containers:
        missing = referenced - _env_names(container)
        assert not missing, f"{case}: {container['name']} lacks {missing}"
        for env in container["env"]:
            if env["name"] in referenced:
                assert "secretKeyRef" in env.get("valueFrom", {}), env


def test_provider_keys_come_from_the_named_secrets():
    objects = c.render_case("production")
    config = tomllib.loads(c.config_toml(objects))
    assert config["providers"]["kimi"]["api_key"] == "${TOLLGATE_PROVIDER_KEY_KIMI}"
    assert config["providers"]["claude"]["api_key"] == "${TOLLGATE_PROVIDER_KEY_CLAUDE}"
    env = {e["name"]: e for e in c.gateway_container(objects)["env"]}
    assert env["TOLLGATE_PROVIDER_KEY_KIMI"]["valueFrom"]["secretKeyRef"] == {
        "name": "tollgate-providers", "key": "moonshot"}


def test_config_change_rolls_the_pods_and_nothing_else_does():
    def checksum(extra):
        return c.workload(c.render_case("minimal", extra))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum({})
    assert base == checksum({"podLabels": {"team": "platform"}})
    assert base != checksum({"config": {"ledger": {"batch_rows": 100}}})
    assert base != checksum({"shutdown": {"graceSeconds": 60}})


def test_numbers_render_as_toml_integers_and_floats():
    objects = c.render_case("minimal", {"config": {
        "server": {"max_body_bytes": 33554432},
        "models": {"demo": {"input_per_mtok": 3, "output_per_mtok": 0.6,
                            "tiers": [{"above_input_tokens": 200000, "input_per_mtok": 1.25}]}},
        "quotas": {"alert_thresholds": [0.5, 1]},
    }})
    text = c.config_toml(objects)
    assert "max_body_bytes = 33554432\n" in text
    assert "input_per_mtok = 3\n" in text
    assert "output_per_mtok = 0.6\n" in text
    assert "tiers = [{ above_input_tokens = 200000, input_per_mtok = 1.25 }]" in text
    assert "alert_thresholds = [0.5, 1]" in text
    assert tomllib.loads(text)["server"]["max_body_bytes"] == 33554432


# ---- the pod: drain, probes, security --------------------------------------------------


def _duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", text)
    assert match, text
    return int(match.group(1))


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_termination_grace_covers_the_pause_the_grace_and_the_ledger_drain(case):
    objects = c.render_case(case)
    pod = c.workload(objects)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = _duration_seconds(tomllib.loads(c.config_toml(objects))["server"]["shutdown_grace"])
    # After the grace: up to 2 s for ended streams to record themselves and
    # 6 s for the ledger writer (gateway/src/app.rs), 2 s to spare.
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + 10
    assert pause >= 1


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_probes_use_tollgates_health_paths_on_the_listen_port(case):
    objects = c.render_case(case)
    container = c.gateway_container(objects)
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (port,) = container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert port["name"] == "http"
    assert env["TOLLGATE_LISTEN"].endswith(f":{port['containerPort']}")
    listen = tomllib.loads(c.config_toml(objects))["server"]["listen"]
    assert listen == "${TOLLGATE_LISTEN:-0.0.0.0:%d}" % port["containerPort"]
    service = c.one(objects, "Service", "gateway")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _pods(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("case", c.GOOD_CASES)
def test_pods_meet_the_restricted_pod_security_standard(case):
    for owner, pod in _pods(c.render_case(case)):
        name = f"{case}: {owner['kind']}"
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["runAsNonRoot"] is True, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert not sc.get("privileged"), name
            assert "resources" in container and container["resources"], name
            # Writable mounts: the data volume and /tmp only; the config is read-only.
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert writable == {"/var/lib/tollgate", "/tmp"}, name
            for mount in container["volumeMounts"]:
                source = c.volume_source(pod, mount["name"], owner)
                kinds = set(source) - {"name"}
                assert kinds <= {"configMap", "emptyDir", "persistentVolumeClaim"}, (name, kinds)
                if "configMap" in source:
                    assert mount.get("readOnly") is True, name


def test_spool_is_an_emptydir_by_default_and_a_claim_per_pod_with_persistence():
    objects = c.render_case("minimal")
    deployment = c.one(objects, "Deployment")
    data = c.volume_source(deployment["spec"]["template"]["spec"], "data")
    assert data["emptyDir"]["sizeLimit"] == "2Gi"
    assert tomllib.loads(c.config_toml(objects))["ledger"]["spool_dir"] == "spool"
    assert c.gateway_container(objects)["workingDir"] == "/var/lib/tollgate"

    objects = c.render_case("statefulset")
    sts = c.one(objects, "StatefulSet")
    assert not c.find(objects, "Deployment")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert sts["spec"]["serviceName"] == "tollgate-headless"
    assert c.find(objects, "Service", "gateway-headless")[0]["spec"]["clusterIP"] == "None"


# ---- migrations ----------------------------------------------------------------


def test_migrations_run_once_as_a_pre_install_and_pre_upgrade_hook():
    objects = c.render_case("production")
    job, hook_cm = c.migration_job(objects), c.hook_configmap(objects)
    for obj in (job, hook_cm):
        ann = obj["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    # Hooks run in weight order: the Job's config exists before the Job.
    assert int(hook_cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"])
    # The same config as the gateway's, from the hook's own ConfigMap.
    assert hook_cm["data"] == c.gateway_configmap(objects)["data"]
    pod = job["spec"]["template"]["spec"]
    assert c.volume_source(pod, "config")["configMap"]["name"] == hook_cm["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    assert "command" not in container
    # Not the chart's ServiceAccount, which a first install has not created yet.
    assert "serviceAccountName" not in pod
    assert pod["restartPolicy"] == "Never"
    # Its pods are not the gateway's: the Service and the PDB do not select them.
    labels = pod_labels = job["spec"]["template"]["metadata"]["labels"]
    selector = c.one(objects, "Service", "gateway")["spec"]["selector"]
    assert not all(pod_labels.get(k) == v for k, v in selector.items()), labels


def test_no_migration_job_without_postgres():
    objects = c.render_case("minimal")
    assert c.migration_job(objects) is None and c.hook_configmap(objects) is None
    assert tomllib.loads(c.config_toml(objects))["database"]["url"] == "sqlite://tollgate.db"


# ---- scaling, disruption, monitoring, routing -------------------------------------------


def test_autoscaler_waits_out_long_streams_before_scaling_down():
    objects = c.render_case("production")
    hpa = c.one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tollgate"}
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 600
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    # The HPA owns the replica count.
    assert "replicas" not in c.workload(objects)["spec"]
    sts = c.render_case("statefulset", {"autoscaling": {"enabled": True}})
    assert c.one(sts, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_optional_objects_are_off_by_default():
    kinds = {o["kind"] for o in c.render_case("minimal")}
    assert kinds == {"ConfigMap", "Service", "ServiceAccount", "Deployment"}


def test_service_monitor_scrapes_with_the_metrics_token():
    objects = c.render_case("production")
    (endpoint,) = c.one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "tollgate", "key": "metrics-token"}}
    assert tomllib.loads(c.config_toml(objects))["metrics"]["token"] == "${TOLLGATE_METRICS_TOKEN}"
    sm = c.one(c.render_case("minimal", {"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert "authorization" not in sm["spec"]["endpoints"][0]


def test_ingress_and_route_suit_streams():
    ingress = c.one(c.render_case("production"), "Ingress")
    ann = ingress["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    # Longer than Tollgate's own total upstream timeout (15 m).
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 15 * 60
    route = c.one(c.render_case("statefulset"), "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "1h", "backendRequest": "1h"}
    assert rule["backendRefs"] == [{"name": "tollgate", "port": 8080}]


def test_dashboards_render_as_configmaps_for_grafanas_sidecar():
    objects = c.find(c.render_case("production"), "ConfigMap", "dashboards")
    sources = {p.name: json.loads(p.read_text()) for p in (c.ROOT / "dashboards").glob("*.json")}
    assert len(objects) == len(sources) == 5
    for cm in objects:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Tollgate"}
        ((name, text),) = cm["data"].items()
        assert json.loads(text) == sources[name]


def test_chart_dashboards_are_copies_of_the_repositorys():
    """Helm reads only files inside the chart. python3 dashboards/generate.py
    writes both."""
    ours = {p.name: p.read_bytes() for p in (c.CHART / "dashboards").glob("*.json")}
    theirs = {p.name: p.read_bytes() for p in (c.ROOT / "dashboards").glob("*.json")}
    stale = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
    assert not stale, f"helm/tollgate/dashboards differs from dashboards/ in {stale}: run python3 dashboards/generate.py (and remove any the repository dropped)"


def test_network_policy_admits_the_port_and_restricts_egress_on_request():
    policy = c.one(c.render_case("production"), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    restricted = c.one(c.render_case("statefulset"), "NetworkPolicy")
    assert restricted["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns = restricted["spec"]["egress"][0]["ports"]
    assert {"port": 53, "protocol": "UDP"} in dns


def test_spread_constraints_select_the_gateway_pods_by_default():
    pod = c.workload(c.render_case("production"))["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert "preferredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]


def test_notes_say_how_to_make_the_first_request():
    notes = c.render_raw(c.values_of("minimal"))["tollgate/templates/NOTES.txt"]
    assert "port-forward svc/tollgate 8080:8080" in notes
    assert "/v1/models" in notes
    assert "only\none replica can run" in notes or "only one replica" in notes.replace("\n", " ")
