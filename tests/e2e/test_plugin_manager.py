"""cacherr.plg through Unraid's real plugin manager and Slackware's real installpkg, upgradepkg
and removepkg (unraid_box.py): install from a URL, the array events, an offline reinstall
from the flash drive at boot, check and update to the next version, and removal; then a
first install without rules, and installs that cannot work (too little RAM) at boot and in
a running system. Both packages come from `make plugin`, the runtime from a stand-in laid
out like python-build-standalone (plugin_build.py)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.e2e.plugin_build import (
    PLUGIN_SOURCES,
    TEST_VERSION,
    make_plugin,
    render_plugin,
    standin_pbs_tarball,
)
from tests.e2e.unraid_box import CALL_LOG, UnraidBox
from tests.helpers import require_root, require_tool, wait_for

VERSION_A, VERSION_B = TEST_VERSION, "2026.04.01"
FLASH_PLG = "/boot/config/plugins/cacherr.plg"
RULES_PATH = "config/plugins/cacherr/rules.yaml"  # on the flash drive
RULES = """\
version: 1
plex: {{url: 'http://127.0.0.1:9', token: test-token}}
paths: [{{plex: /data, host: /mnt/cache/media}}]
cache: {{layout: symlink, symlink: {{dir: /mnt/cache/ssd, plex_dir: /ssd}}}}
rules: [{{name: continue-watching, select: ondeck}}]
server: {{listen: '127.0.0.1:{port}'}}
state_dir: /mnt/cache/appdata/cacherr
"""
# What pkgtools keeps about removed packages: its history, not cacherr's files.
PKGTOOLS_HISTORY = re.compile(r"^/var/log/pkgtools/removed_(packages|scripts)/cacherr")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Both versions of the plugin, built as a maintainer builds them, for one download port."""
    require_root()
    for tool in ("unshare", "php", "wget", "xz", "ip", "make"):
        require_tool(tool)
    tmp = tmp_path_factory.mktemp("plugin-site")
    with socket.socket() as probe:  # each box serves on it inside its own network namespace
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    tarball, sha256 = standin_pbs_tarball(tmp / "pbs", CALL_LOG)
    dist_a = tmp / "dist-a"
    done = make_plugin(dist_a, VERSION_A, tarball, sha256, (
        "--no-bytecode", "--plugin-url", f"{base}/cacherr.plg", "--release-url", f"{base}/{VERSION_A}"))
    assert done.returncode == 0, done.stdout + done.stderr
    runtime = next(dist_a.glob("cacherr-python-*.txz"))
    app_a = dist_a / f"cacherr-{VERSION_A}-x86_64-1.txz"
    # The version is only in the package's name: B is A's build under the next name.
    dist_b = tmp / "dist-b"
    dist_b.mkdir()
    app_b = dist_b / app_a.name.replace(VERSION_A, VERSION_B)
    shutil.copyfile(app_a, app_b)
    shutil.copyfile(runtime, dist_b / runtime.name)
    plg_b = render_plugin(dist_b / "cacherr.plg", app_b, runtime, "- the next version",
                          plugin_url=f"{base}/cacherr.plg", release_url=f"{base}/{VERSION_B}")
    return {"port": port, "base": base, "runtime": runtime, "app_a": app_a, "app_b": app_b,
            "plg_a": dist_a / "cacherr.plg", "plg_b": plg_b}


class Server:
    """One box with its own download site (a copy of both versions' files)."""

    def __init__(self, path: Path, site: dict):
        self.site = site
        self.serve = path / "serve"
        for version, app in ((VERSION_A, site["app_a"]), (VERSION_B, site["app_b"])):
            (self.serve / version).mkdir(parents=True)
            for package in (app, site["runtime"]):
                shutil.copyfile(package, self.serve / version / package.name)
        self.publish(site["plg_a"])
        self.box = UnraidBox(path / "box", self.serve, port=site["port"])
        self.url = f"{site['base']}/cacherr.plg"

    def publish(self, plg: Path) -> None:
        """Make `plg` the plugin's current version on the download site."""
        shutil.copyfile(plg, self.serve / "cacherr.plg")

    def seed_rules(self) -> str:
        """A rules file the service runs with (Plex is unreachable: it runs, degraded)."""
        for folder in ("media", "ssd", "appdata"):
            (self.box.pool / folder).mkdir(exist_ok=True)
        text = RULES.format(port=self.box.service_port)
        (self.box.flash / RULES_PATH).parent.mkdir(parents=True, exist_ok=True)
        (self.box.flash / RULES_PATH).write_text(text)
        return text

    def services(self) -> list[int]:
        return [process["pid"] for process in self.box.processes()
                if process["argv"][-1:] == ["run"] and "cacherr" in process["argv"]]

    def wait_for_service(self) -> int:
        """Wait until the service answers on its port; return its PID."""
        health = f"http://127.0.0.1:{self.box.service_port}/health"
        wait_for(lambda: self.box.http_get(health)[0] in (200, 503), 180,
                 what=f"the service to answer (syslog:\n{self.box.syslog_text()[-3000:]})")
        (pid,) = self.services()
        return pid

    def installed_packages(self) -> list[str]:
        listing = self.box.run("ls /var/lib/pkgtools/packages 2>/dev/null")
        return sorted(listing.stdout.split())

    def syslog_since(self, mark: int) -> str:
        return "\n".join(text for t, text in self.box.syslog() if t >= mark)

    def last_syslog_time(self) -> int:
        lines = self.box.syslog()
        return lines[-1][0] + 1 if lines else 0


