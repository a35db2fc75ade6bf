"""The image for real: built from the Dockerfile, run as the template and compose run it,
against a sandbox /mnt and the fake Plex.

One container serves the tests of this module in order (a container start costs seconds):
who PID 1 is, /health, /metrics and the HEALTHCHECK, a file of another owner cached with
its owner, mode and times, the mover list where the host can read it, `podman stop`
mid-copy and the recovery on restart, commands run with `podman exec` (as root) writing
as PUID:PGID while the service keeps working, an invalid PUID, PGID or UMASK refused, the
host's mover PID file holding transfers, `doctor --fix` in a one-off container as its
refusal advises, and who owns what cacherr wrote in /config. The
first start without any rules file has its own container, at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from cacherr.host.container import CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID
from cacherr.testing.scenarios import Movie, Scenario, Section, User, Version
from tests.container.deployment import (
    PGID,
    PUID,
    STOP_TIMEOUT_SECONDS,
    Deployment,
    deployed,
    rules,
    tree_owners_and_modes,
)
from tests.helpers import wait_for

KiB, MiB = 1024, 1024 * 1024
OWNER_UID = 1000
OLD_MTIME_NS = 1_500_000_000_987_654_321
THEIRS = "Movies/Theirs (2001)/Theirs (2001).mkv"
BIG = "Movies/Big (2001)/Big (2001).mkv"
HELD = "Movies/Held (2001)/Held (2001).mkv"
BIG_BYTES = 16 * MiB
BANDWIDTH = "4MB"  # the big file takes about 4 s: long enough to stop mid-copy
IMAGE_CAPABILITIES = (1 << CAP_CHOWN) | (1 << CAP_DAC_OVERRIDE) | (1 << CAP_FOWNER) | (1 << CAP_FSETID)


def _scenario() -> Scenario:
    def movie(key: int, relative: str, size: int, labels: list[str]) -> Movie:
        title = Path(relative).parent.name.split(" (")[0]
        return Movie(key, title, 2001, [Version([(f"/data/media/{relative}", size)])],
                     labels=labels)

    return Scenario(
        sections=[Section(1, "Movies", "movie", "/data/media/Movies")],
        movies=[movie(301, THEIRS, 64 * KiB, ["cache"]), movie(302, BIG, BIG_BYTES, []),
                movie(303, HELD, 64 * KiB, [])],
        shows=[], users=[User("owner", 1, "owner", "OWNER-TOKEN")], now=time.time())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prepare(deployment: Deployment) -> None:
    sandbox = deployment.sandbox
    theirs = sandbox.write_file(THEIRS, os.urandom(64 * KiB), disk=1, uid=OWNER_UID,
                                gid=OWNER_UID)
    os.chmod(theirs, 0o640)
    os.utime(theirs, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    os.chown(theirs.parent, OWNER_UID, OWNER_UID)
    os.chmod(theirs.parent, 0o750)
    sandbox.write_file(BIG, os.urandom(BIG_BYTES), disk=2)
    sandbox.write_file(HELD, os.urandom(64 * KiB), disk=1)
    rules_file = deployment.config / "rules.yaml"
    rules_file.write_text(rules(deployment.port, extra_cache=f"  bandwidth: {BANDWIDTH}\n"))
    os.chown(deployment.config, PUID, PGID)
    os.chown(rules_file, PUID, PGID)


@pytest.fixture(scope="module")
def deployment(image):
    with deployed(image, _scenario(), name="cacherr-test-main", prepare=_prepare) as running:
        yield running


def test_pid_1_runs_as_puid_pgid_with_exactly_the_four_capabilities(deployment):
    deployment.wait_healthy("the service to answer /health")
    status = dict(line.split(":", 1) for line in
                  deployment.exec("cat", "/proc/1/status").stdout.splitlines() if ":" in line)
    assert status["Uid"].split() == [str(PUID)] * 4
    assert status["Gid"].split() == [str(PGID)] * 4
    assert status["Groups"].split() == []
    assert int(status["CapEff"], 16) == IMAGE_CAPABILITIES
    assert int(status["CapAmb"], 16) == IMAGE_CAPABILITIES
    command = deployment.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert "cacherr" in " ".join(command) and "run" in command


def test_health_metrics_and_the_image_s_healthcheck_answer(deployment):
    health = deployment.wait_healthy("a first cycle", lambda h: h.get("last_cycle"))
    assert health["status"] in ("ok", "degraded") and health["config"]["last_reload_ok"]
    assert health["guards"]["mover"] == "not_running"
    assert health["guards"]["parity_check"] == "not_running"
    assert deployment.metric("cacherr_build_info", 'version="0.1.0"') == 1
    assert deployment.metric("cacherr_config_last_reload_successful") == 1
    assert deployment.inspect("{{.Config.Healthcheck.Test}}") == "[CMD cacherr healthcheck]"
    assert deployment.podman("healthcheck", "run", deployment.name, check=False).returncode == 0


def test_another_owners_0640_file_is_cached_keeping_owner_mode_and_mtime(deployment):
    fast = deployment.sandbox.fast
    wait_for(lambda: (fast / THEIRS).exists(), timeout_seconds=60, interval_seconds=0.2,
             what=f"{THEIRS} on the pool\n{deployment.logs()[-2000:]}")
    copy = os.stat(fast / THEIRS)
    assert (copy.st_uid, copy.st_gid, copy.st_mode & 0o7777) == (OWNER_UID, OWNER_UID, 0o640)
    assert copy.st_mtime_ns == OLD_MTIME_NS
    assert _digest(fast / THEIRS) == _digest(deployment.sandbox.slow[0] / THEIRS)
    folder = os.stat((fast / THEIRS).parent)
    assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o777) == (OWNER_UID, OWNER_UID, 0o750)
    assert "owner cannot be kept" not in deployment.logs()
    # The mover list: under /mnt, so Mover Tuning on the host reads the same path.
    mover_list = fast / "appdata" / "cacherr" / "mover-exclude.txt"
    wait_for(lambda: mover_list.exists() and f"/mnt/cache/{THEIRS}" in mover_list.read_text(),
             what="the cached file in the mover list")


def test_podman_stop_mid_copy_exits_0_in_time_leaves_no_temporary_file_and_restart_recovers(
        deployment):
    big_folder = deployment.sandbox.fast / Path(BIG).parent

    def temporary_files() -> list[str]:
        if not big_folder.is_dir():
            return []
        return [p.name for p in big_folder.iterdir() if p.name != Path(BIG).name]

    with deployment.fake.lock:
        deployment.fake.scenario.movies[1].labels.append("cache")
    deployment.reload()  # a reload runs a cycle at once
    wait_for(temporary_files, timeout_seconds=60, interval_seconds=0.05,
             what="the big file's copy in progress")
    assert not (deployment.sandbox.fast / BIG).exists(), "the copy must still be running"
    status, _ = deployment.get("/health")  # a long copy never blocks the health check
    assert status == 200 and temporary_files()
    seconds, exit_code = deployment.stop()
    assert exit_code == 0, deployment.logs()[-3000:]
    assert seconds < STOP_TIMEOUT_SECONDS
    assert temporary_files() == []
    assert not (deployment.sandbox.fast / BIG).exists()
    assert _digest(deployment.sandbox.slow[1] / BIG) == _digest(deployment.sandbox.view / BIG)

    deployment.restart()
    deployment.wait_healthy("the restarted service")
    wait_for(lambda: (deployment.sandbox.fast / BIG).exists(), timeout_seconds=90,
             interval_seconds=0.2, what=f"{BIG} cached after the restart")
    assert temporary_files() == []
    assert _digest(deployment.sandbox.fast / BIG) == _digest(deployment.sandbox.slow[1] / BIG)
    assert _digest(deployment.sandbox.view / BIG) == _digest(deployment.sandbox.fast / BIG)


def test_commands_run_with_podman_exec_as_root_act_as_puid_and_the_service_keeps_working(
        deployment):
    """`docker exec` runs a command as root: what it writes must still be the service's."""
    fast, config = deployment.sandbox.fast, deployment.config
    wait_for(lambda: (fast / THEIRS).exists(), timeout_seconds=60, interval_seconds=0.2,
             what=f"{THEIRS} on the pool\n{deployment.logs()[-2000:]}")
    before = tree_owners_and_modes(config)
    # A Cacherr .env the user copied in as root, readable by root only.
    old_settings = config / "cacherr.env"
    old_settings.write_text(f"PLEX_URL={deployment.fake.pms_url}\nPLEX_TOKEN=OLD-TOKEN\n"
                            "PLEX_SOURCE=/data/media\nREAL_SOURCE=/mnt/user\n"
                            "CACHE_DESTINATION=/mnt/cache\n")
    os.chmod(old_settings, 0o600)
    converted = deployment.exec("cacherr", "init", "-c", "/config/converted.yaml",
                                "--from-env", "/config/cacherr.env")
    old_settings.unlink()
    assert "wrote /config/converted.yaml" in converted.stderr
    assert "PLEX_TOKEN=OLD-TOKEN" in (config / ".env").read_text()

    listed = json.loads(deployment.exec("cacherr", "ls", "--format", "json").stdout)
    assert THEIRS in [entry["path"] for entry in listed]
    evicted = deployment.exec("cacherr", "evict", f"/mnt/user/{THEIRS}")  # through api.sock
    assert f"evicted {THEIRS}" in evicted.stderr and not (fast / THEIRS).exists()

    after = tree_owners_and_modes(config)
    # Created by the commands: as the service would create them (UMASK 022; .env 0600).
    assert after["converted.yaml"] == (PUID, PGID, 0o644)
    assert after[".env"] == (PUID, PGID, 0o600)
    for name, (uid, gid, mode) in after.items():
        assert (uid, gid) == (PUID, PGID), f"{name}: {uid}:{gid}"
        if name in before and not name.endswith(("-wal", "-shm")):
            assert mode == before[name][2], f"{name}: {oct(before[name][2])} -> {oct(mode)}"
    assert not [name for name in after if Path(name).name.startswith(".") and name.endswith(".tmp")]

    # The service still works: a cycle writes the ledger (the evicted file cached again).
    deployment.reload()
    wait_for(lambda: (fast / THEIRS).exists(), timeout_seconds=60, interval_seconds=0.2,
             what=f"{THEIRS} cached again\n{deployment.logs()[-2000:]}")
    wait_for(lambda: THEIRS in [entry["path"] for entry in json.loads(
        deployment.exec("cacherr", "ls", "--format", "json").stdout)],
        what=f"{THEIRS} in the ledger again")
    health = deployment.wait_healthy("a cycle after the commands", lambda h: h.get("last_cycle"))
    assert health["status"] == "ok", health


