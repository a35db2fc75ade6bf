"""How commands find and reach a running service: the runtime file the server writes in
the state directory (host, port, pid), and requests to it, over its Unix socket in the
state directory when this process may open it (no token needed), else over TCP with
`server.token`."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cacherr import __version__
from cacherr.api import EvictRequest

log = logging.getLogger(__name__)

RUNTIME_FILE = "runtime.json"
SOCKET_FILE = "api.sock"


def write_runtime_file(state_dir: Path, host: str, port: int) -> Path:
    """Atomically write `<state_dir>/runtime.json` with host, port, pid; return its path."""
    target = Path(state_dir) / RUNTIME_FILE
    content = json.dumps({"host": host, "port": port, "pid": os.getpid(),
                          "version": __version__, "started": time.time()}, indent=1) + "\n"
    descriptor, temporary = tempfile.mkstemp(prefix=".runtime.", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def read_runtime_file(state_dir: str | Path) -> dict[str, Any] | None:
    """Return the runtime file's content, or None if missing or unreadable."""
    try:
        content = json.loads((Path(state_dir) / RUNTIME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def remove_runtime_file(state_dir: Path) -> None:
    """Remove the runtime file if this process wrote it."""
    content = read_runtime_file(state_dir)
    if content is not None and content.get("pid") == os.getpid():
        try:
            (Path(state_dir) / RUNTIME_FILE).unlink()
        except OSError as error:
            log.warning("could not remove %s: %s", Path(state_dir) / RUNTIME_FILE, error)


def connect_host(listen_host: str) -> str:
    """Given a listen host, return the address a local client connects to."""
    if listen_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if listen_host == "::":
        return "[::1]"
    return f"[{listen_host}]" if ":" in listen_host else listen_host


def service_origin(state_dir: str | Path) -> str | None:
    """Return the http:// origin of the service whose runtime file is in `state_dir`, or None."""
    content = read_runtime_file(state_dir)
    try:
        return f"http://{connect_host(str(content['host']))}:{int(content['port'])}"
    except (TypeError, KeyError, ValueError):
        return None


def _body(request: EvictRequest) -> bytes:
    return json.dumps({"paths": list(request.paths), "all": request.all,
                       "hold_seconds": request.hold_seconds}).encode()


def _refused(code: int, body: bytes) -> ValueError:
    try:
        message = json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        message = ""
    return ValueError(f"the service refused: HTTP {code} {message}".strip())


def request_evict(origin: str, request: EvictRequest, timeout_seconds: float | None = 10.0,
                  token: str | None = None) -> dict[str, Any]:
    """POST `request` to a running service's /api/evict over TCP (with `server.token` as a
    bearer token when given); return its JSON answer.

    Raise OSError if the service cannot be reached, and ValueError (with the service's
    message) if it refused the request.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http_request = urllib.request.Request(f"{origin}/api/evict", data=_body(request),
                                          method="POST", headers=headers)
    # No proxy: HTTP_PROXY must not take a request meant for this host.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(http_request, timeout=timeout_seconds) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise _refused(error.code, error.read()) from None


class _SocketConnection(http.client.HTTPConnection):
    """HTTP over the service's Unix socket; long folder names go through /proc/self/fd."""

    def __init__(self, state_dir: Path, timeout_seconds: float | None) -> None:
        super().__init__("localhost", timeout=timeout_seconds)
        self.state_dir = state_dir

    def connect(self) -> None:
        folder = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(f"/proc/self/fd/{folder}/{SOCKET_FILE}")
            except BaseException:
                sock.close()
                raise
            self.sock = sock
        finally:
            os.close(folder)


def request_evict_local(state_dir: str | Path, request: EvictRequest,
                        timeout_seconds: float | None = None) -> dict[str, Any]:
    """POST `request` to the service's Unix socket in `state_dir` (no token needed: only
    its owner can open it); return its JSON answer. `timeout_seconds` None waits as long
    as the service takes (it finishes the transfer in progress first).

    Raise OSError if there is no socket or this process may not open it, and ValueError
    (with the service's message) if it refused the request.
    """
    connection = _SocketConnection(Path(state_dir), timeout_seconds)
    try:
        connection.request("POST", "/api/evict", body=_body(request),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except http.client.HTTPException as error:
        raise OSError(f"the service's socket answered badly: {error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise _refused(response.status, body)
    return json.loads(body)
