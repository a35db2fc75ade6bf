"""Suite-wide rules: nothing leaves loopback, and in CI nothing may skip.

Tests that need root, FUSE or a tool skip with a clear reason on a developer machine;
with CACHERR_REQUIRE_ALL=1 (set by .ci/run) any skip fails the run.

Property tests run 300 examples each; CACHERR_PROPERTY_EXAMPLES=N runs N (a soak before
a release: 5000). A failure prints the example and the blob that reproduces it.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from hypothesis import settings

settings.register_profile(
    "cacherr", max_examples=int(os.environ.get("CACHERR_PROPERTY_EXAMPLES", "300")),
    deadline=None, print_blob=True)
settings.load_profile("cacherr")

_REQUIRE_ALL = os.environ.get("CACHERR_REQUIRE_ALL") == "1"
_skipped: list[str] = []

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets, netlink: local by nature
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return
        raise ConnectionRefusedError(f"tests may not reach {host!r}: only loopback") from None
    if not ip.is_loopback:
        raise ConnectionRefusedError(f"tests may not reach {host}: only loopback")


def _guarded_connect(self, address):
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real_connect_ex(self, address)


def pytest_configure(config):
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex


def pytest_runtest_logreport(report):
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _REQUIRE_ALL and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _REQUIRE_ALL and _skipped:
        terminalreporter.write_line(
            f"CACHERR_REQUIRE_ALL=1: {len(_skipped)} test(s) skipped; CI must run them all:",
            red=True,
        )
        for line in _skipped:
            terminalreporter.write_line(f"  {line}", red=True)