HOSTILE_SETTINGS = (
    ("PUID", "abc"), ("PUID", "-1"), ("PUID", " 99"), ("PUID", "0x63"), ("PUID", "099"),
    ("PUID", "4294967295"),  # (uid_t)-1: setresuid() would leave root as it is
    ("PGID", "100000000000"), ("PGID", "users"), ("UMASK", "0o22"), ("UMASK", "888"),
)


def test_an_invalid_puid_pgid_or_umask_is_refused_clearly_and_changes_nothing(deployment):
    config = deployment.config
    before = tree_owners_and_modes(config)
    for name, value in HOSTILE_SETTINGS:
        done = deployment.podman("exec", "--env", f"{name}={value}", deployment.name,
                                 "cacherr", "init", "-c", "/config/hostile.yaml", check=False)
        assert done.returncode == 2, (name, value, done.stdout, done.stderr)
        assert f"{name} must be" in done.stderr and repr(value) in done.stderr, done.stderr
        assert tree_owners_and_modes(config) == before, (name, value)
    # The container itself, started with one: exits 2 at once, its /config left as it was.
    fresh = deployment.work / "fresh-config"
    fresh.mkdir()
    started = deployment.podman("run", "--rm", "--network", "none", "--env", "PUID=nobody",
                                "--volume", f"{fresh}:/config:rw", deployment.image,
                                check=False, timeout=120)
    assert started.returncode == 2 and "PUID must be" in started.stderr, started.stderr
    assert os.stat(fresh).st_uid == 0 and list(fresh.iterdir()) == []
    assert deployment.running() and deployment.health().get("status") == "ok"


