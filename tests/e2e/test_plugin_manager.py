"""cacherr.plg through a clean-room emulation of Unraid's plugin manager (plugin_emulator.py):
install, boot without network, update, removal and the array events, with the real app
package and a stub Python runtime, in a private mount namespace."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.plugin_emulator import (
    PLUGIN_SOURCES,
    TEST_VERSION,
    Sandbox,
    build_app,
    build_stub_runtime,
    downloads_of,
    render_plugin,
)
from tests.helpers import require_root, require_tool

VERSION_A, VERSION_B = TEST_VERSION, "2026.04.01"
RULES = """\
version: 1
plex: {{url: 'http://127.0.0.1:9', token: test-token}}
paths: [{{plex: /data, host: {root}/media}}]
cache: {{layout: symlink, symlink: {{dir: {root}/ssd, plex_dir: /ssd}}}}
rules: [{{name: continue-watching, select: ondeck}}]
server: {{listen: '127.0.0.1:{port}'}}
state_dir: {root}/state
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rules(root: Path) -> str:
    for folder in ("media", "ssd", "state"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return RULES.format(root=root, port=_free_port())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require_root()
    require_tool("unshare")
    tmp = tmp_path_factory.mktemp("plugin")
    dist = tmp / "dist"
    shim_log = tmp / "shim.jsonl"
    runtime = build_stub_runtime(dist, shim_log)
    app_a = build_app(dist, VERSION_A)
    # The version is only in the package's name, so the update's package is the same
    # build under the next version's name (one build less).
    app_b = dist / app_a.name.replace(VERSION_A, VERSION_B)
    shutil.copyfile(app_a, app_b)
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    plg_a = render_plugin(tmp / "a" / "cacherr.plg", app_a, runtime)
    plg_b = render_plugin(tmp / "b" / "cacherr.plg", app_b, runtime)
    downloads = {**downloads_of(plg_a, app_a, runtime), **downloads_of(plg_b, app_b, runtime)}
    return {"runtime": runtime, "app_a": app_a, "app_b": app_b, "plg_a": plg_a, "plg_b": plg_b,
            "downloads": downloads, "shim_log": shim_log}


class Server:
    """One fake Unraid server with cacherr's plugin, and what the test needs to look at."""

    def __init__(self, path: Path, built: dict):
        self.sandbox = Sandbox(path / "server")
        self.sandbox.set_downloads(built["downloads"])
        self.built = built
        self.state_root = path / "data"
        self.rules_text = _rules(self.state_root)
        built["shim_log"].write_text("")

    def seed_rules(self) -> Path:
        rules = self.sandbox.flash / "cacherr" / "rules.yaml"
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(self.rules_text)
        return rules

    def pid(self) -> int | None:
        pid_file = self.sandbox.rootpath("/run/cacherr.pid")
        return int(pid_file.read_text()) if pid_file.exists() else None

    def service_running(self) -> bool:
        return self.sandbox.shell("/etc/rc.d/rc.cacherr status")["code"] == 0

    def python_calls(self) -> list[dict]:
        text = self.built["shim_log"].read_text()
        return [json.loads(line) for line in text.splitlines() if line]

    def wait_for_service(self, timeout_seconds: float = 30) -> int:
        """The started event forks rc.cacherr start: wait until the service is up."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid and _cmdline(pid)[-1:] == ["run"]:
                return pid
            time.sleep(0.05)
        raise AssertionError(f"the service did not start:\n{self.sandbox.syslog()}")

    def stop_everything(self) -> None:
        pid = self.pid()
        if pid and "cacherr" in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode().split("\0")[:-1]


@pytest.fixture
def server(tmp_path, built):
    server = Server(tmp_path, built)
    yield server
    server.stop_everything()


def _installed_packages(sandbox: Sandbox) -> list[str]:
    return sorted(path.name for path in sandbox.rootpath("/var/lib/pkgtools/packages").iterdir())


def test_a_fresh_install_with_the_array_started_installs_both_packages_and_starts_the_service(
        server, built):
    rules = server.seed_rules()
    server.sandbox.set_array(True)
    result = server.sandbox.install(built["plg_a"])
    assert result["ok"], result["output"]

    flash = server.sandbox.flash
    assert (flash / "cacherr" / built["app_a"].name).read_bytes() == built["app_a"].read_bytes()
    assert (flash / "cacherr" / built["runtime"].name).exists()
    assert (flash / "cacherr.plg").read_text() == built["plg_a"].read_text()
    assert os.readlink(server.sandbox.rootpath("/var/log/plugins/cacherr.plg")) == \
        "/boot/config/plugins/cacherr.plg"
    assert _installed_packages(server.sandbox) == sorted(
        [built["app_a"].name.removesuffix(".txz"), built["runtime"].name.removesuffix(".txz")])
    assert rules.read_text() == server.rules_text  # an existing rules file is never replaced
    assert server.sandbox.rootpath("/etc/rc.d/rc.cacherr").stat().st_mode & 0o111

    pid = server.wait_for_service()  # the wrapper execs the runtime: wait for that
    command = _cmdline(pid)
    assert command[1:] == ["-I", "-m", "cacherr", "-c",
                           "/boot/config/plugins/cacherr/rules.yaml", "run"]
    assert server.service_running()
    calls = [call["argv"] for call in server.python_calls()]
    assert ["-I", "-m", "cacherr", "--version"] in calls
    assert ["-I", "-m", "cacherr", "-c", "/boot/config/plugins/cacherr/rules.yaml",
            "validate"] in calls


def test_an_install_with_the_array_stopped_writes_the_starter_rules_and_starts_nothing(
        server, built):
    server.sandbox.set_array(False)
    result = server.sandbox.install(built["plg_a"])
    assert result["ok"], result["output"]
    rules = server.sandbox.flash / "cacherr" / "rules.yaml"
    assert rules.read_text() == (PLUGIN_SOURCES / "default-rules.yaml").read_text()
    assert "dry_run: true" in rules.read_text()
    assert server.pid() is None
    assert not server.service_running()
    assert not any(call["argv"][-1:] == ["run"] for call in server.python_calls())


def test_the_started_event_returns_at_once_silently_and_unmounting_disks_waits_for_the_stop(
        server, built):
    server.seed_rules()
    server.sandbox.set_array(False)
    assert server.sandbox.install(built["plg_a"])["ok"]
    server.sandbox.set_array(True)

    started = server.sandbox.event("started")
    assert [script["stdout"] for script in started["scripts"]] == [""]
    assert started["seconds"] < 1.0
    pid = server.wait_for_service()

    stopping = server.sandbox.event("stopping")
    assert [script["stdout"] for script in stopping["scripts"]] == [""]
    unmounting = server.sandbox.event("unmounting_disks")
    assert [script["stdout"] for script in unmounting["scripts"]] == [""]
    assert _cmdline(pid) == []  # gone (or a zombie) once unmounting_disks returned
    assert not server.service_running()
    assert "cacherr stopped" in server.sandbox.syslog()


def test_a_reboot_with_every_download_failing_reinstalls_from_the_flash_drive(server, built):
    server.seed_rules()
    server.sandbox.set_array(True)
    assert server.sandbox.install(built["plg_a"])["ok"]
    server.sandbox.event("stopping")
    server.sandbox.event("unmounting_disks")

    server.sandbox.reboot()
    server.sandbox.set_offline(True)
    server.sandbox.set_array(None)  # plugins install before emhttpd and the array
    booted = server.sandbox.boot()
    assert booted["plugins"] == {"cacherr.plg": True}, booted["output"]
    assert "downloading" not in booted["output"]
    assert "skipping" in booted["output"]
    assert len(_installed_packages(server.sandbox)) == 2
    assert not server.sandbox.rootpath("/boot/config/plugins-error").exists()
    assert server.pid() is None  # the array is not up yet

    server.sandbox.set_array(True)
    server.sandbox.event("started")
    pid = server.wait_for_service()
    assert "cacherr" in _cmdline(pid)


def test_an_update_stops_the_service_upgrades_and_restarts_it_keeping_the_rules(server, built):
    rules = server.seed_rules()
    server.sandbox.set_array(True)
    assert server.sandbox.install(built["plg_a"])["ok"]
    old_pid = server.pid()
    rules.write_text(server.rules_text + "# edited by the user\n")

    result = server.sandbox.install(built["plg_b"])
    assert result["ok"], result["output"]
    assert "stopping the running service" in result["output"]
    assert _cmdline(old_pid) == []
    new_pid = server.wait_for_service()
    assert new_pid != old_pid and "cacherr" in _cmdline(new_pid)
    assert _installed_packages(server.sandbox) == sorted(
        [built["app_b"].name.removesuffix(".txz"), built["runtime"].name.removesuffix(".txz")])
    cached = sorted(path.name for path in (server.sandbox.flash / "cacherr").glob("*.txz"))
    assert cached == sorted([built["app_b"].name, built["runtime"].name])
    assert rules.read_text().endswith("# edited by the user\n")
    assert (server.sandbox.flash / "cacherr.plg").read_text() == built["plg_b"].read_text()


def test_removal_evicts_everything_first_then_stops_and_removes_every_installed_file(
        server, built):
    rules = server.seed_rules()
    server.sandbox.set_array(True)
    assert server.sandbox.install(built["plg_a"])["ok"]
    pid = server.pid()

    result = server.sandbox.remove()
    assert result["ok"], result["output"]
    evictions = [call for call in server.python_calls() if call["argv"][-2:] == ["evict", "--all"]]
    assert len(evictions) == 1
    stopped = [call for call in server.sandbox.calls("logger") if call["argv"][-1] == "cacherr stopped"]
    assert stopped and evictions[0]["t"] < stopped[0]["t"]
    assert _cmdline(pid) == []

    for path in ("/etc/rc.d/rc.cacherr", "/usr/local/sbin/cacherr",
                 "/usr/local/emhttp/plugins/cacherr", "/var/log/plugins/cacherr.plg"):
        assert not os.path.lexists(server.sandbox.rootpath(path)), path
    assert list(server.sandbox.rootpath("/usr/local/lib/cacherr").iterdir()) == []
    assert _installed_packages(server.sandbox) == []
    assert list((server.sandbox.flash / "cacherr").glob("*.txz")) == []
    assert rules.read_text() == server.rules_text
    assert (server.sandbox.rootpath("/boot/config/plugins-removed") / "cacherr.plg").exists()


def test_a_failing_install_at_boot_keeps_the_plugin_and_notifies_but_fails_in_a_running_system(
        server, built, tmp_path):
    server.seed_rules()
    server.sandbox.set_array(True)
    assert server.sandbox.install(built["plg_a"])["ok"]
    server.sandbox.event("stopping")
    server.sandbox.event("unmounting_disks")
    server.sandbox.reboot()
    server.sandbox.set_array(None)
    server.sandbox.set_upgradepkg_fails(True)

    booted = server.sandbox.boot()
    assert booted["plugins"] == {"cacherr.plg": True}, booted["output"]
    assert (server.sandbox.flash / "cacherr.plg").exists()
    assert not server.sandbox.rootpath("/boot/config/plugins-error").exists()
    alerts = [argv for argv in server.sandbox.notifications() if "alert" in argv]
    assert alerts and "failed" in " ".join(alerts[0])

    fresh = Sandbox(tmp_path / "other")
    fresh.set_downloads(built["downloads"])
    fresh.set_array(True)
    fresh.set_upgradepkg_fails(True)
    result = fresh.install(built["plg_a"])
    assert not result["ok"]
    assert not os.path.lexists(fresh.rootpath("/var/log/plugins/cacherr.plg"))
