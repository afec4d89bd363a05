"""The Dockerfile against the chart, without a container engine: the runtime
stage's binary, user, port, entrypoint, command, config path and data
directory are what the pods the chart renders expect, and the build context
(.dockerignore) holds every file the build reads. The entrypoint and command
running with the rendered config are in test_binary.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import chartlib as c

DOCKERFILE = c.ROOT / "Dockerfile"
DOCKERIGNORE = c.ROOT / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]

    def last(self, op: str) -> str:
        found = self.all(op)
        assert found, f"the stage has no {op}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage: continuations joined, comments dropped, ARG
    defaults declared before the first FROM substituted into FROM lines."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    args, stages = {}, []
    for line in lines:
        op, _, rest = line.strip().partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest)
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{op} before FROM"
            stages[-1].instructions.append((op, rest))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args} is not the exec (JSON) form"
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def rendered():
    return c.render_case("production")


def test_build_stage_builds_tollgate_with_the_locked_dependencies(stages):
    build = stages[0]
    assert build.base.startswith("rust:") and build.base.endswith("-bookworm"), build.base
    (run,) = [r for r in build.all("RUN") if "cargo build" in r]
    assert "cargo build --release --locked -p tollgate" in run
    # The dependencies are compiled in a cache that outlives a source change.
    assert "--mount=type=cache,target=/usr/local/cargo/registry" in run
    assert "--mount=type=cache,target=/src/target" in run


def test_runtime_stage_is_minimal_and_runs_as_the_pods_user(runtime, rendered):
    # distroless cc on the build stage's Debian: glibc, libgcc, CA certificates.
    assert runtime.base == "gcr.io/distroless/cc-debian12:nonroot"
    assert not runtime.all("RUN"), "the runtime stage has no shell to run anything"
    user, _, group = runtime.last("USER").partition(":")
    assert user.isdigit() and group.isdigit(), "a numeric user, so runAsNonRoot can check it"
    for _, pod in _pods(rendered):
        sc = pod["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"]) == (int(user), int(group))
        assert sc["runAsNonRoot"] is True and int(user) != 0


def _pods(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


def test_entrypoint_is_the_binary_and_the_command_is_what_the_pods_run(runtime, rendered):
    entrypoint = exec_form(runtime.last("ENTRYPOINT"))
    assert entrypoint == ["/usr/local/bin/tollgate"]
    copies = [shlex.split(a) for a in runtime.all("COPY")]
    assert any(args[-1] == entrypoint[0] and "--from=build" in args for args in copies), copies
    # The pods keep the entrypoint (no `command`) and give the subcommand.
    assert exec_form(runtime.last("CMD")) == ["serve"] == c.gateway_container(rendered)["args"]
    assert "command" not in c.gateway_container(rendered)
    job = c.migration_job(rendered)["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in job and job["args"] == ["migrate"]


def test_port_config_path_and_data_directory_agree_with_the_chart(runtime, rendered):
    (exposed,) = runtime.all("EXPOSE")
    container = c.gateway_container(rendered)
    (port,) = container["ports"]
    assert int(exposed.split("/")[0]) == port["containerPort"] == 8080
    # The config: TOLLGATE_CONFIG in the image and in the pod, the ConfigMap
    # mounted at that directory with the file under that name.
    image_env = dict(shlex.split(e)[0].split("=", 1) for e in runtime.all("ENV"))
    pod_env = {e["name"]: e.get("value") for e in container["env"]}
    config_path = Path(image_env["TOLLGATE_CONFIG"])
    assert str(config_path) == pod_env["TOLLGATE_CONFIG"] == "/etc/tollgate/tollgate.toml"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[str(config_path.parent)]["readOnly"] is True
    assert config_path.name in c.gateway_configmap(rendered)["data"]
    # The data directory: the image's working directory and volume, the
    # pod's working directory and writable mount.
    workdir = runtime.last("WORKDIR")
    assert workdir == container["workingDir"] == "/var/lib/tollgate"
    assert exec_form(runtime.last("VOLUME")) == [workdir]
    assert not mounts[workdir].get("readOnly")
    chowned = [shlex.split(a) for a in runtime.all("COPY") if "--chown=65532:65532" in a]
    assert any(args[-1] == workdir for args in chowned), "the data directory belongs to the runtime user"
    # The listen address: the config's default and the pod's variable name the exposed port.
    listen = re.search(r'^listen = "\$\{TOLLGATE_LISTEN:-([^}]+)\}"$', c.config_toml(rendered), re.M)
    assert listen and listen.group(1) == f"0.0.0.0:{exposed}"
    assert pod_env["TOLLGATE_LISTEN"] == f"0.0.0.0:{exposed}"


# ---- the build context ------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """The patterns as Docker reads them (moby's patternmatcher): cleaned
    paths, `*` and `?` within one path element, `**` across elements, `!`
    re-including; the last pattern that matches a path or a parent wins."""
    out = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        out.append((negate, re.compile(f"^{regex}$")))
    return out


def in_context(path: str, patterns) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return not excluded


def repository_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(c.ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if (c.ROOT / line).exists()]


def test_dockerignore_matcher_reads_patterns_as_docker_does():
    patterns = [(False, re.compile("^[^/]*$")), (True, re.compile("^gateway/src$")),
                (False, re.compile("^(?:.*/)?node_modules$"))]
    assert not in_context("README.md", patterns)
    assert not in_context("helm/tollgate/values.yaml", patterns)
    assert in_context("gateway/src/main.rs", patterns)
    assert not in_context("gateway/src/x/node_modules/a.js", patterns)


def test_build_context_holds_what_cargo_build_reads_and_not_the_rest():
    patterns = dockerignore_patterns()
    files = repository_files()
    context = {f for f in files if in_context(f, patterns)}
    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"],
        cwd=c.ROOT, check=True, capture_output=True, text=True).stdout)
    needed = {"Cargo.toml", "Cargo.lock"}
    for package in metadata["packages"]:
        manifest = Path(package["manifest_path"]).relative_to(c.ROOT)
        needed.add(str(manifest))
        for target in package["targets"]:
            # Cargo reads every lib, bin and example target's file when it
            # loads the workspace (examples are found by name), and runs the
            # build scripts; tests and benches named by path it does not
            # need to build tollgate.
            if set(target["kind"]) & {"lib", "bin", "example", "custom-build"}:
                needed.add(str(Path(target["src_path"]).relative_to(c.ROOT)))
    # Every source file of every member, the migrations sqlx embeds, the
    # spend page's files, the Lua scripts.
    for f in files:
        if re.match(r"^(gateway|router|billing|loadtest)/src/", f) or f.startswith(("migrations/", "gateway/ui/")):
            needed.add(f)
    missing = sorted(needed - context)
    assert not missing, f".dockerignore leaves out files the build reads: {missing}"
    # And the build context is no bigger than that: no tests, targets, chart or history.
    for f in context:
        assert not f.startswith(("target/", "gateway/tests/", "helm/", ".git/", "dashboards/")), f
