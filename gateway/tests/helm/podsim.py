"""A rendered container run as a local process, the way the kubelet would
start it: the image's entrypoint (the real `tollgate` binary in its place)
with the container's command and args, only the environment the container
spec gives (secretKeyRef read from a dict of Secrets), the volumes laid out
under a temporary root (ConfigMaps written as files, emptyDirs and claims as
directories), paths in the environment and the working directory moved
under that root, and the listen address on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import chartlib as c

Secrets = dict[str, dict[str, str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Container:
    """One container of a rendered pod, laid out under `root`."""

    def __init__(self, objects: list[dict[str, Any]], owner: dict[str, Any], root: Path,
                 secrets: Secrets, entrypoint: list[str], binary: Path):
        self.objects = objects
        self.owner = owner
        self.pod = owner["spec"]["template"]["spec"]
        (self.spec,) = self.pod["containers"]
        self.root = root
        self.port = free_port()
        self.container_port = {p["name"]: p["containerPort"] for p in self.spec.get("ports", [])}
        self.mounts: dict[str, Path] = {}
        for mount in self.spec.get("volumeMounts", []):
            local = root / mount["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            source = c.volume_source(self.pod, mount["name"], owner)
            if "configMap" in source:
                cm = self._configmap(source["configMap"]["name"])
                for key, text in cm["data"].items():
                    (local / key).write_text(text)
            self.mounts[mount["mountPath"]] = local
        self.env = self._env(secrets)
        command = self.spec.get("command") or entrypoint
        assert command[0] == entrypoint[0], "the chart runs the image's binary"
        self.argv = [str(binary), *command[1:], *self.spec.get("args", [])]
        self.cwd = self.local(self.spec["workingDir"])
        self.process: subprocess.Popen | None = None
        self.log = root / f"{self.spec['name']}.log"

    def _configmap(self, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"the pod mounts ConfigMap {name}, which the chart does not render")

    def local(self, path: str) -> str:
        """A path in the container, under the local root."""
        for mount, local in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == mount or path.startswith(mount + "/"):
                return str(local / path[len(mount):].lstrip("/"))
        raise AssertionError(f"{path} is on no volume: the root filesystem is read-only")

    def _env(self, secrets: Secrets) -> dict[str, str]:
        assert not self.spec.get("envFrom"), "envFrom is not simulated"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for var in self.spec.get("env", []):
            if "value" in var:
                value = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]], (
                    f"{var['name']}: Secret {ref['name']} has no key {ref['key']} (the kubelet would refuse to start the pod)")
                value = secrets[ref["name"]][ref["key"]]
            if value.startswith("/") and any(value == m or value.startswith(m + "/") for m in self.mounts):
                value = self.local(value)
            env[var["name"]] = value
        # The listen address the pod sets, on a loopback port of our own.
        if "TOLLGATE_LISTEN" in env:
            host, _, port = env["TOLLGATE_LISTEN"].rpartition(":")
            if self.container_port:  # a Job's container listens nowhere
                assert int(port) in self.container_port.values(), "TOLLGATE_LISTEN is the container's port"
            env["TOLLGATE_LISTEN"] = f"127.0.0.1:{self.port}"
        return env

    # ---- running ----

    def run(self, timeout: float) -> subprocess.CompletedProcess:
        """Runs to completion (a Job's container)."""
        return subprocess.run(self.argv, env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=timeout)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd,
                                        stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """What the kubelet does after the preStop hook: SIGTERM."""
        assert self.process
        self.process.send_signal(signal.SIGTERM)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # ---- probes and requests ----

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def probe_url(self, probe: str) -> str:
        get = self.spec[probe]["httpGet"]
        port = get["port"]
        # A named port is the container's; ours listens where TOLLGATE_LISTEN says.
        assert (self.container_port[port] if isinstance(port, str) else port) in self.container_port.values()
        return self.url(get["path"])

    def get(self, path_or_url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
        url = path_or_url if path_or_url.startswith("http") else self.url(path_or_url)
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_for(self, probe: str, deadline_s: float) -> None:
        """Polls a probe until it answers 200, as the kubelet would."""
        deadline = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, f"tollgate exited:\n{self.logs()[-3000:]}"
            try:
                status, _ = self.get(self.probe_url(probe), timeout=2)
                if status == 200:
                    return
                last = status
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{probe} did not pass within {deadline_s}s (last: {last}):\n{self.logs()[-3000:]}")
