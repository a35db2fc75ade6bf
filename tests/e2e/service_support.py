"""Running the real `cacherr run` service as a subprocess, and talking to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import wait_for


class RunningService:
    def __init__(self, rules: Path, state: Path, env: dict[str, str]):
        self.rules, self.state = rules, state
        environment = dict(os.environ, **env)
        environment.pop("CACHERR_CONFIG", None)
        self.log = open(state.parent / "service.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cacherr", "-c", str(rules), "run"],
            stdout=self.log, stderr=subprocess.STDOUT, env=environment)
        runtime = state / "runtime.json"
        wait_for(lambda: runtime.exists() or self.process.poll() is not None,
                 what="the service's runtime file")
        assert self.process.poll() is None, self.output()
        content = json.loads(runtime.read_text())
        self.origin = f"http://127.0.0.1:{content['port']}"

    def get(self, path: str) -> tuple[int, bytes]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.origin + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def health(self) -> tuple[int, dict]:
        status, body = self.get("/health")
        return status, json.loads(body)

    def metric(self, name: str, labels: str = "") -> float | None:
        _, body = self.get("/metrics")
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in body.decode().splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout_seconds: float = 5.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()
