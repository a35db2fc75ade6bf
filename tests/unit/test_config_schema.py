"""The schema names every key of SPEC §3, each with a description, an example and, when
optional, a default; and the loader fills defaults in memory."""

import json
from pathlib import Path

import jsonschema

from cacherr.config import loader
from cacherr.config.schema import SCHEMA, schema_json


def _walk(schema, path=()):
    """Yield (dotted path, key schema, required) for every named key."""
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    for key, sub in properties.items():
        yield ".".join(path + (key,)), sub, key in required
        yield from _walk(sub, path + (key,))
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _walk(items, path + ("[]",))


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert json.loads(schema_json()) == SCHEMA


def test_every_key_has_a_description_and_an_example():
    missing = [path for path, sub, _ in _walk(SCHEMA)
               if not sub.get("description") or not sub.get("examples")]
    assert missing == []


def test_every_optional_key_states_its_default():
    missing = [path for path, sub, required in _walk(SCHEMA)
               if not required and "default" not in sub
               and not path.startswith("rules.[].keep.")
               and path not in {"rules.[].list"}]
    assert missing == []


def test_every_key_of_the_spec_is_in_the_schema():
    names = {path for path, _, _ in _walk(SCHEMA)}
    spec_keys = {
        "version", "plex.url", "plex.token", "plex.watchlist_rss", "plex.user_tokens", "paths",
        "paths.[].plex", "paths.[].host", "cache.layout", "cache.original", "cache.union.view",
        "cache.union.fast", "cache.union.slow", "cache.symlink.dir", "cache.symlink.plex_dir",
        "cache.max_size", "cache.min_free", "cache.sidecars", "cache.verify",
        "cache.transfers.to_cache", "cache.transfers.to_slow", "cache.mover_exclude_file",
        "cache.defer_while_playing", "cache.bandwidth", "users.include", "users.exclude",
        "users.inactive_after", "rules.[].name", "rules.[].select", "rules.[].within",
        "rules.[].episodes_ahead", "rules.[].episodes", "rules.[].keep.while",
        "rules.[].keep.min", "rules.[].keep.for", "rules.[].keep.until", "rules.[].keep.grace",
        "rules.[].priority", "rules.[].list", "rules.[].limit", "rules.[].when",
        "rules.[].label", "rules.[].paths", "rules.[].users", "rules.[].libraries",
        "rules.[].versions", "rules.[].max_file_size", "trakt.client_id", "schedule.every",
        "schedule.sessions_every", "notify.urls", "notify.events", "server.listen",
        "state_dir", "dry_run", "source_failure_grace",
    }
    assert spec_keys - names == set()


def test_defaults_are_applied_in_memory_only(tmp_path):
    rules = tmp_path / "rules.yaml"
    text = ("version: 1\nplex: {url: 'http://127.0.0.1:32400/', token: t}\n"
            "paths: [{plex: /data/, host: /srv/data}]\n"
            "cache: {layout: symlink, symlink: {dir: /srv/ssd, plex_dir: /ssd/}}\n"
            "rules: [{name: r, select: ondeck}]\n")
    rules.write_text(text)
    config = loader.load(rules, {}, offline=True)
    assert rules.read_text() == text
    assert config.plex.url == "http://127.0.0.1:32400" and config.plex.timeout_seconds == 30
    assert config.paths[0].plex == "/data" and config.cache.symlink.plex_dir == "/ssd"
    assert config.cache.original == "backup"  # the symlink layout's default
    assert config.cache.max_size.percent == 80 and config.cache.min_free.percent == 10
    assert (config.cache.sidecars, config.cache.verify) == ("subtitles", "size")
    assert config.state_dir == tmp_path / "state"
    assert config.cache.mover_exclude_file == tmp_path / "state" / "mover-exclude.txt"
    rule = config.rules[0]
    assert rule.keep.while_selected and rule.keep.min_seconds == 0 and rule.priority == 50
    assert config.users.include is None and config.notify.urls == ()
    assert config.host.mover_pid_file == Path("/var/run/mover.pid")


def test_the_union_layout_defaults_to_shadow_and_expands_slow_globs(tmp_path):
    for disk in ("disk1", "disk2", "disk10"):
        (tmp_path / disk).mkdir()
    (tmp_path / "diskette.txt").write_text("not a folder")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nplex: {url: 'http://h:1', token: t}\npaths: [{plex: /d, host: /d}]\n"
        f"cache: {{layout: union, union: {{view: /v, fast: /f, slow: ['{tmp_path}/disk*']}}}}\n"
        "rules: []\n")
    config = loader.load(rules, {}, offline=True)
    assert config.cache.original == "shadow"
    assert config.cache.union.slow == (tmp_path / "disk*",)
    online = loader.build(loader.check_text(rules.read_text(), {}, offline=True)[0], rules)
    assert online.cache.union.slow == tuple(tmp_path / d for d in ("disk1", "disk10", "disk2"))
