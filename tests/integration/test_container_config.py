"""In a container, only /mnt means the same thing to the host: `init` refers to $PLEX_URL
(never 127.0.0.1:32400, the container itself on a bridge network), the default mover list
goes under /mnt, and `doctor` warns about one the host cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cacherr.cli import main
from cacherr.config import loader
from cacherr.doctor.container_checks import check_container
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario

RULES = """\
version: 1
plex: {url: "http://192.168.1.10:32400", token: t}
paths: [{plex: /data/media, host: /mnt/user/media}]
cache:
  layout: union
  union: {view: /mnt/user, fast: /mnt/cache, slow: ["/mnt/disk*"]}
rules: [{name: r, select: ondeck}]
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("CACHERR_CONFIG", "PLEX_URL", "PLEX_TOKEN", "CACHERR_IN_CONTAINER", "container"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _load(path: Path, text: str, **environ: str):
    path.write_text(text)
    return loader.load(path, environ, offline=True)


def test_init_in_a_container_refers_to_plex_url_and_never_to_the_container_s_loopback(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CACHERR_IN_CONTAINER", "1")
    target = tmp_path / "rules.yaml"
    assert main(["-c", str(target), "init"]) == 0
    text = target.read_text()
    assert 'url: "${PLEX_URL}"' in text and "127.0.0.1" not in text
    assert "PLEX_URL is not set" not in text  # no token either: nothing was asked
    config = loader.load(target, {"PLEX_URL": "http://192.168.1.10:32400", "PLEX_TOKEN": "t"},
                         offline=True)
    assert config.plex.url == "http://192.168.1.10:32400"
    # state_dir on the pool, so the mover list is a path the host reads as it is.
    assert str(config.state_dir).startswith("/mnt/")
    assert str(config.cache.mover_exclude_file).startswith("/mnt/")
    assert config.dry_run is True


def test_init_in_a_container_asks_plex_at_plex_url_for_its_library_folders(
        monkeypatch, tmp_path):
    with FakePlex(Scenario.small_demo()) as fake:
        monkeypatch.setenv("CACHERR_IN_CONTAINER", "1")
        monkeypatch.setenv("PLEX_URL", fake.pms_url)
        monkeypatch.setenv("PLEX_TOKEN", fake.owner_token)
        target = tmp_path / "rules.yaml"
        assert main(["-c", str(target), "init"]) == 0
        text = target.read_text()
    assert 'url: "${PLEX_URL}"' in text and fake.pms_url not in text
    locations = {section.location for section in fake.scenario.sections}
    assert any(f"plex: {location}" in text for location in locations), text


def test_without_plex_url_a_container_s_init_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHERR_IN_CONTAINER", "1")
    monkeypatch.setenv("PLEX_TOKEN", "a-token")
    target = tmp_path / "rules.yaml"
    assert main(["-c", str(target), "init"]) == 0
    assert "PLEX_URL is not set" in target.read_text()


def test_in_a_container_the_default_mover_list_leaves_config_for_the_pool(monkeypatch,
                                                                          tmp_path):
    rules = tmp_path / "rules.yaml"
    state = "state_dir: /config/state\n"
    assert _load(rules, RULES + state).cache.mover_exclude_file == \
        Path("/config/state/mover-exclude.txt")  # on the host: beside the state
    monkeypatch.setenv("CACHERR_IN_CONTAINER", "1")
    assert _load(rules, RULES + state).cache.mover_exclude_file == \
        Path("/mnt/cache/appdata/cacherr/mover-exclude.txt")
    assert _load(rules, RULES + "state_dir: /mnt/cache/appdata/cacherr\n").cache \
        .mover_exclude_file == Path("/mnt/cache/appdata/cacherr/mover-exclude.txt")
    chosen = RULES.replace("  union:", "  mover_exclude_file: /config/mine.txt\n  union:")
    assert _load(rules, chosen + state).cache.mover_exclude_file == Path("/config/mine.txt")


def test_doctor_warns_in_a_container_when_the_mover_list_is_not_under_mnt(tmp_path):
    rules = tmp_path / "rules.yaml"
    chosen = RULES.replace("  union:", "  mover_exclude_file: /config/state/list.txt\n  union:")
    findings = check_container(_load(rules, chosen), container=True)
    warnings = [f for f in findings if f.level == "warning"]
    assert len(warnings) == 1 and "/config/state/list.txt is not under /mnt" in warnings[0].message
    assert "/mnt/cache/appdata/cacherr/mover-exclude.txt" in warnings[0].fix
    good = check_container(_load(rules, RULES + "state_dir: /mnt/cache/appdata/x\n"),
                           container=True)
    assert [f.level for f in good] == ["ok"]
    assert check_container(_load(rules, chosen), container=False) == []
