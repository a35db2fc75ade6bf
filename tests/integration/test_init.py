"""`cacherr init`: starter rules, conversion of Cacherr .env and PlexCache settings files,
paths proposed from a (fake) Plex on loopback, and never overwriting a file."""

from __future__ import annotations

import json
import re
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cacherr.cli import main
from cacherr.commands import init as init_command
from cacherr.config import dotenv
from cacherr.config.loader import check_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrate"
ENV_SECRETS = {"PLEX_TOKEN": "Xy7kP2mQ9vLr4sT8wZ1a", "TRAKT_CLIENT_ID": "4f1c0e9a7b2d",
               "WEBHOOK_URL": "https://discord.com/api/webhooks/123456789012345678/"
                              "AbCdEf-GhIjKl_MnOpQrStUvWxYz"}
SECTIONS = """<?xml version="1.0" encoding="UTF-8"?>
<MediaContainer size="2" allowSync="0" title1="Plex Library">
  <Directory allowSync="1" art="/:/resources/movie-fanart.jpg" key="1" type="movie"
             title="Movies" agent="tv.plex.agents.movie" scanner="Plex Movie" language="en-US">
    <Location id="1" path="{movies}" />
  </Directory>
  <Directory allowSync="1" key="2" type="show" title="TV Shows"
             agent="tv.plex.agents.series" scanner="Plex TV Series" language="en-US">
    <Location id="2" path="/media/tv" />
    <Location id="3" path="/media/tv-kids/" />
  </Directory>
</MediaContainer>
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("CACHERR_CONFIG", "PLEX_URL", "PLEX_TOKEN", "TRAKT_CLIENT_ID", "WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


class FakePlex:
    """GET /library/sections with the right X-Plex-Token, on 127.0.0.1."""

    def __init__(self, token: str, movies_path: str):
        body = SECTIONS.format(movies=movies_path).encode()
        self.tokens_seen: list[str | None] = []
        seen = self.tokens_seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("X-Plex-Token"))
                if self.path != "/library/sections":
                    self.send_response(404)
                    self.end_headers()
                    return
                status = 200 if self.headers.get("X-Plex-Token") == token else 401
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                if status == 200:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_plex(tmp_path):
    movies = tmp_path / "movies-on-this-host"
    movies.mkdir()
    plex = FakePlex("plex-secret", str(movies))
    plex.movies = str(movies)
    yield plex
    plex.close()


def init(*args: str, capsys) -> tuple[int, str]:
    code = main(["-c", "rules.yaml", "init", *args])
    return code, capsys.readouterr().err


def load(path: Path, environ: dict | None = None) -> dict:
    """The document as cacherr reads it: with the .env beside it under the environment."""
    document, problems = check_text(path.read_text(),
                                    dotenv.environment(path, environ or {}), offline=True)
    assert problems == [], problems
    return document


def header(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[:lines.index("version: 1")])


def test_from_env_turns_a_cacherr_env_into_valid_rules_with_its_values(capsys):
    code, err = init("--from-env", str(FIXTURES / "cacherr.env"), capsys=capsys)
    assert code == 0, err
    rules = Path("rules.yaml")
    text = rules.read_text()
    assert 'token: "${PLEX_TOKEN}"' in text and "trakt:\n  client_id: \"${TRAKT_CLIENT_ID}\"" in text
    for secret in list(ENV_SECRETS.values()) + ["9d8e7f6a5b4c"]:
        assert secret not in text
    secrets = Path(".env")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert dotenv.read(secrets) == ENV_SECRETS
    assert f"wrote PLEX_TOKEN, TRAKT_CLIENT_ID, WEBHOOK_URL to {secrets.absolute()}" in err
    assert main(["-c", "rules.yaml", "validate", "--offline"]) == 0  # the .env is read
    capsys.readouterr()

    document = load(rules, ENV_SECRETS)
    assert document["dry_run"] is True
    assert document["plex"] == {"url": "http://192.168.1.20:32400",
                                "token": ENV_SECRETS["PLEX_TOKEN"]}
    assert document["paths"] == [{"plex": "/data", "host": "/mnt/user/media"},
                                 {"plex": "/anime", "host": "/mnt/user/anime"},
                                 {"plex": "/plexsource3", "host": "/mediasource3"}]
    assert re.search(r"- plex: /plexsource3  # CHECK: /mediasource3 was a path inside", text)
    cache = document["cache"]
    assert cache["layout"] == "union" and cache["original"] == "shadow"
    assert cache["union"] == {"view": "/mnt/user", "fast": "/mnt/cache", "slow": ["/mnt/disk*"]}
    assert cache["transfers"] == {"to_cache": 5, "to_slow": 2}
    assert cache["defer_while_playing"] == "any"
    assert document["users"] == {"include": "all", "inactive_after": "30d"}
    rules_by_name = {rule["name"]: rule for rule in document["rules"]}
    assert rules_by_name["continue-watching"] == {
        "name": "continue-watching", "select": "ondeck", "within": "99d", "episodes_ahead": 5,
        "keep": {"while": "selected", "min": "48h"}, "priority": 80}
    assert rules_by_name["now-playing"]["keep"] == {"until": "watched", "grace": "24h"}
    assert rules_by_name["watched-recently"]["when"] == "complete"
    assert rules_by_name["watchlists"]["episodes"] == 2
    assert rules_by_name["trakt-trending"]["list"] == "movies/trending"
    assert rules_by_name["trakt-trending"]["limit"] == 15
    assert document["trakt"]["client_id"] == ENV_SECRETS["TRAKT_CLIENT_ID"]
    assert document["schedule"] == {"sessions_every": "30s"}
    assert document["notify"]["urls"] == [ENV_SECRETS["WEBHOOK_URL"], "unraid://"]
    assert document["server"] == {"listen": "0.0.0.0:5445"}
    assert document["state_dir"] == "/mnt/cache/appdata/cacherr"
    assert "11 setting(s) not converted" in err


def test_the_generated_file_passes_validate_offline_with_the_env_set(capsys, monkeypatch):
    assert init("--from-env", str(FIXTURES / "cacherr.env"), capsys=capsys)[0] == 0
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert main(["-c", "rules.yaml", "validate", "--offline"]) == 0
    assert "valid (5 rules" in capsys.readouterr().err


# What the .env converter writes into the file: every other key must be in the header.
ENV_MAPPED = {
    "PLEX_URL", "PLEX_TOKEN", "PLEX_SOURCE", "REAL_SOURCE", "CACHE_DESTINATION",
    "ADDITIONAL_SOURCES", "ADDITIONAL_PLEX_SOURCES", "WEB_HOST", "NUMBER_EPISODES", "DAYS_TO_MONITOR", "WATCHLIST_TOGGLE",
    "WATCHLIST_EPISODES", "WATCHED_MOVE", "WATCHED_CACHE_EXPIRY", "USERS_TOGGLE",
    "EXIT_IF_ACTIVE_SESSION", "COPY_TO_CACHE", "USE_SYMLINKS_FOR_CACHE", "MOVE_WITH_SYMLINKS",
    "MAX_CONCURRENT_MOVES_CACHE", "MAX_CONCURRENT_MOVES_ARRAY", "REAL_TIME_WATCH_ENABLED",
    "REAL_TIME_WATCH_CHECK_INTERVAL", "REAL_TIME_WATCH_AUTO_CACHE_ON_WATCH",
    "REAL_TIME_WATCH_CACHE_ON_COMPLETE", "REAL_TIME_WATCH_REMOVE_FROM_CACHE_AFTER_HOURS",
    "REAL_TIME_WATCH_EXCLUDE_INACTIVE_USERS_DAYS", "TRAKT_ENABLED", "TRAKT_CLIENT_ID",
    "TRAKT_TRENDING_MOVIES_COUNT", "TEST_MODE", "PORT", "WEBHOOK_URL", "NOTIFICATION_TYPE",
}


def test_every_env_setting_is_either_converted_or_listed_at_the_top(capsys, tmp_path):
    source = tmp_path / "extra.env"
    source.write_text((FIXTURES / "cacherr.env").read_text()
                      + "SOME_FUTURE_SETTING=42\nexport QUOTED='a b # c'  # trailing\n")
    assert init("--from-env", str(source), capsys=capsys)[0] == 0
    top = header(Path("rules.yaml"))
    keys = re.findall(r"^(?:export\s+)?([A-Z_]+)=", source.read_text(), re.MULTILINE)
    assert len(keys) > 40
    for key in keys:
        assert key in ENV_MAPPED or re.search(rf"\b{key}\b", top), f"{key} was dropped silently"
    assert "SOME_FUTURE_SETTING = 42: not a Cacherr/PlexCacheUltra setting" in top
    assert "QUOTED = a b # c:" in top
    assert "TRAKT_CLIENT_SECRET = (hidden)" in top


def test_from_plexcache_converts_the_legacy_folder_lists_and_keeps_the_token(capsys):
    code, err = init("--from-plexcache", str(FIXTURES / "plexcache_settings.json"),
                     capsys=capsys)
    assert code == 0, err
    document = load(Path("rules.yaml"))
    assert document["plex"]["token"] == "Xy7kP2mQ9vLr4sT8wZ1a"
    assert "Xy7kP2mQ9vLr4sT8wZ1a" not in Path("rules.yaml").read_text()
    assert 'token: "${PLEX_TOKEN}"' in Path("rules.yaml").read_text()
    assert stat.S_IMODE(Path(".env").stat().st_mode) == 0o600
    assert document["paths"] == [
        {"plex": "/media/movies", "host": "/mnt/user/media/movies"},
        {"plex": "/media/anime", "host": "/mnt/user/media/anime"},
        {"plex": "/media/tvseries", "host": "/mnt/user/media/tv"}]
    assert document["cache"]["union"]["fast"] == "/mnt/cache"
    ondeck, watchlists = document["rules"]
    assert (ondeck["within"], ondeck["episodes_ahead"]) == ("99d", 5)
    assert watchlists == {"name": "watchlists", "select": "watchlist", "episodes": 1,
                          "keep": {"while": "selected"}, "priority": 50}
    top = header(Path("rules.yaml"))
    for key in ("firststart", "watchlist_cache_expiry", "watched_cache_expiry", "debug"):
        assert f"#   {key} = " in top
    assert re.search(r"valid_sections = 1, 4, 2: library ids: Plex was not reachable", top)
    assert "Plex at http://192.168.1.20:32400 was not reachable" in Path("rules.yaml").read_text()


def test_from_plexcache_r_converts_mappings_users_retention_and_limits(capsys):
    code, err = init("--from-plexcache", str(FIXTURES / "plexcache-r_settings.json"),
                     capsys=capsys)
    assert code == 0, err
    document = load(Path("rules.yaml"))
    assert document["plex"]["watchlist_rss"].startswith("https://rss.plex.tv/")
    assert "rss.plex.tv" not in Path("rules.yaml").read_text()
    assert dotenv.read(".env")["PLEX_WATCHLIST_RSS"] == document["plex"]["watchlist_rss"]
    assert document["paths"] == [{"plex": "/media/movies", "host": "/mnt/user/media/movies"},
                                 {"plex": "/media/tv", "host": "/mnt/user/media/tv"}]
    cache = document["cache"]
    assert cache["union"]["fast"] == "/mnt/nvme"
    assert (cache["max_size"], cache["min_free"], cache["original"]) == ("500GB", "50GB", "backup")
    assert cache["transfers"] == {"to_cache": 3, "to_slow": 1}
    assert document["users"] == {"include": "all", "exclude": ["kids"]}
    ondeck, watchlists = document["rules"]
    assert ondeck["keep"] == {"while": "selected", "min": "12h"}
    assert (ondeck["within"], ondeck["episodes_ahead"]) == ("183d", 4)
    assert watchlists["keep"] == {"for": "21d"} and watchlists["episodes"] == 3
    assert document["notify"]["urls"] == ["unraid://"]
    assert document["state_dir"] == "/mnt/nvme/appdata/cacherr"
    text = Path("rules.yaml").read_text()
    assert "alice-token-1" not in text and "kids-token-2" not in text
    top = header(Path("rules.yaml"))
    assert "path_mappings[2] Old Movies = /media/old/: disabled" in top
    assert "path_mappings[3] Remote NAS = /media/remote-nas/: not cacheable" in top
    assert "users[bob] = skip_watchlist: skipped for watchlist only" in top
    assert "dashboard_theme = dark: not a PlexCache setting cacherr knows" in top
    assert re.search(r"empty or zero, nothing to convert: .*cache_drive_size", top)


def test_a_plain_init_proposes_paths_from_plex_s_library_folders(capsys, monkeypatch, fake_plex):
    monkeypatch.setenv("PLEX_URL", fake_plex.url)
    monkeypatch.setenv("PLEX_TOKEN", "plex-secret")
    code, err = init(capsys=capsys)
    assert code == 0, err
    assert fake_plex.tokens_seen == ["plex-secret"]
    text = Path("rules.yaml").read_text()
    assert "plex-secret" not in text
    document = load(Path("rules.yaml"), {"PLEX_TOKEN": "plex-secret"})
    assert document["plex"]["url"] == fake_plex.url
    assert document["paths"] == [
        {"plex": fake_plex.movies, "host": fake_plex.movies},
        {"plex": "/media/tv", "host": "/mnt/user/media/tv"},
        {"plex": "/media/tv-kids", "host": "/mnt/user/media/tv-kids"}]
    assert "Plex library 'TV Shows': CHECK the host path" in text
    assert [rule["select"] for rule in document["rules"]] == ["ondeck", "playing", "watchlist"]
    assert document["dry_run"] is True


def test_plexcache_section_ids_become_library_names_when_plex_answers(capsys, tmp_path,
                                                                       fake_plex):
    settings = json.loads((FIXTURES / "plexcache-r_settings.json").read_text())
    settings["PLEX_URL"], settings["PLEX_TOKEN"] = fake_plex.url, "plex-secret"
    source = tmp_path / "settings.json"
    source.write_text(json.dumps(settings))
    assert init("--from-plexcache", str(source), capsys=capsys)[0] == 0
    document = load(Path("rules.yaml"))
    assert [rule["libraries"] for rule in document["rules"]] == [["Movies", "TV Shows"]] * 2
    text = Path("rules.yaml").read_text()
    assert "Plex library 'TV Shows' (/media/tv) is covered by /media/tv" in text
    # Folders no converted mapping covers are proposed after the converted ones.
    assert document["paths"][2:] == [
        {"plex": fake_plex.movies, "host": fake_plex.movies},
        {"plex": "/media/tv-kids", "host": "/mnt/user/media/tv-kids"}]
    assert "valid_sections = " not in header(Path("rules.yaml"))


def test_an_unreachable_plex_leaves_a_comment_and_an_example_path(capsys, monkeypatch):
    monkeypatch.setenv("PLEX_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PLEX_TOKEN", "t")
    code, err = init(capsys=capsys)
    assert code == 0, err
    text = Path("rules.yaml").read_text()
    assert "# Plex at http://127.0.0.1:9 was not reachable (ConnectionError)" in text
    document = load(Path("rules.yaml"), {"PLEX_TOKEN": "t"})
    assert document["paths"] == [{"plex": "/data/media", "host": "/mnt/user/media"}]
    assert "CHECK: an example" in text


def test_init_refuses_to_overwrite_an_existing_rules_file(capsys, monkeypatch):
    Path("rules.yaml").write_text("mine\n")
    code, err = init("--from-env", str(FIXTURES / "cacherr.env"), capsys=capsys)
    assert code == 2 and "rules.yaml exists; not overwriting it" in err
    assert Path("rules.yaml").read_text() == "mine\n"
    monkeypatch.setenv("CACHERR_CONFIG", "from-env.yaml")
    assert main(["init"]) == 0
    assert Path("from-env.yaml").exists()


@pytest.mark.parametrize("args, message", [
    (["--from-env", "missing.env"], "cannot read missing.env"),
    (["--from-plexcache", "bad.json"], "is not JSON"),
    (["--from-env", "a", "--from-plexcache", "b"], "not both"),
])
def test_unusable_inputs_exit_2_and_write_nothing(capsys, args, message):
    Path("bad.json").write_text("{not json")
    code, err = init(*args, capsys=capsys)
    assert code == 2 and message in err
    assert not Path("rules.yaml").exists()


def test_literal_values_keep_dollar_signs_instead_of_becoming_references(capsys, tmp_path):
    source = tmp_path / "settings.json"
    source.write_text(json.dumps({"PLEX_URL": "http://127.0.0.1:9", "PLEX_TOKEN": "ab${HOME}cd",
                                  "plex_source": "/data", "real_source": "/mnt/user/data",
                                  "cache_dir": "/mnt/cache"}))
    assert init("--from-plexcache", str(source), capsys=capsys)[0] == 0
    assert load(Path("rules.yaml"), {"HOME": "/root"})["plex"]["token"] == "ab${HOME}cd"


def test_init_says_where_it_wrote_what_it_guessed_and_how_to_find_the_token(capsys):
    code, err = init(capsys=capsys)
    assert code == 0, err
    target = Path("rules.yaml").absolute()
    assert f"wrote {target}:" in err
    assert "CHECK plex.url: no Plex address was given, so the file says http://127.0.0.1:32400" in err
    assert "X-Plex-Token=" in err and "support.plex.tv" in err and str(Path(".env").absolute()) in err
    text = Path("rules.yaml").read_text()
    assert "url: http://127.0.0.1:32400  # CHECK: a guess" in text
    assert "View XML" in text  # the token line says where to find it
    assert not Path(".env").exists()  # no secret was given: nothing to keep


def test_init_warns_when_an_installed_service_reads_its_rules_elsewhere(capsys, monkeypatch,
                                                                         tmp_path):
    plugin = tmp_path / "boot" / "plugins" / "cacherr"
    plugin.mkdir(parents=True)
    monkeypatch.setattr(init_command, "SERVICE_LOCATIONS", (
        (plugin, plugin / "rules.yaml", "the Unraid plugin"),
        (tmp_path / "no-container", Path("/config/rules.yaml"), "the container")))
    code, err = init(capsys=capsys)
    assert code == 0, err
    assert f"WARNING: the Unraid plugin reads {plugin / 'rules.yaml'}, not " \
           f"{Path('rules.yaml').absolute()}" in err
    assert "the container" not in err
    capsys.readouterr()
    assert main(["-c", str(plugin / "rules.yaml"), "init"]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_unconverted_secrets_never_reach_the_rules_file_and_an_existing_env_is_kept(
        capsys, tmp_path):
    source = tmp_path / "old.env"
    source.write_text("PLEX_URL=http://10.0.0.2:32400\nPLEX_TOKEN=tok-ABCDEF-0123456789\n"
                      "TRAKT_ENABLED=false\nTRAKT_CLIENT_ID=client-0123456789abcdef\n"
                      "DISCORD_WEBHOOK=https://discord.com/api/webhooks/1/hook-path-secret\n"
                      "MY_API_THING=Zq9Zq9Zq9Zq9Zq9Zq9\nCOLOUR=blue\n")
    Path(".env").write_text("PLEX_TOKEN=already-here-0123456789\n")
    Path(".env").chmod(0o600)
    code, err = init("--from-env", str(source), capsys=capsys)
    assert code == 0, err
    text = Path("rules.yaml").read_text()
    for secret in ("tok-ABCDEF-0123456789", "client-0123456789abcdef", "hook-path-secret",
                   "Zq9Zq9Zq9Zq9Zq9Zq9", "api/webhooks"):
        assert secret not in text and secret not in err
    assert "COLOUR = blue" in text  # harmless values are still listed
    assert "DISCORD_WEBHOOK = https://discord.com/...:" in text
    assert dotenv.read(".env") == {"PLEX_TOKEN": "already-here-0123456789"}
    assert "already sets PLEX_TOKEN to another value; kept it" in err
