"""A small, real world for demos and end-to-end tests: a fake Plex library whose files
are small enough to exist for real in a sandbox, with viewing state that exercises every
common rule (On Deck across a season boundary, a watchlist movie, a Trakt movie)."""

from __future__ import annotations

import hashlib
import time

from cacherr.testing.scenarios import (
    DAY,
    Movie,
    Scenario,
    Section,
    Show,
    User,
    Version,
    _make_show,
)

KiB = 1024
PLEX_ROOT = "/data/media"


def content(path: str, size: int) -> bytes:
    """Deterministic bytes for a file, so byte-identity can be checked anywhere."""
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def small_world(now: float | None = None) -> Scenario:
    now = time.time() if now is None else now
    movies_dir, tv_dir = f"{PLEX_ROOT}/Movies", f"{PLEX_ROOT}/TV"
    movie = lambda rk, title, size, **kw: Movie(  # noqa: E731
        rk, title, 2001, [Version([(f"{movies_dir}/{title} (2001)/{title} (2001).mkv", size)])],
        external_guids=[f"imdb://tt{rk:07d}", f"tmdb://{rk}"], added_at=now - 90 * DAY, **kw)
    movies = [movie(101, "Trending Movie", 96 * KiB), movie(102, "Watchlist Movie", 80 * KiB),
              movie(103, "Other Movie", 64 * KiB)]
    show: Show = _make_show(200, "Example Show", 2020, tv_dir, seasons=2, episodes_per_season=3,
                            episode_size=48 * KiB, added_at=now - 60 * DAY,
                            external_guids=["imdb://tt0000200", "tvdb://900200"])
    ep = {(s.index, e.index): e.rating_key for s in show.seasons for e in s.episodes}
    return Scenario(
        sections=[Section(1, "Movies", "movie", movies_dir), Section(2, "TV", "show", tv_dir)],
        movies=movies, shows=[show],
        users=[User("owner", 1000001, "owner", "OWNER-TOKEN")],
        now=now,
        viewed={"owner": {ep[(1, 1)]: now - 3 * DAY, ep[(1, 2)]: now - 2 * DAY}},
        progress={"owner": {ep[(1, 3)]: (600_000, now - DAY)}},
        watchlists={"owner": [movies[1].guid]},
        trakt_lists={"movies/trending": [{"watchers": 9, "movie": {
            "title": "Trending Movie", "year": 2001,
            "ids": {"trakt": 1, "slug": "trending", "imdb": "tt0000101", "tmdb": 101}}}]},
    )


def library_files(scenario: Scenario) -> dict[str, int]:
    """Plex path → size of every file in the library."""
    files = {}
    for movie in scenario.movies:
        for version in movie.versions:
            files.update(dict(version.files))
    for show in scenario.shows:
        for season in show.seasons:
            for episode in season.episodes:
                for version in episode.versions:
                    files.update(dict(version.files))
    return files


def populate(sandbox, scenario: Scenario) -> dict[str, bytes]:
    """Write every library file on a slow disk (alternating); return share path → bytes."""
    written = {}
    for index, (plex_path, size) in enumerate(sorted(library_files(scenario).items())):
        share_path = plex_path[len(PLEX_ROOT) + 1:]
        data = content(plex_path, size)
        sandbox.write_file(share_path, data, disk=1 + index % len(sandbox.slow))
        written[share_path] = data
    return written


def write_library(root, scenario: Scenario) -> dict[str, bytes]:
    """Write every library file under one folder (the symlink layout's host root)."""
    written = {}
    for plex_path, size in sorted(library_files(scenario).items()):
        relative = plex_path[len(PLEX_ROOT) + 1:]
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content(plex_path, size))
        written[relative] = target.read_bytes()
    return written
