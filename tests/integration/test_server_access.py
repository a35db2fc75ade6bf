"""Who may use the HTTP API (SPEC §6): write endpoints need the bearer token and are off
without one, `/api/cached` optionally too; the owner-only Unix socket needs none; bodies,
JSON depth, slow clients and connection floods are bounded."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from cacherr.api import MAX_BODY_BYTES, EvictRequest
from cacherr.health import HealthState
from cacherr.listeners import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
from cacherr.metrics import Metrics
from cacherr.runtime import request_evict_local
from cacherr.server import Server, _Handler
from tests.helpers import wait_for
from tests.integration.test_server import CACHED, TOKEN, EvictRecorder, get, post_evict

WRITE_ROUTES = [(path, method) for path, methods in _Handler.ROUTES.items()
                for method in methods if method not in _Handler.READ_METHODS]


@pytest.fixture
def health(tmp_path):
    state = HealthState(tmp_path, stale_after_seconds=60)
    state.heartbeat()
    return state


def serve(tmp_path, health, evict, **options) -> Server:
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    return Server("127.0.0.1", 0, metrics=Metrics(), health=health,
                  cached_files=lambda: CACHED, evict=evict, state_dir=state_dir, **options)


def send(server: Server, path: str, method: str, headers: dict) -> tuple[int, dict, bytes]:
    return get(server, path, method, json.dumps({"all": True}).encode(),
               {"Content-Type": "application/json", **headers})


def test_every_write_endpoint_is_known_to_the_test():
    assert WRITE_ROUTES == [("/api/evict", "POST")]


@pytest.mark.parametrize(("path", "method"), WRITE_ROUTES)
def test_without_server_token_every_write_endpoint_answers_403_and_does_nothing(
        tmp_path, health, path, method):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict) as server:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer "}):
            status, _, body = send(server, path, method, headers)
            assert status == 403 and "server.token" in json.loads(body)["error"]
        assert get(server, "/health")[0] == 200
    assert evict.requests == []


@pytest.mark.parametrize(("path", "method"), WRITE_ROUTES)
@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong-token-0123456789", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    f"Basic {TOKEN}", f"Token {TOKEN}", TOKEN,
])
def test_a_missing_or_wrong_token_is_401_and_does_nothing(tmp_path, health, path, method,
                                                          authorization):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict, token=TOKEN) as server:
        headers = {} if authorization is None else {"Authorization": authorization}
        status, response_headers, body = send(server, path, method, headers)
        assert status == 401, body
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in body.decode()
    assert evict.requests == []


def test_the_right_token_is_accepted_whatever_the_scheme_case(tmp_path, health):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict, token=TOKEN) as server:
        assert send(server, "/api/evict", "POST", {"Authorization": f"bearer  {TOKEN} "})[0] == 200
    assert evict.requests == [EvictRequest(all=True)]


def test_a_reload_changes_the_token(tmp_path, health):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict, token=TOKEN) as server:
        server.set_access("another-token-0123456789", protect_cached=False)
        assert send(server, "/api/evict", "POST", {"Authorization": f"Bearer {TOKEN}"})[0] == 401
        server.set_access(None, protect_cached=False)
        assert send(server, "/api/evict", "POST", {"Authorization": f"Bearer {TOKEN}"})[0] == 403


def test_protect_cached_needs_the_token_for_the_listing_while_metrics_and_health_stay_open(
        tmp_path, health):
    with serve(tmp_path, health, EvictRecorder(), token=TOKEN, protect_cached=True) as server:
        status, _, body = get(server, "/api/cached")
        assert status == 401 and b"alice" not in body.lower()
        assert get(server, "/api/cached", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(server, "/metrics")[0] == 200
        assert get(server, "/health")[0] == 200
    with serve(tmp_path, health, EvictRecorder(), token=TOKEN) as server:
        assert get(server, "/api/cached")[0] == 200  # open by default


def test_the_local_socket_needs_no_token_even_with_none_configured(tmp_path, health):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict) as server:
        assert server.socket_path.stat().st_mode & 0o777 == 0o600
        answer = request_evict_local(server.state_dir, EvictRequest(all=True), timeout_seconds=10)
    assert answer == {"queued": 0, "all": True}
    assert evict.requests == [EvictRequest(all=True)]


def test_a_body_over_64_kib_is_refused_with_413_unread(tmp_path, health):
    evict = EvictRecorder()
    with serve(tmp_path, health, evict, token=TOKEN) as server:
        body = b'{"paths": ["' + b"a" * MAX_BODY_BYTES + b'"]}'
        assert post_evict(server, body, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 413
        with socket.create_connection(server.address, timeout=10) as raw:
            raw.sendall(b"POST /api/evict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                        b"Content-Length: 99999999999\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 413")
    assert evict.requests == []


def test_a_slow_body_is_dropped_without_a_traceback_and_health_answers_meanwhile(
        tmp_path, health, caplog):
    evict = EvictRecorder()
    caplog.set_level(logging.DEBUG, logger="cacherr")
    with serve(tmp_path, health, evict, token=TOKEN, request_timeout_seconds=1.0) as server, \
            socket.create_connection(server.address, timeout=10) as raw:
        raw.sendall(b"POST /api/evict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                    b"Content-Length: 100\r\n\r\n{\"all\"")
        started = time.monotonic()
        assert get(server, "/health")[0] == 200  # not blocked by the slow client
        for _ in range(5):  # a byte now and then does not extend the deadline
            time.sleep(0.3)
            try:
                raw.sendall(b" ")
            except OSError:
                break
        assert raw.recv(100) == b""  # dropped
        assert time.monotonic() - started < 5
    assert evict.requests == []
    assert "too slowly" in caplog.text and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def _from(address: str, server: Server) -> socket.socket:
    """A connection to the server from another loopback address (127.0.0.0/8 is all ours)."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.settimeout(10)
    connection.bind((address, 0))
    connection.connect(server.address)
    return connection


