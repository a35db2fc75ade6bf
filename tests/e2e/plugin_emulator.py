"""A clean-room emulation of Unraid's plugin manager, for testing cacherr.plg without Unraid.

Written from the documented behaviour (shared/research/unraid-packaging.md §1.3, §1.4,
§6.3), not from Unraid's code. Each call runs in a private mount namespace (`unshare
--mount`): /usr/local, /etc and /var get throw-away overlays (so mount points can be made
without touching the host), and the Unraid folders are bind-mounted from a sandbox tree,
so the .plg's scripts run unchanged with their real absolute paths:

  SANDBOX/root/boot               -> /boot (the flash drive; survives reboots)
  SANDBOX/root/usr/local/emhttp   -> /usr/local/emhttp   ... and /etc/rc.d,
  /var/local/emhttp, /var/log/plugins, /usr/local/lib/cacherr, /usr/local/sbin,
  /var/lib/pkgtools, /run (RAM: wiped by `Sandbox.reboot`)

Fake installpkg/upgradepkg/removepkg/logger/notify/update_cron come first on PATH and log
every call to SANDBOX/calls.jsonl; `notify` also to notify.jsonl, `logger` to syslog.
Downloads map URLs to local files (SANDBOX/downloads.json); the file SANDBOX/offline makes
every download fail. SANDBOX/fail-upgradepkg makes upgradepkg fail.

Host side: `Sandbox(path)`. Namespace side: `python plugin_emulator.py SANDBOX COMMAND`.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

BINDS = ("/boot", "/usr/local/emhttp", "/etc/rc.d", "/var/local/emhttp", "/var/log/plugins",
         "/usr/local/lib/cacherr", "/usr/local/sbin", "/var/lib/pkgtools", "/run")
RAM = tuple(path for path in BINDS if path != "/boot")
OVERLAYS = ("/usr/local", "/etc", "/var")
ALLOWED_PREFIXES = ("usr/local/lib/cacherr/", "usr/local/emhttp/plugins/cacherr/",
                    "usr/local/sbin/cacherr", "etc/rc.d/rc.cacherr", "install/")
TOOLS = ("installpkg", "upgradepkg", "removepkg", "logger", "notify", "update_cron")
PKG_DB = Path("/var/lib/pkgtools/packages")
SCRIPT_TIMEOUT_SECONDS = 90


# -- host side -------------------------------------------------------------------------


class Sandbox:
    """A fake Unraid: its flash, its RAM folders, and a way to run the plugin manager."""

    def __init__(self, path: Path, unraid_version: str = "6.12.15", env: dict | None = None):
        self.path = Path(path)
        self.env = dict(env or {})
        for folder in BINDS:
            (self.path / "root" / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (self.path / "root/boot/config/plugins").mkdir(parents=True, exist_ok=True)
        (self.path / "unraid-version").write_text(f'version="{unraid_version}"\n')
        bin_dir = self.path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in TOOLS:
            script = bin_dir / tool
            script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                              f"{shlex.quote(str(Path(__file__).resolve()))} "
                              f"{shlex.quote(str(self.path))} tool {tool} \"$@\"\n")
            script.chmod(0o755)
        self.set_downloads({})

    # state of the fake server
    def rootpath(self, path: str) -> Path:
        return self.path / "root" / path.lstrip("/")

    @property
    def flash(self) -> Path:
        return self.rootpath("/boot/config/plugins")

    def set_array(self, started: bool | None) -> None:
        """Write emhttpd's var.ini (None: emhttpd has not run yet, as early at boot)."""
        var_ini = self.rootpath("/var/local/emhttp/var.ini")
        if started is None:
            var_ini.unlink(missing_ok=True)
        else:
            var_ini.write_text(f'fsState="{"Started" if started else "Stopped"}"\n'
                               f'mdState="{"STARTED" if started else "STOPPED"}"\n')

    def set_downloads(self, mapping: dict[str, Path]) -> None:
        (self.path / "downloads.json").write_text(
            json.dumps({url: str(path) for url, path in mapping.items()}))

    def set_offline(self, offline: bool) -> None:
        marker = self.path / "offline"
        marker.touch() if offline else marker.unlink(missing_ok=True)

    def set_upgradepkg_fails(self, fails: bool) -> None:
        marker = self.path / "fail-upgradepkg"
        marker.touch() if fails else marker.unlink(missing_ok=True)

    def reboot(self) -> None:
        """Power-cycle: everything in RAM is gone, the flash drive stays."""
        for folder in RAM:
            shutil.rmtree(self.rootpath(folder))
            self.rootpath(folder).mkdir(parents=True)
        shutil.rmtree(self.path / "ramtmp", ignore_errors=True)

    # records
    def calls(self, tool: str | None = None) -> list[dict]:
        """The fake tools' calls: {"tool", "argv", "t" (time.time_ns())}, in order."""
        return [entry for entry in _read_jsonl(self.path / "calls.jsonl")
                if tool is None or entry["tool"] == tool]

    def notifications(self) -> list[list[str]]:
        return [entry["argv"] for entry in _read_jsonl(self.path / "notify.jsonl")]

    def syslog(self) -> str:
        log = self.path / "syslog"
        return log.read_text() if log.exists() else ""

    # running the plugin manager
    def run(self, *command: str, timeout: float = 180) -> dict:
        """Run an emulator command in a private mount namespace; return its RESULT dict."""
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, str(Path(__file__).resolve()), str(self.path), *command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env}, stdin=subprocess.DEVNULL)
        result = None
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        if result is None:
            raise AssertionError(f"emulator failed ({done.returncode}):\n{done.stdout}\n"
                                 f"{done.stderr}")
        result["output"] = done.stdout
        return result

    def install(self, plg: Path) -> dict:
        return self.run("install", str(plg))

    def boot(self) -> dict:
        return self.run("boot")

    def remove(self, name: str = "cacherr.plg") -> dict:
        return self.run("remove", name)

    def event(self, name: str) -> dict:
        return self.run("event", name)

    def shell(self, script: str) -> dict:
        return self.run("shell", script)


