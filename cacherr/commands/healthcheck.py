"""`cacherr healthcheck`: exit 0 if the local service's `/health` is not failing, else 1.

For Docker's HEALTHCHECK, where 2 is reserved: the exit code is 0 or 1 whatever happens.
The address comes from `CACHERR_LISTEN` (host:port), else from the running service's
runtime file in its state directory, else from the rules file's `server.listen`. A broken
rules file must not make the check fail, so the state directory is looked for in the
loaded rules, then in a plain YAML read of `state_dir`, then in the default locations.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from cacherr.commands import EXIT_FAILURE, EXIT_OK

TIMEOUT_SECONDS = 5.0
DEFAULT_PORT = 5445
DEFAULT_STATE_DIRS = (Path("/config/state"), Path("/boot/config/plugins/cacherr/state"))


def run(args) -> int:
    try:
        healthy, message = check(getattr(args, "config", None), os.environ)
    except BaseException as error:  # the exit code must be 0 or 1
        healthy, message = False, f"healthcheck failed: {error!r}"
    with contextlib.suppress(BaseException):
        print(f"cacherr healthcheck: {message}", file=sys.stderr)
    return EXIT_OK if healthy else EXIT_FAILURE


def check(explicit_config: str | None, environ: Mapping[str, str]) -> tuple[bool, str]:
    """Given `-c RULES` and the environment, return (healthy, what was found)."""
    try:
        origin = find_origin(explicit_config, environ)
    except BadListen as error:
        return False, str(error)
    url = f"{origin}/health"
    # No proxy: a container's HTTP_PROXY must not swallow a request to loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            status_code = response.status
            body = response.read(1024 * 1024)
    except urllib.error.HTTPError as error:
        return False, f"{url} answered HTTP {error.code}"
    except (OSError, ValueError) as error:
        return False, f"{url}: {getattr(error, 'reason', error)}"
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        return False, f"{url} did not answer cacherr's health JSON"
    if status_code != 200 or status not in ("ok", "degraded"):
        return False, f"{url}: HTTP {status_code}, status {status!r}"
    return True, f"{url}: {status}"


def find_origin(explicit_config: str | None, environ: Mapping[str, str]) -> str:
    """Return the http:// origin of the local service (best guess); raise BadListen if
    CACHERR_LISTEN is set but unusable."""
    listen = environ.get("CACHERR_LISTEN", "").strip()
    if listen:
        try:
            return _origin(*_split_listen(listen))
        except ValueError:
            raise BadListen(f"CACHERR_LISTEN={listen[:80]!r} is not HOST:PORT (e.g. "
                            "127.0.0.1:5445, or :5445)") from None
    rules_file, rules, document = _load_rules(explicit_config, environ)
    for state_dir in _state_dir_candidates(rules_file, rules, document):
        runtime = _read_runtime(state_dir)
        if runtime is not None:
            return _origin(runtime[0], runtime[1])
    if rules is not None:
        return _origin(rules.server.listen_host, rules.server.listen_port)
    server = document.get("server") if isinstance(document, dict) else None
    if isinstance(server, dict) and isinstance(server.get("listen"), str):
        try:
            return _origin(*_split_listen(server["listen"]))
        except ValueError:
            pass
    return _origin("127.0.0.1", DEFAULT_PORT)


class BadListen(ValueError):
    """CACHERR_LISTEN is set but is not HOST:PORT."""


def _split_listen(listen: str) -> tuple[str, int]:
    """Given host:port (or :port, or a bare port), return (host, port); raise ValueError."""
    host, separator, port = listen.rpartition(":")
    if not separator:
        host, port = "", listen
    number = int(port)
    if not 0 < number < 65536 or not all(c.isalnum() or c in ".-:" for c in host.strip("[]")):
        raise ValueError(listen)
    return host.strip("[]"), number


def _origin(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{int(port)}" if ":" in host else f"http://{host}:{int(port)}"


def _load_rules(explicit_config: str | None, environ: Mapping[str, str]):
    """Return (rules file path, Config, plain YAML document), each None if unknown; never raises.

    Loaded offline: the check must be quick and must not depend on this host's mounts.
    """
    try:
        from cacherr.config import loader

        path = Path(loader.discover(explicit_config, environ))
    except Exception:
        return None, None, None
    try:
        return path, loader.load(path, environ, offline=True), None
    except Exception:  # a broken rules file must not fail the check
        pass
    try:
        from cacherr.config.yamlpos import parse

        # Bounded like every read of a rules file: a broken or hostile one costs nothing.
        document, _, _ = parse(loader.read_text(path))
        return path, None, document
    except Exception:
        return path, None, None


def _state_dir_candidates(rules_file: Path | None, rules, document) -> Iterator[Path]:
    if rules is not None:
        yield Path(rules.state_dir)
    if isinstance(document, dict) and isinstance(document.get("state_dir"), str):
        yield Path(document["state_dir"])
    if rules_file is not None:
        # The loader's default: a `state` folder next to the rules file.
        yield rules_file.absolute().parent / "state"
    yield from DEFAULT_STATE_DIRS


def _read_runtime(state_dir: Path) -> tuple[str, int] | None:
    try:
        content = json.loads((state_dir / "runtime.json").read_text(encoding="utf-8"))
        return str(content["host"]), int(content["port"])
    except Exception:
        return None