@pytest.fixture
def server(tmp_path, site):
    server = Server(tmp_path, site)
    yield server
    server.box.close()


def _package(path: Path) -> str:
    return path.name.removesuffix(".txz")


def _assert_installed_like_slackware(server: Server, app: Path, since: int) -> None:
    """installpkg ran doinst.sh and recorded it, filled the description, left no /install."""
    box, name = server.box, _package(app)
    assert f"Executing install script for {app.name}." in server.syslog_since(since)
    assert box.read(f"/var/lib/pkgtools/scripts/{name}") == \
        (PLUGIN_SOURCES / "install/doinst.sh").read_text()
    record = box.read(f"/var/lib/pkgtools/packages/{name}")
    description = record.split("PACKAGE DESCRIPTION:\n", 1)[1].split("FILE LIST:", 1)[0]
    expected = [line for line in (PLUGIN_SOURCES / "install/slack-desc").read_text().splitlines()
                if line.startswith("cacherr:")]
    assert description.splitlines() == expected
    runtime_record = box.read(f"/var/lib/pkgtools/packages/{_package(server.site['runtime'])}")
    assert "cacherr-python: cacherr-python (a private Python runtime for cacherr)" in runtime_record
    assert not [path for path, _ in box.ram_files() if path == "/install" or
                path.startswith("/install/")]