REPO = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = REPO / "unraid-plugin"
STUB_RUNTIME_NAME = "cacherr-python-3.12.0-x86_64-1_stub.txz"

SHIM = """#!{python} -I
# Stub runtime for tests: record the call, then run the test machine's own interpreter.
# (The real runtime is python-build-standalone 3.12; offline CI has no copy of it.)
import json, os, sys, time
args = sys.argv[1:]
with open({log!r}, "a") as handle:
    handle.write(json.dumps({{"pid": os.getpid(), "argv": args, "t": time.time_ns()}}) + "\\n")
os.execv({python!r}, [{python!r}] + args)
"""


WHEELHOUSE = Path(tempfile.gettempdir()) / "cacherr-test-wheelhouse"
TEST_MTIME = 1_767_225_600  # 2026-01-01


TEST_VERSION = "2026.03.04"
_BUILT: dict[tuple[str, str], Path] = {}


def _inputs_digest(source: Path) -> str:
    digest = hashlib.sha256()
    for root in (source, PLUGIN_SOURCES):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    for name in ("requirements.txt",):
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()


def build_app(out_dir: Path, version: str = TEST_VERSION, source: Path | None = None, *,
              reuse: bool = True) -> Path:
    """Build the real app package (xz preset 0 for speed); wheels are downloaded once.

    With `reuse`, a package built earlier in this test session from identical inputs is
    copied instead of built again.
    """
    source = source or REPO / "cacherr"
    key = (version, _inputs_digest(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    if reuse and key in _BUILT and _BUILT[key].exists():
        for suffix in ("", ".sha256"):
            shutil.copyfile(f"{_BUILT[key]}{suffix}", out_dir / (_BUILT[key].name + suffix))
        return out_dir / _BUILT[key].name
    build = load_plugin_module("build")
    package = build.build(version, "1", out_dir, WHEELHOUSE, None, TEST_MTIME, source=source,
                          xz_preset=0)
    _BUILT[key] = package
    return package


def render_plugin(out: Path, app: Path, runtime: Path, changes: str = "- test build") -> Path:
    """Render a .plg for these packages (with their SHA256s) to `out`; return it."""
    render = load_plugin_module("render_plg")
    out.write_text(render.render(
        app_txz=app.name, app_sha256=render.sha256_of(app), runtime_txz=runtime.name,
        runtime_sha256=render.sha256_of(runtime), changes=changes))
    return out


def downloads_of(plg: Path, *packages: Path) -> dict[str, Path]:
    """Map each <URL> of the .plg to the local package of the same file name."""
    by_name = {package.name: package for package in packages}
    urls = [element.text.strip() for element in ET.parse(plg).getroot().iter("URL")]
    return {url: by_name[url.rsplit("/", 1)[1]] for url in urls}


def load_plugin_module(name: str):
    """Import a module of unraid-plugin/ (a folder with a dash: not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cacherr_{name}", PLUGIN_SOURCES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_stub_runtime(out_dir: Path, shim_log: Path) -> Path:
    """Build a runtime package whose python3 records its argv and runs this interpreter."""
    with tempfile.TemporaryDirectory() as scratch:
        python_dir = Path(scratch) / "usr/local/lib/cacherr/python"
        (python_dir / "bin").mkdir(parents=True)
        (python_dir / "lib/python3.12/site-packages").mkdir(parents=True)
        shim = python_dir / "bin/python3"
        shim.write_text(SHIM.format(python=sys.executable, log=str(shim_log)))
        shim.chmod(0o755)
        install = Path(scratch) / "install"
        install.mkdir()
        shutil.copyfile(PLUGIN_SOURCES / "install/slack-desc.python", install / "slack-desc")
        package = out_dir / STUB_RUNTIME_NAME
        load_plugin_module("pkgtar").pack(scratch, package, 0, 0)
    return package


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- namespace side: mounts ------------------------------------------------------------


def _enter(sandbox: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="overlay-", dir=sandbox))
    for index, target in enumerate(OVERLAYS):
        upper, work = scratch / f"{index}/upper", scratch / f"{index}/work"
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={target},upperdir={upper},workdir={work}", target], check=True)
    for target in BINDS:
        source = sandbox / "root" / target.lstrip("/")
        source.mkdir(parents=True, exist_ok=True)
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), target], check=True)
    # The webGUI's notify script, as Unraid's base system provides it.
    notify = Path("/usr/local/emhttp/webGui/scripts/notify")
    notify.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sandbox / "bin/notify", notify)
    notify.chmod(0o755)


def _script_env(sandbox: Path) -> dict:
    return {**os.environ, "PATH": f"{sandbox / 'bin'}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _log(sandbox: Path, text: str) -> None:
    print(text)
    with (sandbox / "plugin-manager.log").open("a") as handle:
        handle.write(text + "\n")


# -- namespace side: the plugin manager (research §1.3, §1.4) ---------------------------


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"[.-]", version))


def _unraid_version(sandbox: Path) -> str:
    return re.search(r'version="([^"]+)"', (sandbox / "unraid-version").read_text()).group(1)


def _fits(element: ET.Element, unraid: str) -> bool:
    low, high = element.get("min") or element.get("Min"), element.get("max") or element.get("Max")
    if low and _version_key(unraid) < _version_key(low):
        return False
    return not (high and _version_key(unraid) > _version_key(high))


def _download(sandbox: Path, url: str, target: Path) -> bool:
    if (sandbox / "offline").exists():
        return False
    source = json.loads((sandbox / "downloads.json").read_text()).get(url)
    if not source or not Path(source).is_file() or Path(source).stat().st_size == 0:
        return False
    shutil.copyfile(source, target)
    return True


def _run(sandbox: Path, command: list[str]) -> int:
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd="/",
                              env=_script_env(sandbox), stdin=subprocess.DEVNULL,
                              timeout=SCRIPT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _log(sandbox, f"run timed out (a process kept the script's output open?): {command}")
        return 124
    for line in (done.stdout + done.stderr).splitlines():
        _log(sandbox, line)
    return done.returncode


def _process_files(sandbox: Path, plugin: ET.Element, method: str) -> bool:
    unraid = _unraid_version(sandbox)
    for number, element in enumerate(plugin.findall("FILE")):
        if method not in (element.get("Method") or "install").split():
            continue
        if not _fits(element, unraid):
            continue
        name, run = element.get("Name"), element.get("Run")
        inline, url, local = element.find("INLINE"), element.findtext("URL"), element.findtext("LOCAL")
        sha256 = (element.findtext("SHA256") or "").strip().lower()
        md5 = (element.findtext("MD5") or "").strip().lower()
        if name:
            target = Path(name)
            if target.exists():
                digest = (hashlib.sha256 if sha256 else hashlib.md5)(target.read_bytes()).hexdigest()
                if (sha256 or md5) and digest != (sha256 or md5):
                    _log(sandbox, f"plugin: {name} checksum mismatch: deleting it")
                    target.unlink()
            if target.exists():
                _log(sandbox, f"plugin: skipping: {name} already exists")
            else:
                target.parent.mkdir(mode=0o770, parents=True, exist_ok=True)
                if local:
                    shutil.copyfile(local.strip(), target)
                elif inline is not None:
                    text = (inline.text or "").strip() + "\n"
                    target.write_bytes(base64.b64decode(text) if element.get("Type") == "base64"
                                       else text.encode())
                elif url:
                    _log(sandbox, f"plugin: downloading: {url.strip()}")
                    if not _download(sandbox, url.strip(), target):
                        _log(sandbox, f"plugin: download failure: {url.strip()}")
                        return False
                    digest = (hashlib.sha256 if sha256 else hashlib.md5)(target.read_bytes()).hexdigest()
                    if (sha256 or md5) and digest != (sha256 or md5):
                        _log(sandbox, f"plugin: bad checksum: {name}")
                        target.unlink()
                        return False
            if element.get("Mode"):
                target.chmod(int(element.get("Mode"), 8))
            command = shlex.split(run) + [name] if run else None
        elif run and inline is not None:
            ramtmp = sandbox / "ramtmp"
            ramtmp.mkdir(exist_ok=True)
            script = ramtmp / f"inline{number}-{plugin.get('name')}.sh"
            script.write_text(inline.text or "")
            command = shlex.split(run) + [str(script)]
        elif run and local:
            command = shlex.split(run) + [local.strip()]
        else:
            command = None
        if command:
            _log(sandbox, f"plugin: running: {' '.join(command[:2])}")
            code = _run(sandbox, command)
            if code != 0:
                _log(sandbox, f"plugin: run failed: '{run}' returned {code}")
                return False
    return True


def plugin_install(sandbox: Path, plg: Path, boot: bool = False) -> bool:
    plugin = ET.parse(plg).getroot()
    file_name = plg.name
    flash_copy = Path("/boot/config/plugins") / file_name
    marker = Path("/var/log/plugins") / file_name
    ok = _fits(plugin, _unraid_version(sandbox))
    if not ok:
        _log(sandbox, f"plugin: {file_name} does not fit Unraid {_unraid_version(sandbox)}")
    elif marker.exists() and not boot:
        installed = ET.parse(marker).getroot().get("version")
        if installed == plugin.get("version"):
            _log(sandbox, f"plugin: not reinstalling the same version {installed}")
            return False
    if ok:
        ok = _process_files(sandbox, plugin, "install")
    if not ok:
        if boot:
            error_dir = Path("/boot/config/plugins-error")
            error_dir.mkdir(exist_ok=True)
            shutil.move(str(flash_copy), error_dir / file_name)
        return False
    if plg.resolve() != flash_copy.resolve():
        shutil.copyfile(plg, flash_copy)
    marker.unlink(missing_ok=True)
    marker.symlink_to(flash_copy)
    return True


def plugin_remove(sandbox: Path, file_name: str) -> bool:
    marker = Path("/var/log/plugins") / file_name
    if not marker.is_symlink():
        _log(sandbox, f"plugin: {file_name} is not installed")
        return False
    plg = Path(os.readlink(marker))
    marker.unlink()
    if not _process_files(sandbox, ET.parse(plg).getroot(), "remove"):
        marker.symlink_to(plg)
        return False
    removed = Path("/boot/config/plugins-removed")
    removed.mkdir(exist_ok=True)
    shutil.move(str(plg), removed / file_name)
    _run(sandbox, ["update_cron"])
    return True


def boot(sandbox: Path) -> dict:
    outcome = {}
    for plg in sorted(glob.glob("/boot/config/plugins/*.plg")):
        outcome[Path(plg).name] = plugin_install(sandbox, Path(plg), boot=True)
    return outcome


def emhttp_event(sandbox: Path, event: str) -> dict:
    """Run every plugin's event/<event> as emhttpd does, waiting for each."""
    outputs, started = [], time.monotonic()
    for plugin_dir in sorted(glob.glob("/usr/local/emhttp/plugins/*")):
        hook = Path(plugin_dir) / "event" / event
        scripts = sorted(hook.iterdir()) if hook.is_dir() else [hook]
        for script in scripts:
            if script.is_file() and os.access(script, os.X_OK):
                done = subprocess.run([str(script), event], capture_output=True, text=True,
                                      cwd="/", env=_script_env(sandbox),
                                      stdin=subprocess.DEVNULL, timeout=SCRIPT_TIMEOUT_SECONDS)
                outputs.append({"script": str(script), "stdout": done.stdout,
                                "stderr": done.stderr, "code": done.returncode})
    return {"scripts": outputs, "seconds": time.monotonic() - started}


# -- namespace side: the fake package tools and services --------------------------------


def _record(sandbox: Path, tool: str, argv: list[str], name: str = "calls.jsonl") -> None:
    with (sandbox / name).open("a") as handle:
        handle.write(json.dumps({"tool": tool, "argv": argv, "t": time.time_ns()}) + "\n")


def _package_name(full: str) -> str:
    """cacherr-python-3.12.8-x86_64-1 -> cacherr-python (strip version, arch, build)."""
    return full.rsplit("-", 3)[0]


def _install_package(package: Path) -> list[str]:
    """Extract like installpkg (refusing members outside cacherr's prefixes), run doinst.sh."""
    full = package.name.removesuffix(".txz")
    files = []
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(package) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if name in ("", "."):
                continue
            if name.startswith("install/") or name == "install":
                tar.extract(member, scratch, filter="tar")
                continue
            if not any(name.startswith(p) or p.startswith(name + "/") for p in ALLOWED_PREFIXES):
                raise SystemExit(f"installpkg: refusing {member.name}: outside cacherr's paths")
            if member.isdir() and Path("/", name).is_dir():
                continue
            tar.extract(member, "/", filter="tar")
            files.append(name)
        doinst = Path(scratch) / "install/doinst.sh"
        if doinst.exists():
            subprocess.run(["sh", str(doinst), "-install"], cwd="/", check=True)
    PKG_DB.mkdir(parents=True, exist_ok=True)
    (PKG_DB / full).write_text(f"PACKAGE NAME: {full}\nFILE LIST:\n" + "\n".join(files) + "\n")
    return files


def _installed(name_or_full: str) -> list[Path]:
    if not PKG_DB.is_dir():
        return []
    return [entry for entry in PKG_DB.iterdir()
            if entry.name == name_or_full or _package_name(entry.name) == name_or_full]


def _remove_files(entry: Path, keep: set[str] = frozenset()) -> None:
    names = entry.read_text().split("FILE LIST:\n", 1)[1].split()
    for name in sorted(names, reverse=True):
        path = Path("/", name)
        if name in keep:
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            with contextlib.suppress(OSError):  # not empty, or a mount point
                path.rmdir()
    entry.unlink()


def tool(sandbox: Path, name: str, argv: list[str]) -> int:
    _record(sandbox, name, argv)
    if name == "logger":
        tag, words = "", []
        args = iter(argv)
        for arg in args:
            if arg == "-t":
                tag = next(args, "")
            elif arg != "--":
                words.append(arg)
        lines = [" ".join(words)] if words else sys.stdin.read().splitlines()
        with (sandbox / "syslog").open("a") as handle:
            handle.writelines(f"{tag}: {line}\n" for line in lines)
        return 0
    if name == "notify":
        _record(sandbox, name, argv, "notify.jsonl")
        return 0
    if name == "update_cron":
        return 0
    if name in ("installpkg", "upgradepkg"):
        if (sandbox / "fail-upgradepkg").exists():
            print(f"{name}: failed (sandbox/fail-upgradepkg)", file=sys.stderr)
            return 1
        flags = {arg for arg in argv if arg.startswith("--")}
        if name == "installpkg":
            flags |= {"--install-new", "--reinstall"}
        for package in (Path(arg) for arg in argv if not arg.startswith("--")):
            full = package.name.removesuffix(".txz")
            installed = _installed(_package_name(full))
            if not installed and "--install-new" not in flags:
                print(f"upgradepkg: {full} is not installed", file=sys.stderr)
                return 1
            if any(entry.name == full for entry in installed) and "--reinstall" not in flags:
                print(f"upgradepkg: {full} is already installed")
                continue
            new_files = set(_install_package(package))
            for entry in installed:
                if entry.name != full:
                    _remove_files(entry, keep=new_files)
            print(f"upgradepkg: installed {full}")
        return 0
    if name == "removepkg":
        for package in argv:
            for entry in _installed(package):
                _remove_files(entry)
        return 0
    raise SystemExit(f"unknown tool {name}")


def main(argv: list[str]) -> int:
    sandbox, command, args = Path(argv[0]), argv[1], argv[2:]
    if command == "tool":
        return tool(sandbox, args[0], args[1:])
    _enter(sandbox)
    if command == "install":
        result = {"ok": plugin_install(sandbox, Path(args[0]))}
    elif command == "boot":
        result = {"ok": True, "plugins": boot(sandbox)}
    elif command == "remove":
        result = {"ok": plugin_remove(sandbox, args[0])}
    elif command == "event":
        result = {"ok": True, **emhttp_event(sandbox, args[0])}
    elif command == "shell":
        done = subprocess.run(["/bin/bash", "-c", args[0]], capture_output=True, text=True,
                              env=_script_env(sandbox), stdin=subprocess.DEVNULL, cwd="/",
                              timeout=SCRIPT_TIMEOUT_SECONDS)
        result = {"ok": done.returncode == 0, "code": done.returncode,
                  "stdout": done.stdout, "stderr": done.stderr}
    else:
        raise SystemExit(f"unknown command {command}")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
