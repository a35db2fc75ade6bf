"""`cacherr run --wait-for-rules`: the service before its rules file is valid.

The image starts this way. On a first start the entry point has just written the starter
file (`cacherr init`), which names example paths and needs Plex's address and token; a
container that exited there could not even be `exec`ed into to fix it. So, until the
file loads and its state_dir is usable: answer /health (degraded, saying what is wrong,
so Docker's health check passes) and /metrics (`cacherr_config_last_reload_successful`
0), look again on SIGHUP and whenever the file changes, and stop cleanly on SIGTERM.
Nothing else runs and nothing is written.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from cacherr.config import loader
from cacherr.config.errors import ConfigError
from cacherr.config.model import Config
from cacherr.health import HealthState
from cacherr.metrics import Metrics
from cacherr.server import Server
from cacherr.state.statedir import StateDirError, check_state_dir

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 2.0
TICK_SECONDS = 0.5
DEFAULT_LISTEN = ("0.0.0.0", 5445)
ERRORS_LOGGED = 20


def load_ready(path: Path, environ: Mapping[str, str]) -> tuple[Config | None, list[str]]:
    """Given the rules file, return (its Config, []) if it loads and its state_dir is
    usable, else (None, what is wrong, one line each)."""
    try:
        config = loader.load(path, environ)
    except ConfigError as error:
        return None, error.lines()
    except OSError as error:
        return None, [f"{path}: cannot read the rules file: {error.strerror or error}"]
    try:
        check_state_dir(config.state_dir)
    except StateDirError as error:
        return None, [f"{path}: state_dir: {error}"]
    return config, []


def listen_address(path: Path, environ: Mapping[str, str]) -> tuple[str, int]:
    """Where to answer while waiting: $CACHERR_LISTEN (what `healthcheck` asks first), else
    the file's `server.listen` read as plain YAML, else 0.0.0.0:5445."""
    for listen in (environ.get("CACHERR_LISTEN", ""), _listen_in_file(path)):
        host, separator, port = (listen or "").strip().rpartition(":")
        if separator and port.isdigit() and int(port) < 65536:
            return host.strip("[]") or "0.0.0.0", int(port)
    return DEFAULT_LISTEN


def _listen_in_file(path: Path) -> str:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        listen = document["server"]["listen"]
    except Exception:  # a broken file is what we are waiting out
        return ""
    return listen if isinstance(listen, str) else ""


def _fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class RulesWaiter:
    """Serve health and metrics until the rules file is ready; see the module docstring."""

    def __init__(self, path: Path, environ: Mapping[str, str] = os.environ, *,
                 check_every_seconds: float = CHECK_EVERY_SECONDS):
        self.path = Path(path)
        self.environ = environ
        self.check_every_seconds = check_every_seconds
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.metrics = Metrics(rule_names=(), sources=())
        self.health = HealthState(self.path.absolute().parent)
        self._logged: list[str] | None = None

    def wait(self) -> Config | None:
        """Return the Config once ready (the caller starts the service with it), or None
        if SIGTERM/SIGINT came first. Raise OSError if the address cannot be bound."""
        config, problems = load_ready(self.path, self.environ)
        if config is not None:
            return config
        host, port = listen_address(self.path, self.environ)
        server = Server(host, port, metrics=self.metrics, health=self.health)
        previous = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, self._on_stop), (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup))}
        server.start()
        try:
            seen = _fingerprint(self.path)
            next_check = time.monotonic() + self.check_every_seconds
            while config is None:
                self._not_ready(problems)
                self.health.heartbeat()
                self.metrics.heartbeat()
                # Short waits: a signal may land on a server thread, and the main thread
                # runs its handler only once it wakes up.
                self.wake.wait(min(TICK_SECONDS, self.check_every_seconds))
                if self.stopping.is_set():
                    log.info("stopped while waiting for a valid rules file")
                    return None
                if not self.wake.is_set() and time.monotonic() < next_check:
                    continue
                next_check = time.monotonic() + self.check_every_seconds
                now = _fingerprint(self.path)
                if self.wake.is_set() or now != seen:
                    self.wake.clear()
                    seen = now
                    config, problems = load_ready(self.path, self.environ)
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("%s is valid: starting the service", self.path)
        return config

    def _not_ready(self, problems: list[str]) -> None:
        summary = "; ".join(problems)[:500]
        self.health.set_waiting_for_rules(f"{self.path}: {summary}")
        self.metrics.record_config_reload(False)
        if problems == self._logged:
            return
        self._logged = problems
        log.warning("waiting for a valid rules file: %s has %d problem(s); edit it, then send "
                    "SIGHUP (docker kill -s HUP cacherr) or just save it (it is checked every "
                    "%g s)", self.path, len(problems), self.check_every_seconds)
        for line in problems[:ERRORS_LOGGED]:
            log.warning("%s", line)

    def _on_stop(self, *_):
        self.stopping.set()
        self.wake.set()

    def _on_hup(self, *_):
        self.wake.set()
