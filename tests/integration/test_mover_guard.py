"""The mover guard on the host and in a container (SPEC §4 invariant 7).

The mover writes /var/run/mover.pid when it starts and deletes it when done. On the host,
the PID tells a running mover from a stale file. In a container with its own PID
namespace the PID names nothing (or one of the container's own processes): a present file
means running. A folder that is not the host's /var/run (no volume mounted there) says
nothing: the guard is unknown, never "not running". The host's /var/run is a tmpfs here,
mounted as a volume would be; the PID namespace is a real one (`unshare --pid`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.config.model import HostConfig
from cacherr.host import unraid
from cacherr.host.container import sees_host_pids
from cacherr.service import _guard_state
from tests.helpers import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def host_run(tmp_path):
    """A folder mounted from elsewhere, as the host's /var/run is in the container."""
    require_root()
    folder = tmp_path / "run"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "cacherr-test-run", str(folder)],
                   check=True)
    try:
        yield HostConfig(mover_pid_file=folder / "mover.pid", emhttp_dir=tmp_path / "emhttp",
                         boot_config_dir=tmp_path / "boot")
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _own_folder(tmp_path: Path) -> HostConfig:
    """The container's own /var/run: a folder on its root file system, no volume."""
    folder = tmp_path / "own-run"
    folder.mkdir()
    return HostConfig(mover_pid_file=folder / "mover.pid", emhttp_dir=tmp_path / "emhttp",
                      boot_config_dir=tmp_path / "boot")


def test_on_the_host_a_live_pid_is_running_a_stale_or_missing_file_is_not(tmp_path):
    host = _own_folder(tmp_path)  # on the host, its own /var/run is the host's
    states = {}
    states["missing"] = unraid.mover_running(host, container=False, host_pids=True)
    host.mover_pid_file.write_text(f"{os.getpid()}\n")
    states["live"] = unraid.mover_running(host, container=False, host_pids=True)
    host.mover_pid_file.write_text(str(_dead_pid()))
    states["stale"] = unraid.mover_running(host, container=False, host_pids=True)
    host.mover_pid_file.write_text("garbage")
    states["garbage"] = unraid.mover_running(host, container=False, host_pids=True)
    assert states == {"missing": False, "live": True, "stale": False, "garbage": None}


def test_in_a_container_a_present_pid_file_means_running_whatever_the_pid_names_here(host_run):
    # The host's PID: nothing in the container's namespace has it.
    host_run.mover_pid_file.write_text(str(_dead_pid()))
    assert unraid.mover_running(host_run, container=True, host_pids=False) is True
    # A PID that one of the container's own processes happens to have: still the mover's.
    host_run.mover_pid_file.write_text(str(os.getpid()))
    assert unraid.mover_running(host_run, container=True, host_pids=False) is True
    # Deleted by the mover when done, in the host's folder: not running.
    host_run.mover_pid_file.unlink()
    assert unraid.mover_running(host_run, container=True, host_pids=False) is False


def test_in_a_container_sharing_the_host_pids_a_stale_file_is_not_running(host_run):
    host_run.mover_pid_file.write_text(str(_dead_pid()))
    assert unraid.mover_running(host_run, container=True, host_pids=True) is False
    host_run.mover_pid_file.write_text(str(os.getpid()))
    assert unraid.mover_running(host_run, container=True, host_pids=True) is True


def test_in_a_container_without_the_host_s_var_run_the_guard_is_unknown(tmp_path):
    host = _own_folder(tmp_path)
    for host_pids in (False, True):
        state = unraid.mover_running(host, container=True, host_pids=host_pids)
        assert state is None and _guard_state(state) == "unknown"
    nowhere = HostConfig(mover_pid_file=tmp_path / "not-there" / "mover.pid")
    assert unraid.mover_running(nowhere, container=True, host_pids=False) is None
    # A file in the container's own folder is someone's claim that the mover runs: held.
    host.mover_pid_file.write_text("1\n")
    assert unraid.mover_running(host, container=True, host_pids=False) is True


GUARD_PROBE = """
import json, sys
from pathlib import Path
from cacherr.config.model import HostConfig
from cacherr.host import unraid
from cacherr.host.container import in_container, sees_host_pids
host = HostConfig(mover_pid_file=Path(sys.argv[1]))
print(json.dumps({"host_pids": sees_host_pids(), "container": in_container(),
                  "mover": unraid.mover_running(host)}))
"""


def test_in_a_real_pid_namespace_the_guard_detects_the_container_and_holds(host_run):
    unshare = require_tool("unshare")
    assert sees_host_pids(), "the test itself must run in the host's PID namespace"
    host_run.mover_pid_file.write_text(str(os.getpid()))  # the host's live "mover"

    def probe(pid_file: Path) -> dict:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("CACHERR_IN_CONTAINER", "container")}
        done = subprocess.run(
            [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", GUARD_PROBE,
             str(pid_file)], cwd=REPO, env={**environ, "PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert probe(host_run.mover_pid_file) == {"host_pids": False, "container": True,
                                              "mover": True}
    host_run.mover_pid_file.unlink()
    assert probe(host_run.mover_pid_file)["mover"] is False
    own = host_run.mover_pid_file.parent.parent / "own-run"
    own.mkdir()
    assert probe(own / "mover.pid")["mover"] is None
