"""A scenario-driven fake of Plex Media Server, plex.tv, Discover, the metadata provider,
the friends' watchlist RSS feed and Trakt, on loopback, for the real plexapi.

Each service listens on its own port (so that paths mean what they mean on the real
host); all share one `Scenario` and one lock. Use it as a context manager:

    with FakePlex(Scenario.small_demo()) as fake:
        env = fake.env()   # CACHERR_PLEXTV_URL etc.; fake.pms_url, fake.owner_token

Control (Python methods, or POST /_fakeplex/<method> with a JSON object of arguments on
any of the ports): start_session, stop_session, mark_watched, set_progress,
watchlist_add, watchlist_remove, fail, hang, clear_faults, release_hangs, and
`requests` / `count()` to count what clients asked. Session and library changes are also
pushed on the PMS alert stream (`fake.alerts`, see fakealerts.py).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

from cacherr.testing.fake_pms import Fault, Node, QuietServer, RecordedRequest, handler_for
from cacherr.testing.fakealerts import AlertHub
from cacherr.testing.scenarios import Episode, Movie, Scenario, Season, Show

SERVICES = ("pms", "plextv", "discover", "metadata", "trakt", "rss")


class FakePlex:
    """Serve a Scenario on loopback. Thread-safe; state changes take effect immediately."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario.small_demo()
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._release = threading.Event()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._session_counter = 0
        self.alerts = AlertHub(self._live_sessions)
        self._index()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakePlex:
        for service in SERVICES:
            server = QuietServer(("127.0.0.1", 0), handler_for(self, service))
            server.daemon_threads = True
            self._servers[service] = server
            thread = threading.Thread(target=server.serve_forever, args=(0.02,),
                                      name=f"fakeplex-{service}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        self.alerts.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.alerts.close()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakePlex:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, service: str) -> str:
        host, port = self._servers[service].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pms_url(self) -> str:
        return self.url("pms")

    @property
    def owner_token(self) -> str:
        return self.scenario.owner.server_token or ""

    @property
    def rss_url(self) -> str:
        return f"{self.url('rss')}/{self.scenario.rss_id}"

    def env(self) -> dict[str, str]:
        """The CACHERR_* overrides (SPEC §8) that point cacherr at this fake."""
        return {
            "CACHERR_PLEXTV_URL": self.url("plextv"),
            "CACHERR_DISCOVER_URL": self.url("discover"),
            "CACHERR_METADATA_URL": self.url("metadata"),
            "CACHERR_TRAKT_URL": self.url("trakt"),
        }

    def config(self, rules, *, state_dir, paths=None, users=None, timeout_seconds: float = 5.0,
               watchlist_rss: bool = True, user_tokens: dict | None = None, trakt: bool = True):
        """A `cacherr.config.model.Config` pointing at this fake (for tests and the demo):
        `rules` are `Rule`s; `paths` defaults to /data/media -> /mnt/user/media."""
        return make_config(self.pms_url, self.owner_token, rules, state_dir=state_dir, paths=paths,
                           users=users, timeout_seconds=timeout_seconds,
                           watchlist_rss=self.rss_url if watchlist_rss else None,
                           user_tokens=user_tokens,
                           trakt_client_id=self.scenario.trakt_client_id if trakt else None)

    def select(self, rules, state_dir, *, now: float | None = None, retry=None,
               history_since: float | None = None, users_max_age_seconds: float | None = None,
               users_memory=None, **config):
        """Run `select_all` against this fake with quick retries (for tests and benchmarks)."""
        from cacherr.sources.http import RetryPolicy
        from cacherr.sources.select import select_all

        retry = retry or RetryPolicy(attempts=3, backoff_seconds=0.01, max_wait_seconds=0.05)
        return select_all(self.config(rules, state_dir=state_dir, **config), state_dir,
                          self.scenario.now if now is None else now, env=self.env(), retry=retry,
                          history_since=history_since, users_max_age_seconds=users_max_age_seconds,
                          users_memory=users_memory)

    # ------------------------------------------------------------------ control API

    def start_session(self, user: str, rating_key: int, state: str = "playing",
                      offset_ms: int = 60_000, **shape) -> None:
        """Start a playback. `shape` (see `fake_sessions`): transcode=True (the Part then
        names no file), version=N (which Media plays), media_id=N (a Media id the library
        no longer has), kind="live"|"track"|"clip" (with title, file, section), no_user=True."""
        with self.lock:
            session = {"user": user, "rating_key": int(rating_key), "state": state,
                       "offset_ms": offset_ms, **shape}
            self.scenario.sessions.append(session)
            self.session_key(session)
        self.alerts.playing(session)

    def stop_session(self, user: str, rating_key: int | None = None) -> None:
        with self.lock:
            ending = [s for s in self.scenario.sessions if s["user"] == user and (
                rating_key is None or s["rating_key"] == int(rating_key))]
            self.scenario.sessions = [s for s in self.scenario.sessions if s not in ending]
        for session in ending:
            self.alerts.playing(dict(session, session_key=self.session_key(session)),
                                state="stopped")

    def session_key(self, session: dict) -> int:
        """A session's key, stable while it lives (given on first use, like PMS's)."""
        with self.lock:
            if "session_key" not in session:
                self._session_counter += 1
                session["session_key"] = self._session_counter
            return session["session_key"]

    def _live_sessions(self) -> list[dict]:
        with self.lock:
            return [dict(s, session_key=self.session_key(s)) for s in self.scenario.sessions]

    def mark_watched(self, user: str, rating_key: int, at: float | None = None) -> None:
        with self.lock:
            at = self.scenario.now if at is None else at
            self.scenario.viewed.setdefault(user, {})[int(rating_key)] = at
            self.scenario.progress.get(user, {}).pop(int(rating_key), None)

    def set_progress(self, user: str, rating_key: int, offset_ms: int, at: float | None = None) -> None:
        with self.lock:
            at = self.scenario.now if at is None else at
            self.scenario.progress.setdefault(user, {})[int(rating_key)] = (int(offset_ms), at)

    def watchlist_add(self, user: str, guid: str) -> None:
        with self.lock:
            self.scenario.watchlists.setdefault(user, []).insert(0, guid)

    def watchlist_remove(self, user: str, guid: str) -> None:
        with self.lock:
            items = self.scenario.watchlists.get(user, [])
            if guid in items:
                items.remove(guid)

    def fail(self, service: str, path_prefix: str = "/", status: int = 500,
             times: int | None = None, retry_after: float | None = None,
             token: str | None = None) -> None:
        """Answer requests to `service` whose path starts with `path_prefix` (and, if given,
        that carry `token`) with `status`, `times` times or until cleared."""
        with self.lock:
            self.faults.append(Fault(service, path_prefix, status, times, retry_after, token=token))

    def hang(self, service: str, path_prefix: str = "/", seconds: float = 30.0,
             times: int | None = None) -> None:
        """Hold matching requests for `seconds` (or until release_hangs/stop), then answer."""
        with self.lock:
            self._release.clear()
            self.faults.append(Fault(service, path_prefix, 0, times, hang_seconds=seconds))

    def release_hangs(self) -> None:
        self._release.set()

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
        self._release.set()

    def count(self, service: str | None = None, path_prefix: str = "") -> int:
        with self.lock:
            return sum(1 for r in self.requests
                       if (service is None or r.service == service) and r.path.startswith(path_prefix))

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()

    # ------------------------------------------------------------------ model helpers

    def _index(self) -> None:
        with self.lock:
            self.nodes: dict[int, Node] = {}
            for movie in self.scenario.movies:
                self.nodes[movie.rating_key] = Node("movie", movie, movie.section)
            for show in self.scenario.shows:
                self.nodes[show.rating_key] = Node("show", show, show.section)
                for season in show.seasons:
                    self.nodes[season.rating_key] = Node("season", season, show.section, show)
                    for episode in season.episodes:
                        self.nodes[episode.rating_key] = Node("episode", episode, show.section,
                                                               show, season)
            self.guid_to_key = {n.obj.guid: k for k, n in self.nodes.items()
                                if n.type in ("movie", "show")}

    def add_movie(self, movie: Movie) -> None:
        """Add a movie to the library (as a scan would, telling the alert stream)."""
        with self.lock:
            self.scenario.movies.append(movie)
            self.scenario.__post_init__()
            self._index()
        self.alerts.item_added(movie.rating_key, "movie", movie.section, movie.title,
                               int(movie.added_at))

    def user_by_server_token(self, token: str | None):
        for user in self.scenario.users:
            if token and user.server_token == token:
                return user
        extra = self.scenario.extra_server_tokens
        if token in extra:
            return self.scenario.user(extra[token])
        return None

    def user_by_account_token(self, token: str | None):
        for user in self.scenario.users:
            if token and user.account_token == token:
                return user
        return None

    def account_id(self, user) -> int:
        return 1 if user.kind == "owner" else user.id

    def episodes_of(self, show: Show) -> list[tuple[Season, Episode]]:
        return [(s, e) for s in sorted(show.seasons, key=lambda s: s.index)
                for e in sorted(s.episodes, key=lambda e: e.index)]

    def on_deck(self, user) -> list[int]:
        """Plex's On Deck for a user: items in progress, and the next episode of shows
        watched, newest activity first."""
        viewed = self.scenario.viewed.get(user.name, {})
        progress = self.scenario.progress.get(user.name, {})
        entries: dict[int, float] = {}
        for rk, (_offset, at) in progress.items():
            if rk in self.nodes:
                entries[rk] = at
        for show in self.scenario.shows:
            episodes = self.episodes_of(show)
            last_index, last_at = -1, 0.0
            for i, (_s, e) in enumerate(episodes):
                at = viewed.get(e.rating_key) or progress.get(e.rating_key, (0, 0.0))[1]
                if at:
                    last_index, last_at = i, max(last_at, at)
            if last_index < 0:
                continue
            if episodes[last_index][1].rating_key in progress:
                continue  # already listed as in progress
            for _s, e in episodes[last_index + 1:]:
                if e.rating_key not in viewed:
                    entries[e.rating_key] = last_at
                    break
        return [rk for rk, _ in sorted(entries.items(), key=lambda kv: -kv[1])]

    def history(self) -> list[tuple[str, int, float]]:
        rows = [(name, rk, at) for name, seen in self.scenario.viewed.items() for rk, at in seen.items()]
        return sorted(rows, key=lambda r: -r[2])


# ---------------------------------------------------------------------- XML building


def make_config(pms_url: str, token: str, rules, *, state_dir, paths=None, users=None,
                timeout_seconds: float = 5.0, watchlist_rss: str | None = None,
                user_tokens: dict | None = None, trakt_client_id: str | None = None):
    """A `cacherr.config.model.Config` for a Plex server at `pms_url` with a symlink-layout
    cache in `state_dir` (for tests against this fake or any other local server)."""
    from pathlib import Path

    from cacherr.config import model

    cache = model.CacheConfig(
        layout="symlink", original="backup", union=None,
        symlink=model.SymlinkLayout(dir=Path(state_dir) / "cache", plex_dir="/cache"),
        max_size=model.Size(percent=80), min_free=model.Size(bytes=0), sidecars="none",
        verify="size", transfers=model.Transfers(), mover_exclude_file=Path(state_dir) / "exclude.txt",
        defer_while_playing="never")
    return model.Config(
        source_path=Path(state_dir) / "rules.yaml",
        plex=model.PlexConfig(url=pms_url, token=token, watchlist_rss=watchlist_rss,
                              user_tokens=dict(user_tokens or {}), timeout_seconds=timeout_seconds),
        paths=tuple(paths if paths is not None else
                    (model.PathMapping(plex="/data/media", host="/mnt/user/media"),)),
        cache=cache,
        users=users if users is not None else model.UsersConfig(include=None),
        rules=tuple(rules),
        trakt=model.TraktConfig(client_id=trakt_client_id),
        schedule=model.ScheduleConfig(), notify=model.NotifyConfig(), server=model.ServerConfig(),
        host=model.HostConfig(), state_dir=Path(state_dir))


def serve_forever(scenario: Scenario | None = None) -> None:  # pragma: no cover - manual use
    """Run the fake until interrupted, printing its addresses (for `cacherr demo` and poking).

    `python -m cacherr.testing.fakeplex [ITEMS USERS | SCENARIO.json]`: the small demo,
    a generated one, or one saved with `Scenario.to_dict()`."""
    with FakePlex(scenario) as fake:
        print(json.dumps({"pms": fake.pms_url, "token": fake.owner_token, "rss": fake.rss_url,
                          **fake.env()}, indent=2))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


__all__ = ["FakePlex", "Fault", "RecordedRequest", "Scenario", "SERVICES", "make_config"]

if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3:
        serve_forever(Scenario.generate(items=int(sys.argv[1]), users=int(sys.argv[2])))
    elif len(sys.argv) == 2:
        with open(sys.argv[1]) as handle:
            serve_forever(Scenario.from_dict(json.load(handle)))
    else:
        serve_forever()
