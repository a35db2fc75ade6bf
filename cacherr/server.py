"""cacherr's HTTP endpoints (SPEC §6) on a stdlib threading server with its own tiny router.

`prometheus_client.start_http_server` answers every path with metrics, so cacherr routes
by itself: `/`, `/metrics`, `/health`, `/api/cached` and `POST /api/evict`; anything else
is 404. Requests are served on their own threads, and every handler only reads memory
or calls the callables it was given, which must be quick (no copying, no waiting on a
disk or on Plex): a long transfer must never block the health check.

The server also writes `<state_dir>/runtime.json` with the bound host, port and pid, so
that `cacherr healthcheck` and `cacherr evict` can find a running service.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cacherr import __version__
from cacherr.health import FAILING, HealthState
from cacherr.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

RUNTIME_FILE = "runtime.json"
MAX_BODY_BYTES = 1024 * 1024
# A client that stops sending mid-request releases its thread after this long.
REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_PAGE_LIMIT = 1000


@dataclass(frozen=True)
class EvictRequest:
    """A `POST /api/evict` body: paths (as Plex or the host sees them) or all, and a hold."""

    paths: tuple[str, ...] = ()
    all: bool = False
    hold_seconds: float | None = None


# Given nothing, return every cached file as a plain JSON-able dict that has at least
# "rules" (list of rule names) and "users" (list of user names). Must be quick.
CachedFiles = Callable[[], Iterable[Mapping[str, Any]]]
# Given an EvictRequest, queue it and return a plain JSON-able result. Must be quick:
# queue the evictions, do not carry them out on the request thread.
Evict = Callable[[EvictRequest], Mapping[str, Any]]


class BadRequest(Exception):
    """A request the client must fix: answered 400 with the message."""


class Server:
    """The HTTP server of a running service; `start()` binds and serves on a daemon thread."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, health: HealthState,
                 cached_files: CachedFiles | None = None, evict: Evict | None = None,
                 state_dir: str | Path | None = None) -> None:
        """Given `server.listen` (port 0: any free port), the data sources and the state dir.

        `cached_files` and `evict` may be None until the loop has them; their endpoints
        then answer 503. `state_dir` None writes no runtime file.
        """
        self.host = host
        self.port = port
        self.metrics = metrics
        self.health = health
        self.cached_files = cached_files
        self.evict = evict
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config, *, metrics: Metrics, health: HealthState,
                    cached_files: CachedFiles | None = None,
                    evict: Evict | None = None) -> Server:
        """Given a loaded Config, return its server: `server.listen`, runtime file in state_dir."""
        return cls(config.server.listen_host, config.server.listen_port, metrics=metrics,
                   health=health, cached_files=cached_files, evict=evict,
                   state_dir=config.state_dir)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); only after start()."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """An http:// origin a local client can reach the server at."""
        host, port = self.address
        return f"http://{connect_host(host)}:{port}"

    def start(self) -> tuple[str, int]:
        """Bind, start serving on a daemon thread, write the runtime file; return (host, port).

        Raise OSError if the address cannot be bound.
        """
        handler = type("BoundHandler", (_Handler,), {"server_app": self})
        server_class = _DualStackServer if ":" in self.host else ThreadingHTTPServer
        self._httpd = server_class((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="cacherr-http", daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("serving /metrics, /health and /api on %s:%d", host, port)
        if self.state_dir is not None:
            try:
                write_runtime_file(self.state_dir, host, port)
            except OSError as error:
                log.warning("could not write %s: %s", self.state_dir / RUNTIME_FILE, error)
        return host, port

    def stop(self) -> None:
        """Stop serving, close the socket and remove this process's runtime file."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        if self.state_dir is not None:
            remove_runtime_file(self.state_dir)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _DualStackServer(ThreadingHTTPServer):
    """Listens on an IPv6 address; `::` takes IPv4 connections too."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def connect_host(listen_host: str) -> str:
    """Given a listen host, return the address a local client connects to."""
    if listen_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if listen_host == "::":
        return "[::1]"
    return f"[{listen_host}]" if ":" in listen_host else listen_host


# -- the runtime file ----------------------------------------------------------------


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


def service_origin(state_dir: str | Path) -> str | None:
    """Return the http:// origin of the service whose runtime file is in `state_dir`, or None."""
    content = read_runtime_file(state_dir)
    try:
        return f"http://{connect_host(str(content['host']))}:{int(content['port'])}"
    except (TypeError, KeyError, ValueError):
        return None


def request_evict(origin: str, request: EvictRequest, timeout_seconds: float = 10.0
                  ) -> dict[str, Any]:
    """POST `request` to a running service's /api/evict; return its JSON answer.

    Raise OSError if the service cannot be reached, and ValueError (with the service's
    message) if it refused the request.
    """
    body = json.dumps({"paths": list(request.paths), "all": request.all,
                       "hold_seconds": request.hold_seconds}).encode()
    http_request = urllib.request.Request(f"{origin}/api/evict", data=body, method="POST",
                                          headers={"Content-Type": "application/json"})
    # No proxy: HTTP_PROXY must not take a request meant for this host.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(http_request, timeout=timeout_seconds) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("error", "")
        except (ValueError, AttributeError):
            message = ""
        raise ValueError(f"the service refused: HTTP {error.code} {message}".strip()) from None


def remove_runtime_file(state_dir: Path) -> None:
    """Remove the runtime file if this process wrote it."""
    content = read_runtime_file(state_dir)
    if content is not None and content.get("pid") == os.getpid():
        try:
            (Path(state_dir) / RUNTIME_FILE).unlink()
        except OSError as error:
            log.warning("could not remove %s: %s", Path(state_dir) / RUNTIME_FILE, error)


# -- request handling ----------------------------------------------------------------

LANDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cacherr</title></head>
<body><h1>cacherr {version}</h1>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/health">/health</a>: health, as JSON</li>
<li><a href="/api/cached">/api/cached</a>: cached files and why (filters: user, rule, limit,
offset)</li>
</ul></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server_app: Server  # set on the per-server subclass
    server_version = f"cacherr/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_SECONDS

    ROUTES = {
        "/": {"GET": "_landing"},
        "/metrics": {"GET": "_metrics"},
        "/health": {"GET": "_health"},
        "/api/cached": {"GET": "_cached"},
        "/api/evict": {"POST": "_evict"},
    }

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        methods = self.ROUTES.get(url.path.rstrip("/") or "/")
        if methods is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})
            return
        name = methods.get("GET" if method == "HEAD" and "GET" in methods else method)
        if name is None:
            self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} not allowed"},
                            headers={"Allow": ", ".join(methods)})
            return
        try:
            getattr(self, name)(parse_qs(url.query))
        except BadRequest as error:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except Exception:
            log.exception("HTTP %s %s failed", method, url.path)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _landing(self, query) -> None:
        body = LANDING_PAGE.format(version=__version__).encode()
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _metrics(self, query) -> None:
        self._send(HTTPStatus.OK, self.server_app.metrics.exposition(), CONTENT_TYPE)

    def _health(self, query) -> None:
        report = self.server_app.health.report()
        status = (HTTPStatus.SERVICE_UNAVAILABLE if report["status"] == FAILING
                  else HTTPStatus.OK)
        self._send_json(status, report)

    def _cached(self, query) -> None:
        if self.server_app.cached_files is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready yet"})
            return
        user = _single(query, "user")
        rule = _single(query, "rule")
        limit = _non_negative_int(query, "limit", DEFAULT_PAGE_LIMIT)
        offset = _non_negative_int(query, "offset", 0)
        entries = [dict(entry) for entry in self.server_app.cached_files()]
        if rule is not None:
            entries = [entry for entry in entries if rule in entry.get("rules", ())]
        if user is not None:
            wanted = user.casefold()
            entries = [entry for entry in entries
                       if any(str(name).casefold() == wanted for name in entry.get("users", ()))]
        page = entries[offset:offset + limit]
        self._send_json(HTTPStatus.OK, page, headers={"X-Total-Count": str(len(entries))})

    def _evict(self, query) -> None:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            # Browsers cannot send application/json cross-site without a preflight, so
            # this also keeps a web page from evicting through a visitor's browser.
            self._send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            {"error": "send the body as application/json"})
            return
        request = parse_evict_body(self._read_body())
        if self.server_app.evict is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready yet"})
            return
        result = self.server_app.evict(request)
        self._send_json(HTTPStatus.OK, dict(result))

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise BadRequest("a Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _send_json(self, status: HTTPStatus, payload: Any,
                   headers: Mapping[str, str] | None = None) -> None:
        body = (json.dumps(payload, indent=1, default=str) + "\n").encode()
        self._send(status, body, "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("HTTP %s: " + format, self.address_string(), *args)


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"give {name} at most once")
    return values[0]


