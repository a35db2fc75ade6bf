"""What a process can see and do, in a container or not: capabilities (CapEff), the host's
PID namespace, the container markers, and the paths the host shares at the same place."""

from __future__ import annotations

from pathlib import Path

import pytest

from cacherr.host import container
from cacherr.host.container import (
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_FOWNER,
    CAP_FSETID,
    can_keep_any_owner,
    default_mover_list,
    effective_capabilities,
    in_container,
    pool_of,
    sees_host_pids,
    shared_with_host,
    under_host_shared_root,
)

IMAGE_CAPABILITIES = (1 << CAP_CHOWN) | (1 << CAP_DAC_OVERRIDE) | (1 << CAP_FOWNER) | (1 << CAP_FSETID)


def _status(tmp_path: Path, cap_eff: str) -> Path:
    status = tmp_path / "status"
    status.write_text(f"Name:\tcacherr\nUid:\t99\t99\t99\t99\nCapInh:\t0000000000000000\n"
                      f"CapPrm:\t{cap_eff}\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n")
    return status


def test_the_effective_capabilities_are_read_from_capeff(tmp_path):
    assert effective_capabilities(_status(tmp_path, "000000000000001b")) == IMAGE_CAPABILITIES
    (tmp_path / "broken").write_text("CapEff:\tnot-hex\n")
    assert effective_capabilities(tmp_path / "broken") is None
    assert effective_capabilities(tmp_path / "missing") is None
    assert isinstance(effective_capabilities(), int)  # this process's own


@pytest.mark.parametrize(("capabilities", "expected"), [
    (IMAGE_CAPABILITIES, True),  # the image's PUID user
    ((1 << 41) - 1, True),  # root
    ((1 << CAP_CHOWN) | (1 << CAP_FOWNER) | (1 << CAP_FSETID), True),
    ((1 << CAP_CHOWN) | (1 << CAP_FOWNER), False),  # a set-gid bit would be lost silently
    ((1 << CAP_CHOWN) | (1 << CAP_DAC_OVERRIDE), False),  # no mode or times on another's file
    (1 << CAP_DAC_OVERRIDE, False),
    (0, False),  # an ordinary user
])
def test_any_owner_can_be_kept_only_with_chown_fowner_and_fsetid(capabilities, expected):
    assert can_keep_any_owner(capabilities) is expected


def test_the_host_pid_namespace_is_recognised_by_kthreadd_as_pid_2(tmp_path):
    proc = tmp_path / "proc"
    (proc / "2").mkdir(parents=True)
    status = proc / "2" / "status"
    status.write_text("Name:\tkthreadd\nState:\tS (sleeping)\nPid:\t2\nPPid:\t0\n")
    assert sees_host_pids(proc)
    status.write_text("Name:\tpython3\nPid:\t2\nPPid:\t1\n")  # a container's second process
    assert not sees_host_pids(proc)
    status.write_text("Name:\tkthreadd\nPid:\t2\nPPid:\t1\n")  # a look-alike, not the kernel's
    assert not sees_host_pids(proc)
    status.unlink()
    assert not sees_host_pids(proc)  # a container with a single process


def test_the_image_marker_and_the_container_variable_mean_a_container(monkeypatch):
    monkeypatch.setattr(container, "sees_host_pids", lambda: True)
    monkeypatch.setattr(container, "PODMAN_MARKER", Path("/nonexistent/.containerenv"))
    assert in_container({"CACHERR_IN_CONTAINER": "1"})
    assert in_container({"container": "podman"})
    assert not in_container({"CACHERR_IN_CONTAINER": "0"})
    assert not in_container({})
    monkeypatch.setattr(container, "sees_host_pids", lambda: False)
    assert in_container({})  # its own PID namespace: Docker, whatever the image


@pytest.mark.parametrize(("path", "shared"), [
    ("/mnt", True), ("/mnt/cache/appdata/cacherr/mover-exclude.txt", True),
    ("/mnt/user/../cache/x", True), ("/config/state/mover-exclude.txt", False),
    ("/mntx/cache", False), ("/mnt/../config/x", False), ("/", False),
])
def test_only_paths_under_mnt_are_shared_with_the_host_in_a_container(path, shared):
    assert under_host_shared_root(path) is shared
    assert shared_with_host(path, container=True) is shared
    assert shared_with_host(path, container=False) is True


def test_the_pool_of_a_fast_folder_is_its_mnt_folder():
    assert pool_of("/mnt/cache") == Path("/mnt/cache")
    assert pool_of("/mnt/nvme/plexcache/media") == Path("/mnt/nvme")
    assert pool_of("/mnt") is None
    assert pool_of("/srv/cache") is None


def test_in_a_container_the_default_mover_list_is_one_the_host_can_read():
    assert default_mover_list("/config/state", "/mnt/cache", container=True) == \
        Path("/mnt/cache/appdata/cacherr/mover-exclude.txt")
    assert default_mover_list("/mnt/cache/appdata/cacherr", "/mnt/cache", container=True) == \
        Path("/mnt/cache/appdata/cacherr/mover-exclude.txt")
    assert default_mover_list("/mnt/nvme/state", "/mnt/cache", container=True) == \
        Path("/mnt/nvme/state/mover-exclude.txt")
    # Outside a container every path is the host's: beside the state, as always.
    assert default_mover_list("/config/state", "/mnt/cache", container=False) == \
        Path("/config/state/mover-exclude.txt")
    # A fast folder outside /mnt has no pool to put it on: beside the state (doctor warns).
    assert default_mover_list("/config/state", "/srv/fast", container=True) == \
        Path("/config/state/mover-exclude.txt")


def test_a_command_that_needs_the_service_stopped_says_how_in_a_container_and_outside(
        monkeypatch):
    # `docker exec` cannot reach a stopped container: in one, the advice is a one-off
    # container with the same volumes, as the same PUID:PGID.
    monkeypatch.setattr(container, "sees_host_pids", lambda: True)
    monkeypatch.setattr(container, "PODMAN_MARKER", Path("/nonexistent/.containerenv"))
    inside = container.how_to_stop_first(
        "doctor --fix", {"CACHERR_IN_CONTAINER": "1", "PUID": "1000", "PGID": "1000"})
    assert "docker run --rm --volumes-from cacherr -e PUID=1000 -e PGID=1000 " in inside
    assert "IMAGE doctor --fix" in inside
    assert "docker stop cacherr" in inside and "docker start cacherr" in inside
    outside = container.how_to_stop_first("doctor --fix", {})
    assert "/etc/rc.d/rc.cacherr stop" in outside and "docker" not in outside