def test_a_flood_of_idle_connections_costs_a_bounded_number_of_threads(tmp_path, health):
    before = threading.active_count()
    with serve(tmp_path, health, EvictRecorder(), request_timeout_seconds=30.0) as server:
        # many hosts, each within its own share: the server-wide bound holds
        idle = [_from(f"127.0.1.{1 + n // MAX_CONNECTIONS_PER_CLIENT}", server)
                for n in range(MAX_CONNECTIONS + 20)]
        try:
            wait_for(lambda: threading.active_count() >= before + MAX_CONNECTIONS,
                     what="the server's request threads")
            assert threading.active_count() <= before + MAX_CONNECTIONS + 4
            refused = 0
            for connection in idle[-10:]:
                connection.settimeout(5)
                refused += connection.recv(1) == b""
            assert refused == 10  # beyond the bound: closed at once
        finally:
            for connection in idle:
                connection.close()
        wait_for(lambda: get(server, "/health")[0] == 200, what="/health once they left")


def test_one_host_cannot_take_every_connection_and_shut_others_out(tmp_path, health):
    with serve(tmp_path, health, EvictRecorder(), request_timeout_seconds=30.0) as server:
        hostile = [_from("127.0.2.1", server) for _ in range(MAX_CONNECTIONS + 4)]
        try:
            refused = 0
            for connection in hostile[MAX_CONNECTIONS_PER_CLIENT:]:
                connection.settimeout(5)
                refused += connection.recv(1) == b""
            assert refused == len(hostile) - MAX_CONNECTIONS_PER_CLIENT
            # Prometheus, on another host, is still answered
            with _from("127.0.2.2", server) as scraper:
                scraper.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert scraper.recv(100).startswith(b"HTTP/1.1 200")
        finally:
            for connection in hostile:
                connection.close()


def test_a_client_trickling_its_headers_is_cut_off_at_the_request_deadline(
        tmp_path, health, caplog):
    caplog.set_level(logging.DEBUG, logger="cacherr")
    with serve(tmp_path, health, EvictRecorder(), request_timeout_seconds=1.0) as server, \
            socket.create_connection(server.address, timeout=10) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(30):  # a byte every 0.2 s: each read well within the timeout
            time.sleep(0.2)
            try:
                raw.sendall(b"X")
            except OSError:
                closed = True
                break
        closed = closed or raw.recv(100) == b""
        assert closed and time.monotonic() - started < 5
    assert "timed out" in caplog.text and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def test_the_token_is_compared_as_a_digest_in_constant_time(monkeypatch, tmp_path, health):
    import hmac

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    server = serve(tmp_path, health, EvictRecorder(), token=TOKEN)
    assert server.accepts(f"Bearer {TOKEN}") and not server.accepts("Bearer x")
    assert [len(a) == len(b) == 32 for a, b in compared] == [True, True]
