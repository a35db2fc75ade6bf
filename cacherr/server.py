"""cacherr's HTTP endpoints (SPEC §6) on a stdlib threading server with its own tiny router.

`prometheus_client.start_http_server` answers every path with metrics, so cacherr routes
by itself: `/`, `/metrics`, `/health`, `/api/cached` and `POST /api/evict`; anything else
is 404. Requests are served on their own threads (at most `MAX_CONNECTIONS` at once), and
every handler only reads memory or calls the callables it was given: a long transfer
must never block the health check.

Anyone on the network can reach `server.listen`, so: write endpoints need `Authorization:
Bearer <server.token>` (compared in constant time) and answer 403 to everyone when no
token is configured; `/api/cached` needs it too with `server.protect_cached`; bodies are
capped at 64 KiB, JSON nesting at a few levels, and a client that sends its body too
slowly is dropped without a traceback. The same endpoints are also served on a Unix
socket in the state directory (`api.sock`, mode 0600): whoever can open it is local and
trusted already, so it needs no token (`cacherr evict` on this host uses it).

The server also writes `<state_dir>/runtime.json` with the bound host, port and pid, so
that `cacherr healthcheck` and `cacherr evict` can find a running service
(`cacherr.client` is the other side).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cacherr import __version__
from cacherr.api import (
    MAX_BODY_BYTES,
    BadRequest,
    EvictRequest,
    Unavailable,
    non_negative_int,
    parse_evict_body,
    single,
)
from cacherr.health import FAILING, HealthState
from cacherr.listeners import BoundedServer, DualStackServer, LocalServer
from cacherr.logs import redact_all
from cacherr.metrics import CONTENT_TYPE, Metrics
from cacherr.runtime import SOCKET_FILE, connect_host, remove_runtime_file, write_runtime_file

log = logging.getLogger(__name__)

# A client that stops sending mid-request releases its thread after this long; a body
# must arrive whole within it.
REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_PAGE_LIMIT = 1000


# Given nothing, return every cached file as a plain JSON-able dict that has at least
# "rules" (list of rule names) and "users" (list of user names). Must be quick.
CachedFiles = Callable[[], Iterable[Mapping[str, Any]]]
# Given an EvictRequest, carry it out (or have it carried out) and return a plain
# JSON-able result. It runs on the request's own thread and may wait for the transfer in
# progress; raise BadRequest for a request the client must fix, Unavailable when it
# cannot be served now.
Evict = Callable[[EvictRequest], Mapping[str, Any]]



class Server:
    """The HTTP server of a running service; `start()` binds and serves on daemon threads."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, health: HealthState,
                 cached_files: CachedFiles | None = None, evict: Evict | None = None,
                 state_dir: str | Path | None = None, token: str | None = None,
                 protect_cached: bool = False,
                 request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> None:
        """Given `server.listen` (port 0: any free port), the data sources, the state dir
        and `server.token` / `server.protect_cached`.

        `cached_files` and `evict` may be None until the loop has them; their endpoints
        then answer 503. `state_dir` None writes no runtime file and opens no socket.
        """
        self.host = host
        self.port = port
        self.metrics = metrics
        self.health = health
        self.cached_files = cached_files
        self.evict = evict
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.set_access(token, protect_cached)
        self.request_timeout_seconds = request_timeout_seconds
        self._httpd: ThreadingHTTPServer | None = None
        self._local: LocalServer | None = None
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_config(cls, config, *, metrics: Metrics, health: HealthState,
                    cached_files: CachedFiles | None = None,
                    evict: Evict | None = None) -> Server:
        """Given a loaded Config, return its server: `server.*`, runtime file and socket in
        state_dir."""
        return cls(config.server.listen_host, config.server.listen_port, metrics=metrics,
                   health=health, cached_files=cached_files, evict=evict,
                   state_dir=config.state_dir, token=config.server.token,
                   protect_cached=config.server.protect_cached)

    def set_access(self, token: str | None, protect_cached: bool) -> None:
        """Take a reloaded `server.token` and `server.protect_cached`."""
        self.token_digest = _digest(token) if token else None
        self.protect_cached = protect_cached

    def accepts(self, authorization: str | None) -> bool:
        """True if an Authorization header carries the configured token (constant time)."""
        if self.token_digest is None or not authorization:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(given.strip()), self.token_digest)

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

    @property
    def socket_path(self) -> Path | None:
        """Where the trusted local socket is, once started (None without a state dir)."""
        return self.state_dir / SOCKET_FILE if self._local is not None else None

    def start(self) -> tuple[str, int]:
        """Bind, start serving on daemon threads, write the runtime file; return (host, port).

        Raise OSError if the address cannot be bound. A socket that cannot be made in the
        state directory is logged, not fatal (the TCP endpoints still work).
        """
        handler = type("BoundHandler", (_Handler,), {"server_app": self,
                                                     "timeout": self.request_timeout_seconds})
        server_class = DualStackServer if ":" in self.host else BoundedServer
        self._httpd = server_class((self.host, self.port), handler)
        self._serve(self._httpd, "cacherr-http")
        host, port = self.address
        log.info("serving /metrics, /health and /api on %s:%d", host, port)
        if self.state_dir is not None:
            local = type("LocalHandler", (handler,), {"trusted": True})
            try:
                self._local = LocalServer(self.state_dir, local)
                self._serve(self._local, "cacherr-socket")
            except OSError as error:
                log.warning("no local socket in %s (cacherr evict will need server.token): %s",
                            self.state_dir, error)
            try:
                write_runtime_file(self.state_dir, host, port)
            except OSError as error:
                log.warning("could not write the runtime file in %s: %s", self.state_dir, error)
        return host, port

    def _serve(self, server, name: str) -> None:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving, close the sockets and remove this process's runtime file."""
        if self._httpd is None:
            return
        for server in (self._httpd, self._local):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._httpd = None
        self._local = None
        if self.state_dir is not None:
            remove_runtime_file(self.state_dir)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _digest(token: str) -> bytes:
    # Equal-length digests: compare_digest then takes the same time whatever was sent.
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).digest()


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
    trusted = False  # True on the local socket: no token needed
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
    READ_METHODS = ("GET", "HEAD")

    def setup(self) -> None:
        super().setup()
        # Reads that stop at a deadline: the socket's timeout only bounds each read, so a
        # client trickling a byte at a time would otherwise hold the connection forever.
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request: its request line and headers must arrive within the request
        timeout in all (a late client is dropped: BaseHTTPRequestHandler treats the
        timeout as a closed connection)."""
        self._reader.deadline = time.monotonic() + self.timeout
        super().handle_one_request()

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
        self._reader.deadline = time.monotonic() + self.timeout  # now for the body
        url = urlsplit(self.path)
        methods = self.ROUTES.get(url.path.rstrip("/") or "/")
        if methods is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "no such path"})
            return
        name = methods.get("GET" if method == "HEAD" and "GET" in methods else method)
        if name is None:
            self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} not allowed"},
                            headers={"Allow": ", ".join(methods)})
            return
        protected = method not in self.READ_METHODS or (
            name == "_cached" and self.server_app.protect_cached)
        if protected and not self._authorised():
            return
        try:
            getattr(self, name)(parse_qs(url.query))
        except BadRequest as error:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except Unavailable as error:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error)})
        except _TooSlow:
            log.info("HTTP %s %s: the client sent its body too slowly; dropped",
                     method, url.path)
            self.close_connection = True
        except Exception:
            log.exception("HTTP %s %s failed", method, url.path)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _authorised(self) -> bool:
        """True if the request may go on; otherwise answer 403 (no token configured) or
        401 (missing or wrong token), having read no body."""
        if self.trusted:
            return True
        if self.server_app.token_digest is None:
            self._refuse(HTTPStatus.FORBIDDEN, "this endpoint is off: set server.token in the "
                         "rules file to use it over the network (on this host, `cacherr evict` "
                         "works without it)")
            return False
        if not self.server_app.accepts(self.headers.get("Authorization")):
            self._refuse(HTTPStatus.UNAUTHORIZED, "send Authorization: Bearer <server.token>",
                         {"WWW-Authenticate": 'Bearer realm="cacherr"'})
            return False
        return True

    def _refuse(self, status: HTTPStatus, message: str,
                headers: Mapping[str, str] | None = None) -> None:
        # The body was not read: the connection cannot carry another request.
        self.close_connection = True
        self._send_json(status, {"error": message}, headers={**(headers or {}),
                                                             "Connection": "close"})

    def _landing(self, query) -> None:
        body = LANDING_PAGE.format(version=__version__).encode()
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def _metrics(self, query) -> None:
        self._send(HTTPStatus.OK, self.server_app.metrics.exposition(), CONTENT_TYPE)

    def _health(self, query) -> None:
        report = redact_all(self.server_app.health.report())
        status = (HTTPStatus.SERVICE_UNAVAILABLE if report["status"] == FAILING
                  else HTTPStatus.OK)
        self._send_json(status, report)

    def _cached(self, query) -> None:
        if self.server_app.cached_files is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready yet"})
            return
        user = single(query, "user")
        rule = single(query, "rule")
        limit = non_negative_int(query, "limit", DEFAULT_PAGE_LIMIT)
        offset = non_negative_int(query, "offset", 0)
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
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
            return
        body = self._read_body()
        if body is None:
            return
        request = parse_evict_body(body)
        if self.server_app.evict is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready yet"})
            return
        result = self.server_app.evict(request)
        self._send_json(HTTPStatus.OK, dict(result))

    def _read_body(self) -> bytes | None:
        """The request's body, read within the request timeout in all; None when it was
        refused (answered already); raise _TooSlow if it did not arrive in time."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            return None
        try:
            length = int(length_header)
        except ValueError:
            self._refuse(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"the body must be at most {MAX_BODY_BYTES} bytes")
            return None
        deadline = time.monotonic() + self.timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _TooSlow
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 16384))
                if not chunk:
                    raise BadRequest("the body ended before Content-Length bytes")
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            raise _TooSlow from None
        finally:
            with contextlib.suppress(OSError):
                self.connection.settimeout(self.timeout)
        return b"".join(chunks)

    def _send_json(self, status: HTTPStatus, payload: Any,
                   headers: Mapping[str, str] | None = None) -> None:
        body = (json.dumps(payload, indent=1, default=str) + "\n").encode()
        self._send(status, body, "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def address_string(self) -> str:
        # A Unix socket's peer has no address.
        return str(self.client_address[0]) if isinstance(self.client_address, tuple) \
            else "local socket"

    def log_message(self, format: str, *args) -> None:
        log.debug("HTTP %s: " + format, self.address_string(), *args)


class _DeadlineReader(socket.SocketIO):
    """The raw reads of one connection, each bounded by the request timeout and all of
    them by `deadline` (set per request); past it, a read raises TimeoutError."""

    def __init__(self, connection: socket.socket, timeout_seconds: float) -> None:
        super().__init__(connection, "rb")
        self.connection = connection
        self.timeout_seconds = timeout_seconds
        self.deadline = math.inf

    def readinto(self, buffer) -> int | None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took longer than its deadline")
        self.connection.settimeout(min(left, self.timeout_seconds))
        return super().readinto(buffer)


class _TooSlow(Exception):
    """The client did not send its body within REQUEST_TIMEOUT_SECONDS."""