def _non_negative_int(query: Mapping[str, list[str]], name: str, default: int) -> int:
    text = _single(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative")
    return value


def parse_evict_body(body: bytes) -> EvictRequest:
    """Given a `POST /api/evict` body, return its EvictRequest; raise BadRequest if invalid."""
    try:
        document = json.loads(body or b"{}")
    except ValueError as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(document) - {"paths", "all", "hold_seconds"}
    if unknown:
        raise BadRequest(f"unknown keys: {', '.join(sorted(unknown))}")
    paths = document.get("paths") or []
    if not isinstance(paths, list) or not all(isinstance(path, str) and path for path in paths):
        raise BadRequest("paths must be a list of non-empty strings")
    evict_all = document.get("all", False)
    if not isinstance(evict_all, bool):
        raise BadRequest("all must be true or false")
    if evict_all == bool(paths):
        raise BadRequest("give paths or all: true, not both" if evict_all
                         else "give paths or all: true")
    hold = document.get("hold_seconds")
    if hold is not None and (isinstance(hold, bool) or not isinstance(hold, int | float)
                             or not math.isfinite(hold) or hold < 0):
        raise BadRequest("hold_seconds must be a non-negative number or null")
    return EvictRequest(paths=tuple(paths), all=evict_all,
                        hold_seconds=float(hold) if hold is not None else None)
