"""Rendering helm/tollgate with Helm's own engine, and reading what it renders.

Every test renders through here: the chart loaded once, values files parsed
by Helm's YAML reader (not PyYAML's, which reads some scalars differently),
the same release name and namespace the README installs with.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "tollgate"
SUITE = Path(__file__).resolve().parent
VALUES = SUITE / "values"
BAD_VALUES = VALUES / "bad"
GOLDEN = SUITE / "golden"

RELEASE = "tollgate"
NAMESPACE = "tollgate"

# The cases that must render (each a values file in values/), and the ones
# whose renders are kept as golden files.
GOOD_CASES = sorted(p.stem for p in VALUES.glob("*.yaml"))
GOLDEN_CASES = ["minimal", "production", "statefulset"]
BAD_CASES = sorted(p.stem for p in BAD_VALUES.glob("*.yaml"))


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def values_of(case: str, bad: bool = False) -> dict[str, Any]:
    path = (BAD_VALUES if bad else VALUES) / f"{case}.yaml"
    return helm.values_from_yaml(path.read_text())


def expected_failure(case: str) -> str:
    """The `# expect: REGEX` line at the top of a bad values file."""
    first = (BAD_VALUES / f"{case}.yaml").read_text().splitlines()[0]
    match = re.match(r"^# expect: (.+)$", first)
    assert match, f"values/bad/{case}.yaml must start with '# expect: REGEX'"
    return match.group(1)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render_raw(values: dict[str, Any], *, upgrade: bool = False) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would print it."""
    return chart().render(
        values=values,
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )


def render(values: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    """Every object the chart renders, NOTES.txt left out."""
    objects = []
    for path, text in sorted(render_raw(values, **kw).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__template", path)
                objects.append(doc)
    return objects


def without_template(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__template"}


def render_case(case: str, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    values = values_of(case)
    if extra:
        values = deep_merge(values, extra)
    return render(values)


def find(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> list[dict[str, Any]]:
    found = [o for o in objects if o["kind"] == kind]
    if component is not None:
        found = [
            o for o in found
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
    return found


def one(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, component)
    assert len(found) == 1, f"expected one {kind} ({component}), found {len(found)}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, f"expected one Deployment or StatefulSet, found {len(found)}"
    return found[0]


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return workload(objects)["spec"]["template"]["spec"]["containers"][0]


def migration_job(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    jobs = find(objects, "Job", "migrations")
    return jobs[0] if jobs else None


def hook_configmap(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    cms = find(objects, "ConfigMap", "migrations")
    return cms[0] if cms else None


def gateway_configmap(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "ConfigMap", "gateway")


def config_toml(objects: list[dict[str, Any]]) -> str:
    return gateway_configmap(objects)["data"]["tollgate.toml"]


def volume_source(pod_spec: dict[str, Any], volume_name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pod volume by name, or the StatefulSet claim template of that name."""
    for volume in pod_spec.get("volumes", []):
        if volume["name"] == volume_name:
            return volume
    if owner is not None:
        for claim in owner["spec"].get("volumeClaimTemplates", []):
            if claim["metadata"]["name"] == volume_name:
                return {"name": volume_name, "persistentVolumeClaim": claim}
    raise AssertionError(f"no volume named {volume_name}")


def golden_text(case: str) -> str:
    """A case's render as one text: each template's output under its path.
    The dashboards' JSON is left out (a placeholder names the file): it is
    dashboards/*.json as it is, which test_chart checks, so regenerating a
    dashboard needs no new golden render."""
    parts = []
    for path, text in sorted(render_raw(values_of(case)).items()):
        if path.endswith("/dashboards.yaml"):
            text = re.sub(r"^  (\S+\.json): \|-\n(?:    .*\n?|\n)*",
                          lambda m: f"  {m.group(1)}: <dashboards/{m.group(1)}>\n", text, flags=re.M)
        parts.append(f"# Source: {path}\n{text.strip()}\n")
    return "\n".join(parts)


def blessing() -> bool:
    return os.environ.get("HELM_BLESS") == "1"
