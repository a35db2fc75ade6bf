"""An Unraid server for tests: Unraid's real plugin manager and Slackware's real package tools
(../shared/vendor, see each ORIGIN.md) running as root over a throw-away root file system.

One controller process per box, started with `unshare --mount --net`. In its private mount
namespace it lays out the box (`ROOT`):

  /            an overlay over the machine's / whose upper layer is a tmpfs: the box's RAM.
               Everything written to / vanishes at `reboot()` and with the namespace.
  /tmp, /run   tmpfs; /dev a tmpfs with the few device nodes bound in, and /dev/log: the
               box's system log, a socket the controller records (`syslog()`).
  /boot        the flash drive: a host folder (`flash`) that survives reboots.
  /mnt/cache   the pool: a host folder (`pool`).
  /observe     a host folder the stand-in Python runtime logs its calls to (`calls()`).

and installs Unraid's pieces at their places (`plugin`, `emhttp_event`, `update_cron`, the
dynamix includes and `notify`, /sbin/installpkg|upgradepkg|removepkg, PHP with
short_open_tag=On, /etc/unraid-version). In its private network namespace only loopback
exists; the controller serves a host folder over HTTP on 127.0.0.1 (the plugin's download
site; `set_offline` closes it). Commands run chrooted into the box.

Host side: `UnraidBox(workdir, serve_dir)`, which talks to the controller over a pipe: one
JSON request per line, one JSON answer per line. `port` 0 picks a free one; any port is
free in the box's own network, so a test can build URLs before the box exists.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor"
BOX_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
CALL_LOG = "/observe/python-calls.jsonl"  # as the box sees it
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
REPLACED = ("/tmp", "/run", "/dev", "/boot", "/mnt/cache", "/observe")
# Shipped as symlinks; a copy of the vendor folder may hold them as files naming the target.
VENDOR_SYMLINKS = {
    "usr/local/sbin/plugin": "/usr/local/emhttp/plugins/dynamix.plugin.manager/scripts/plugin",
    "usr/local/emhttp/webGui": "plugins/dynamix",
}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


# -- host side ------------------------------------------------------------------------------


class UnraidBox:
    """A fake Unraid server made of the real tools; `close()` leaves nothing behind."""

    def __init__(self, workdir: Path, serve_dir: Path, port: int = 0,
                 unraid_version: str = "7.2.1"):
        self.workdir = Path(workdir)
        self.flash = self.workdir / "flash"
        self.pool = self.workdir / "pool"
        self.observe = self.workdir / "observe"
        for folder in (self.flash, self.pool, self.observe, self.workdir / "ram",
                       self.workdir / "root"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.flash / "config/plugins").mkdir(parents=True, exist_ok=True)
        config = {"workdir": str(self.workdir), "serve_dir": str(serve_dir), "port": port,
                  "vendor": str(VENDOR), "unraid_version": unraid_version,
                  "keep_visible": _python_folders()}
        self._log = (self.workdir / "controller.log").open("w")
        self._process = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--",
             sys.executable, str(Path(__file__).resolve()), "controller", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._namespace = None
        hello = self._answer(60)
        self._namespace = os.readlink(f"/proc/{self._process.pid}/ns/mnt")
        self.port, self.service_port = hello["port"], hello["service_port"]

    # talking to the controller
    def _answer(self, timeout_seconds: float) -> dict:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_seconds)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"the box's controller did not answer:\n{self.controller_log()}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"box: {answer['error']}\n{self.controller_log()}")
        return answer

    def _call(self, op: str, timeout_seconds: float = 60, **arguments) -> dict:
        self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self._process.stdin.flush()
        return self._answer(timeout_seconds + 30)

    def controller_log(self) -> str:
        self._log.flush()
        return (self.workdir / "controller.log").read_text(errors="replace")

    # doing things in the box
    def run(self, command: str | list[str], timeout_seconds: float = 300) -> Result:
        """Run a command (a list, or a bash script) as root in the box; wait for it."""
        argv = command if isinstance(command, list) else ["/bin/bash", "-c", command]
        answer = self._call("run", timeout_seconds, argv=argv, timeout=timeout_seconds)
        return Result(answer["code"], answer["stdout"], answer["stderr"])

    def plugin(self, *arguments: str) -> Result:
        return self.run(["plugin", *arguments])

    def event(self, name: str) -> Result:
        """What emhttpd does at an array event: run emhttp_event and wait for it."""
        return self.run(["emhttp_event", name])

    def write(self, path: str, text: str) -> None:
        self._call("write", path=path, text=text)

    def read(self, path: str) -> str | None:
        return self._call("read", path=path)["text"]

    def set_array(self, started: bool | None) -> None:
        """emhttpd's var.ini (None: emhttpd has not run yet, as early at boot)."""
        if started is None:
            self.run(["rm", "-f", "/var/local/emhttp/var.ini"])
        else:
            state = "Started" if started else "Stopped"
            self.write("/var/local/emhttp/var.ini", f'version="7.2.1"\nfsState="{state}"\n'
                       f'mdState="{state.upper()}"\n')

    def set_offline(self, offline: bool) -> None:
        """Close (or reopen) the download site: every download fails at once."""
        self._call("offline", offline=offline)

    def reboot(self, ram_mib: int = 1024) -> None:
        """Power-cycle: every process and everything in RAM is gone; flash and pool stay."""
        self._call("reboot", ram_mib=ram_mib)

    def http_get(self, url: str) -> tuple[int, str]:
        """GET from inside the box's network (0: nothing answered)."""
        answer = self._call("http_get", url=url)
        return answer["status"], answer["body"]

    # looking at the box
    def syslog(self) -> list[tuple[int, str]]:
        """(time_ns received, text) of each message sent to /dev/log, in order."""
        return [tuple(entry) for entry in self._call("syslog")["lines"]]

    def syslog_text(self) -> str:
        return "\n".join(text for _, text in self.syslog())

    def ram_files(self) -> list[tuple[str, str]]:
        """(path, kind d|f|l) of everything written to the box's / since the last boot."""
        return [tuple(entry) for entry in self._call("ram_files")["files"]]

    def processes(self) -> list[dict]:
        """{"pid", "argv"} of every process running in the box."""
        return self._call("processes")["processes"]

    def calls(self) -> list[dict]:
        """The stand-in runtime's calls: {"pid", "argv", "t", "services"} in order."""
        log = self.observe / Path(CALL_LOG).name
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line]

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(Exception):
                self._call("shutdown", timeout_seconds=30)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        # Anything still in the box's mount namespace (the controller was killed?) goes too.
        if self._namespace:
            for pid in _pids():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/ns/mnt") == self._namespace:
                        os.kill(pid, signal.SIGKILL)
        self._log.close()


