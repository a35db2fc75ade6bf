"""The fake Plex's alert stream is a websocket other clients accept: the real plexapi
AlertListener (token in the query string) reads what it pushes, and a misbehaving client
(no upgrade, unmasked or oversized frames, the wrong token) is turned away."""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading

import pytest
from plexapi.server import PlexServer

from cacherr.testing.fakealerts import PATH, accept_key
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.world import small_world
from tests.helpers import wait_for


@pytest.fixture
def fake():
    with FakePlex(small_world()) as running:
        yield running


def upgrade(fake: FakePlex, token: str | None = None, *, key: str | None = None) -> socket.socket:
    """Open a raw websocket handshake; return the socket after the response headers."""
    host, port = fake.pms_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = key or base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nX-Plex-Token: {token or fake.owner_token}\r\n"
                  "\r\n").encode())
    return sock


def response_head(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_the_real_plexapi_alert_listener_receives_what_the_fake_pushes(fake):
    received: list[dict] = []
    got = threading.Event()

    def callback(data: dict) -> None:
        received.append(data)
        got.set()

    server = PlexServer(fake.pms_url, fake.owner_token, timeout=5)
    listener = server.startAlertListener(callback=callback)  # the token goes in the query
    try:
        assert fake.alerts.wait_connected(1, timeout_seconds=10)
        fake.start_session("owner", 103)
        assert got.wait(10)
    finally:
        listener.stop()
    (entry,) = received[0]["PlaySessionStateNotification"]
    assert received[0]["type"] == "playing"
    assert (entry["ratingKey"], entry["state"], entry["key"]) == (
        "103", "playing", "/library/metadata/103")


def test_the_handshake_answers_with_the_rfc_6455_accept_key(fake):
    key = "dGhlIHNhbXBsZSBub25jZQ=="  # the example of RFC 6455 §1.3
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with upgrade(fake, key=key) as sock:
        head = response_head(sock)
    assert head.startswith("HTTP/1.1 101") and "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head


def test_the_wrong_token_and_a_plain_request_are_refused(fake):
    with upgrade(fake, token="NOPE") as sock:
        assert response_head(sock).startswith("HTTP/1.1 401")
    host, port = fake.pms_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nX-Plex-Token: {fake.owner_token}\r\n"
                     "\r\n".encode())
        assert response_head(sock).startswith("HTTP/1.1 400")
    assert fake.alerts.connected == 0


@pytest.mark.parametrize("frame", [
    struct.pack("!BB", 0x89, 4) + b"ping",  # unmasked: RFC 6455 §5.1 says close
    struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + b"mask",  # a terabyte frame announced
])
def test_a_client_breaking_the_protocol_is_disconnected(fake, frame):
    with upgrade(fake) as sock:
        response_head(sock)
        wait_for(lambda: fake.alerts.connected == 1, what="the stream open")
        sock.sendall(frame)
        wait_for(lambda: fake.alerts.connected == 0, timeout_seconds=5, what="the client dropped")
        assert sock.recv(100) == b""


def test_a_masked_ping_is_answered_with_its_payload(fake):
    with upgrade(fake) as sock:
        response_head(sock)
        mask = os.urandom(4)
        payload = b"hello"
        sock.sendall(struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        assert sock.recv(100) == struct.pack("!BB", 0x8A, len(payload)) + payload