def test_install_events_offline_reboot_update_and_removal_through_the_real_plugin_manager(
        server, site):
    box = server.box
    rules = server.seed_rules()

    # 1. Install from the URL with the array started: both packages, and the service runs.
    box.set_array(True)
    mark = server.last_syslog_time()
    installed = box.plugin("install", server.url)
    assert installed.code == 0, installed.output
    assert "plugin: cacherr.plg installed" in installed.stdout
    assert (box.flash / "config/plugins/cacherr.plg").read_text() == site["plg_a"].read_text()
    for package in (site["app_a"], site["runtime"]):
        assert (box.flash / "config/plugins/cacherr" / package.name).read_bytes() == \
            package.read_bytes()
    assert box.run(["readlink", "/var/log/plugins/cacherr.plg"]).stdout.strip() == FLASH_PLG
    assert server.installed_packages() == sorted([_package(site["app_a"]),
                                                  _package(site["runtime"])])
    _assert_installed_like_slackware(server, site["app_a"], mark)
    first = server.wait_for_service()
    where = box.run(["/usr/local/lib/cacherr/python/bin/python3", "-I", "-c",
                     "import cacherr; print(cacherr.__file__)"])
    assert where.stdout.strip() == "/usr/local/lib/cacherr/site-packages/cacherr/__init__.py"
    assert (box.flash / RULES_PATH).read_text() == rules  # an existing rules file stays

    # 2. The array stops and starts: the events return at once and say nothing.
    for event in ("stopping", "unmounting_disks"):
        done = box.event(event)
        assert (done.code, done.stdout) == (0, ""), done.output
    assert first not in [process["pid"] for process in box.processes()]
    assert server.services() == []
    started = box.event("started")
    assert (started.code, started.stdout) == (0, ""), started.output
    server.wait_for_service()

    # 3. A reboot with no network: the plugin reinstalls from the flash drive, and the
    #    service starts with the array.
    box.reboot()
    box.set_offline(True)
    box.set_array(None)  # plugins install before emhttpd and the array
    mark = server.last_syslog_time()
    booted = box.plugin("install", FLASH_PLG)  # what rc.local does for each plugin
    assert booted.code == 0, booted.output
    assert "downloading" not in booted.output
    assert not (box.flash / "config/plugins-error").exists()
    assert server.installed_packages() == sorted([_package(site["app_a"]),
                                                  _package(site["runtime"])])
    _assert_installed_like_slackware(server, site["app_a"], mark)
    assert server.services() == []
    box.set_array(True)
    assert box.event("started").code == 0
    before_update = server.wait_for_service()

    # 4. Check and update to the next version: the service restarts on the new package.
    box.set_offline(False)
    server.publish(site["plg_b"])
    (box.flash / RULES_PATH).write_text(rules + "# edited by the user\n")
    checked = box.plugin("check", "cacherr.plg")
    assert checked.code == 0, checked.output
    assert VERSION_B in checked.stdout.splitlines()  # the version it found
    updated = box.plugin("update", "cacherr.plg")
    assert updated.code == 0, updated.output
    assert "stopping the running service" in updated.stdout
    assert "plugin: cacherr.plg updated" in updated.stdout
    after_update = server.wait_for_service()
    assert after_update != before_update
    assert server.installed_packages() == sorted([_package(site["app_b"]),
                                                  _package(site["runtime"])])
    assert sorted(path.name for path in (box.flash / "config/plugins/cacherr").glob("*.txz")) \
        == sorted([site["app_b"].name, site["runtime"].name])
    assert (box.flash / "config/plugins/cacherr.plg").read_text() == site["plg_b"].read_text()
    assert (box.flash / RULES_PATH).read_text().endswith("# edited by the user\n")

    # 5. Removal: the service stops, then every cached file goes back, then the packages go.
    calls_before = len(box.calls())
    removed = box.plugin("remove", "cacherr.plg")
    assert removed.code == 0, removed.output
    evictions = [call for call in box.calls()[calls_before:] if call["argv"][-2:] == ["evict", "--all"]]
    assert len(evictions) == 1, box.calls()
    assert evictions[0]["services"] == [], "evict --all ran while the service was running"
    assert any(call["services"] for call in box.calls()[:calls_before]), \
        "the calls log must see a running service when there is one"
    assert "evict --all failed" not in box.syslog_text()
    assert server.services() == [] and server.installed_packages() == []
    leftovers = [path for path, _ in box.ram_files()
                 if "cacherr" in path and not PKGTOOLS_HISTORY.match(path)]
    assert leftovers == [], "\n".join(leftovers)
    on_flash = sorted(str(path.relative_to(box.flash)) for path in box.flash.rglob("*")
                      if path.is_file())
    assert on_flash == sorted([RULES_PATH, "config/plugins-removed/cacherr.plg"])
    assert (box.flash / RULES_PATH).read_text().endswith("# edited by the user\n")


def test_a_first_install_writes_starter_rules_and_an_install_without_room_fails_softly_only_at_boot(
        server, site):
    box = server.box

    # A first install with the array stopped: the starter rules, nothing started.
    box.set_array(False)
    first = box.plugin("install", server.url)
    assert first.code == 0, first.output
    starter = (box.flash / RULES_PATH).read_text()
    assert starter == (PLUGIN_SOURCES / "default-rules.yaml").read_text()
    assert "dry_run: true" in starter
    assert server.services() == []
    assert not any(call["argv"][-1:] == ["run"] for call in box.calls())

    # At boot, with too little RAM for /usr: the install script gives up, but the plugin
    # stays registered (a failure here would move it to plugins-error, gone after the boot)
    # and the admin is notified.
    box.reboot(ram_mib=128)
    box.set_array(None)
    booted = box.plugin("install", FLASH_PLG)
    assert booted.code == 0, booted.output
    assert "not enough free RAM" in booted.stdout
    assert (box.flash / "config/plugins/cacherr.plg").exists()
    assert not (box.flash / "config/plugins-error").exists()
    assert server.installed_packages() == []
    notices = box.run("cat /tmp/notifications/unread/*.notify")
    assert 'importance="alert"' in notices.stdout and "not enough free RAM" in notices.stdout

    # The same in a running system is an error the plugin manager reports.
    box.reboot(ram_mib=128)
    box.set_array(True)
    refused = box.plugin("install", server.url)
    assert refused.code == 1, refused.output
    assert "run failed" in refused.stdout
    assert box.run(["test", "-L", "/var/log/plugins/cacherr.plg"]).code == 1