def _python_folders() -> list[str]:
    """The folders the stand-in runtime's interpreter needs (the test venv and its base)."""
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                                os.path.dirname(os.path.realpath(sys.executable)))})


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


# -- controller side (in the namespaces) ---------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class Controller:
    def __init__(self, config: dict):
        self.workdir = Path(config["workdir"])
        self.serve_dir = config["serve_dir"]
        self.vendor = Path(config["vendor"])
        self.unraid_version = config["unraid_version"]
        self.keep_visible = config["keep_visible"]
        self.ram = self.workdir / "ram"
        self.root = self.workdir / "root"
        self.syslog_lines: list[tuple[int, str]] = []
        self._syslog_socket: socket.socket | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = config["port"]

    # mounts
    @staticmethod
    def _mount(*arguments: str) -> None:
        subprocess.run(["mount", *arguments], check=True, capture_output=True)

    def boot(self, ram_mib: int = 1024) -> None:
        root = self.root
        self._mount("-t", "tmpfs", "-o", f"size={ram_mib}m", "ram", str(self.ram))
        for folder in ("upper", "work"):
            (self.ram / folder).mkdir()
        self._mount("-t", "overlay", "box", "-o", f"lowerdir=/,upperdir={self.ram}/upper,"
                    f"workdir={self.ram}/work", str(root))
        self._mount("-t", "proc", "proc", str(root / "proc"))
        for folder in ("tmp", "run", "dev"):
            self._mount("-t", "tmpfs", "-o", "mode=1777" if folder == "tmp" else "mode=755",
                        folder, str(root / folder))
        for device in DEVICES:
            (root / "dev" / device).touch()
            self._mount("--bind", f"/dev/{device}", str(root / "dev" / device))
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            (root / "dev" / name).symlink_to(target)
        (root / "dev/shm").mkdir()
        for source, target in ((self.workdir / "flash", "boot"), (self.workdir / "pool", "mnt/cache"),
                               (self.workdir / "observe", "observe")):
            (root / target).mkdir(parents=True, exist_ok=True)
            self._mount("--bind", str(source), str(root / target))
        for folder in self.keep_visible:
            if any(folder == top or folder.startswith(top + "/") for top in REPLACED):
                (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
                self._mount("--bind", folder, str(root / folder.lstrip("/")))
        self._start_syslog()
        self._install_unraid()

    def halt(self) -> None:
        """Kill everything in the box and unmount it (the pool and flash folders stay)."""
        self._kill_box_processes()
        if self._syslog_socket:
            self._syslog_socket.close()
            self._syslog_socket = None
        subprocess.run(["umount", "-R", "-l", str(self.root)], capture_output=True)
        subprocess.run(["umount", "-l", str(self.ram)], capture_output=True)

    def _box_pids(self) -> list[int]:
        found = []
        for pid in _pids():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/root") == str(self.root):
                    found.append(pid)
        return found

    def _kill_box_processes(self) -> None:
        deadline = time.monotonic() + 30
        while (pids := self._box_pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    # the system log
    def _start_syslog(self) -> None:
        path = self.root / "dev/log"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        path.chmod(0o666)
        self._syslog_socket = sock
        threading.Thread(target=self._read_syslog, args=(sock,), daemon=True).start()

    def _read_syslog(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            self.syslog_lines.append((time.time_ns(), data.decode(errors="replace")))

    # Unraid's pieces
    def _install_unraid(self) -> None:
        root = self.root
        for folder in ("boot/config/plugins", "var/log/plugins", "tmp/plugins",
                       "tmp/notifications/unread", "tmp/notifications/archive",
                       "usr/local/emhttp", "usr/local/sbin", "var/local/emhttp"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "etc/unraid-version").write_text(f'version="{self.unraid_version}"\n')
        for conf_d in (root / "etc/php").glob("*/cli/conf.d"):
            (conf_d / "99-unraid.ini").write_text("short_open_tag=On\n")
        webgui = self.vendor / "unraid-webgui"
        shutil.copytree(webgui / "emhttp", root / "usr/local/emhttp", symlinks=True,
                        dirs_exist_ok=True)
        for name in ("emhttp_event", "update_cron"):
            shutil.copy2(webgui / "sbin" / name, root / "usr/local/sbin" / name)
        for name, target in VENDOR_SYMLINKS.items():
            link = root / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        for tool in ("installpkg", "upgradepkg", "removepkg"):
            shutil.copyfile(self.vendor / "slackware-pkgtools" / tool, root / "sbin" / tool)
            (root / "sbin" / tool).chmod(0o755)

    # the download site
    def serve(self, online: bool) -> None:
        if online and self._server is None:
            handler = functools.partial(_QuietHandler, directory=self.serve_dir)
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        elif not online and self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # requests
    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "run":
            return self._run(request["argv"], request["timeout"])
        if op == "write":
            path = self.root / request["path"].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(request["text"])
            return {}
        if op == "read":
            path = self.root / request["path"].lstrip("/")
            return {"text": path.read_text(errors="replace") if path.is_file() else None}
        if op == "offline":
            self.serve(not request["offline"])
            return {}
        if op == "reboot":
            self.halt()
            self.boot(request["ram_mib"])
            return {}
        if op == "syslog":
            return {"lines": list(self.syslog_lines)}
        if op == "ram_files":
            return {"files": self._ram_files()}
        if op == "processes":
            return {"processes": [{"pid": pid, "argv": _cmdline(pid)} for pid in self._box_pids()]}
        if op == "http_get":
            try:
                with urllib.request.urlopen(request["url"], timeout=10) as response:
                    return {"status": response.status, "body": response.read().decode()}
            except OSError as error:
                return {"status": getattr(error, "code", 0), "body": str(error)}
        raise ValueError(f"unknown op {op!r}")

    def _run(self, argv: list[str], timeout_seconds: float) -> dict:
        environment = {"PATH": BOX_PATH, "HOME": "/root", "LANG": "C", "USER": "root"}
        try:
            done = subprocess.run(["chroot", str(self.root), *argv], capture_output=True,
                                  stdin=subprocess.DEVNULL, env=environment, cwd="/",
                                  timeout=timeout_seconds)
        except subprocess.TimeoutExpired as expired:
            # Something the command started kept its output open, or it hung.
            return {"code": 124, "stdout": (expired.stdout or b"").decode(errors="replace"),
                    "stderr": f"timed out after {timeout_seconds}s"}
        return {"code": done.returncode, "stdout": done.stdout.decode(errors="replace"),
                "stderr": done.stderr.decode(errors="replace")}

    def _ram_files(self) -> list[tuple[str, str]]:
        upper = self.ram / "upper"
        found = []
        for folder, dirnames, filenames in os.walk(upper):
            base = Path(folder)
            for name in dirnames + filenames:
                path = base / name
                status = path.lstat()
                if path.is_symlink():
                    kind = "l"
                elif path.is_dir():
                    kind = "d"
                elif status.st_rdev == 0 and not path.is_file():
                    continue  # an overlay whiteout: a deletion of a file of the machine's /
                else:
                    kind = "f"
                found.append(("/" + str(path.relative_to(upper)), kind))
        return sorted(found)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def controller_main(config: dict) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    controller = Controller(config)
    controller.serve(True)
    with socket.socket() as probe:  # a port for the service (nothing else binds in this net)
        probe.bind(("127.0.0.1", 0))
        service_port = probe.getsockname()[1]
    try:
        controller.boot()
        print(json.dumps({"port": controller.port, "service_port": service_port}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "shutdown":
                break
            try:
                answer = controller.handle(request)
            except Exception as error:  # report it to the test, keep the box running
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
    finally:
        controller.halt()
        controller.serve(False)
    print(json.dumps({}), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["controller"]:
        sys.exit(controller_main(json.loads(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} controller CONFIG_JSON")
