"""The sockets cacherr's HTTP server listens on: a bounded number of request threads
(a flood of slow clients costs at most MAX_CONNECTIONS threads), IPv4 or dual-stack
TCP, and the owner-only Unix socket in the state directory."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import socketserver
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from cacherr.runtime import SOCKET_FILE

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
# One address may hold no more than this: a single host on the LAN cannot take every
# slot and shut Prometheus and the health check out.
MAX_CONNECTIONS_PER_CLIENT = 16


class _Slots:
    """At most MAX_CONNECTIONS requests at once, MAX_CONNECTIONS_PER_CLIENT of them from
    one address: a flood of slow clients costs a bounded number of threads, and the
    connections beyond are closed at once (logged at most once a minute)."""

    def __init__(self) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._per_client: dict[str, int] = {}
        self._per_client_lock = threading.Lock()
        self._refused = 0
        self._last_warning = -math.inf

    def process_request(self, request, client_address):
        client = _client(client_address)
        if not self._take(client):
            self._refused += 1
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("HTTP: more than %d connections at once (or %d from one address);"
                            " %d refused so far", MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT,
                            self._refused)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_back(client)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_back(_client(client_address))

    def _take(self, client: str | None) -> bool:
        with self._per_client_lock:
            if client is not None and \
                    self._per_client.get(client, 0) >= MAX_CONNECTIONS_PER_CLIENT:
                return False
            if not self._slots.acquire(blocking=False):
                return False
            if client is not None:
                self._per_client[client] = self._per_client.get(client, 0) + 1
            return True

    def _give_back(self, client: str | None) -> None:
        with self._per_client_lock:
            if client is not None:
                left = self._per_client.get(client, 1) - 1
                if left:
                    self._per_client[client] = left
                else:
                    self._per_client.pop(client, None)
            self._slots.release()


def _client(client_address) -> str | None:
    """The remote address of a TCP connection (None on the owner-only Unix socket)."""
    return client_address[0] if isinstance(client_address, tuple) and client_address else None


class BoundedServer(_Slots, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst is accepted, then bounded

    def __init__(self, *args, **kwargs) -> None:
        _Slots.__init__(self)
        ThreadingHTTPServer.__init__(self, *args, **kwargs)


class DualStackServer(BoundedServer):
    """Listens on an IPv6 address; `::` takes IPv4 connections too."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class LocalServer(_Slots, socketserver.ThreadingUnixStreamServer):
    """The same endpoints on `<state_dir>/api.sock`, created 0600 under a temporary name
    and renamed into place, so nobody else can ever connect. Paths longer than a socket
    address allows are reached through the folder's /proc/self/fd link."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, state_dir: Path, handler) -> None:
        _Slots.__init__(self)
        self.folder = os.open(state_dir, os.O_PATH | os.O_DIRECTORY)
        self.final = f"/proc/self/fd/{self.folder}/{SOCKET_FILE}"
        temporary = f"/proc/self/fd/{self.folder}/.{SOCKET_FILE}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        try:
            socketserver.ThreadingUnixStreamServer.__init__(self, temporary, handler)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.final)
            self.inode = os.stat(self.final).st_ino
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            os.close(self.folder)
            raise

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            if os.stat(self.final).st_ino == self.inode:
                os.unlink(self.final)
        os.close(self.folder)