def test_the_host_s_mover_pid_file_holds_new_transfers(deployment):
    # The host's mover: a PID that names nothing in the container's PID namespace.
    deployment.mover_pid_file.write_text(f"{os.getpid()}\n")
    with deployment.fake.lock:
        deployment.fake.scenario.movies[2].labels.append("cache")
    deployment.reload()  # a reload runs a cycle at once
    held = 'reason="mover_running"'
    health = deployment.wait_healthy(
        "the mover guard to hold a transfer",
        lambda h: h.get("guards", {}).get("mover") == "running"
        and (deployment.metric("cacherr_moves_skipped_total", held) or 0) >= 1)
    assert health["guards"]["mover"] == "running"
    assert not (deployment.sandbox.fast / HELD).exists()
    assert "waits: mover_running" in deployment.logs()
    deployment.mover_pid_file.unlink()
    deployment.wait_healthy("the mover guard to see the mover gone",
                            lambda h: h.get("guards", {}).get("mover") == "not_running")


def test_doctor_fix_runs_as_advised_in_a_one_off_container_while_the_service_is_stopped(
        deployment):
    """`docker exec` cannot reach a stopped container: what the refusal advises (a new
    container with the same volumes and variables) must work, and write as PUID:PGID."""
    stray = deployment.sandbox.fast / "Movies" / ".Stray (2001).mkv.cacherr-tmp"
    stray.write_bytes(b"half a copy")
    refused = deployment.exec("cacherr", "doctor", "--fix", check=False)
    assert "a service is running" in refused.stderr, refused.stderr
    assert "docker run --rm --volumes-from cacherr" in refused.stderr, refused.stderr
    assert stray.exists(), "read-only checks while the service runs"
    _, exit_code = deployment.stop()
    assert exit_code == 0
    try:
        variables = {"PUID": PUID, "PGID": PGID, "PLEX_URL": deployment.fake.pms_url,
                     "PLEX_TOKEN": deployment.fake.owner_token, **deployment.fake.env()}
        # Docker lets the inherited /config mount override the image's VOLUME; podman
        # before 4.7 refuses the pair ("duplicate mount destination", podman #19529), so
        # the image's own volume is left out here.
        argv = ["run", "--rm", "--network", "host", "--image-volume", "ignore",
                "--volumes-from", deployment.name]
        for key, value in variables.items():
            argv += ["--env", f"{key}={value}"]
        fixed = deployment.podman(*argv, deployment.image, "doctor", "--fix", check=False,
                                  timeout=120)
        assert "a service is running" not in fixed.stderr, fixed.stderr
        assert f"removed /mnt/cache/Movies/{stray.name}" in fixed.stdout + fixed.stderr, \
            fixed.stdout + fixed.stderr
        assert not stray.exists()
        wrong = {name: owner for name, owner in tree_owners_and_modes(deployment.config).items()
                 if owner[:2] != (PUID, PGID)}
        assert wrong == {}
    finally:
        deployment.restart()
    deployment.wait_healthy("the service started again after doctor --fix")


def test_what_cacherr_wrote_in_config_belongs_to_puid_and_is_not_group_or_world_writable(
        deployment):
    found = tree_owners_and_modes(deployment.config)
    assert "state" in found and any(name.startswith("state/") for name in found), found
    for name, (uid, gid, mode) in found.items():
        assert (uid, gid) == (PUID, PGID), f"{name}: {uid}:{gid}"
        assert mode & 0o022 == 0, f"{name}: {oct(mode)}"
    mover_list = os.stat(deployment.sandbox.fast / "appdata/cacherr/mover-exclude.txt")
    assert (mover_list.st_uid, mover_list.st_gid) == (PUID, PGID)
