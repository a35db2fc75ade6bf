"""Plain-data scenarios for the fake Plex server: a library, users, their viewing state.

A scenario is what the fake server serves: sections, movies and shows (with seasons,
episodes, media versions and their files), users with tokens, watchlists, viewing
history, live sessions, labels and Trakt lists. `Scenario.small_demo()` is the one the
tests and `cacherr demo` start from; `Scenario.generate()` builds large libraries for
benchmarks. Timestamps are epoch seconds; sizes are bytes.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field

GiB = 1024**3
MiB = 1024**2
DAY = 86400.0


@dataclass
class Version:
    """One Plex `Media` element: a version of an item, made of one or more files (Parts)."""

    files: list[tuple[str, int]]  # (path as Plex sees it, size in bytes)
    resolution: str = "1080"


@dataclass
class Section:
    key: int
    title: str
    type: str  # movie | show
    location: str
    # Plex's library visibility: 0 shown on Home, 1 excluded from Home (`/library/onDeck` and
    # the Home hubs leave it out), 2 excluded from Home and global search
    hidden: int = 0


@dataclass
class Movie:
    rating_key: int
    title: str
    year: int
    versions: list[Version]
    section: int = 1
    guid: str = ""  # plex://movie/...; derived from rating_key when empty
    external_guids: list[str] = field(default_factory=list)  # imdb://, tmdb://
    added_at: float = 0.0
    updated_at: float = 0.0
    released: str = "2000-01-01"  # originallyAvailableAt, YYYY-MM-DD
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guid = self.guid or f"plex://movie/{_hex24(self.rating_key)}"


@dataclass
class Episode:
    rating_key: int
    index: int
    title: str
    versions: list[Version]
    external_guids: list[str] = field(default_factory=list)
    added_at: float = 0.0
    released: str = "2000-01-01"
    duration_ms: int = 1_500_000  # Plex's `duration` of the episode and its media


@dataclass
class Season:
    rating_key: int
    index: int
    episodes: list[Episode]


@dataclass
class Show:
    rating_key: int
    title: str
    year: int
    seasons: list[Season]
    section: int = 2
    guid: str = ""
    external_guids: list[str] = field(default_factory=list)  # imdb://, tmdb://, tvdb://
    added_at: float = 0.0
    updated_at: float = 0.0
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guid = self.guid or f"plex://show/{_hex24(self.rating_key)}"


@dataclass
class User:
    """A plex.tv account. `server_token=None`: plex.tv hands out no token for this user."""

    name: str
    id: int  # plex.tv id; the owner is account 1 on the server
    kind: str  # owner | home | friend
    server_token: str | None
    account_token: str | None = None  # plex.tv token (owner; Home users after a switch)
    uuid: str = ""
    # machine identifiers of the servers shared with this user, as plex.tv's user list has
    # them (`<Server machineIdentifier=...>`); None = this server only
    servers: list[str] | None = None
    restricted: bool = False  # a managed Home user (`home="1" restricted="1"`)

    def has_server(self, machine_identifier: str) -> bool:
        return self.kind == "owner" or self.servers is None or machine_identifier in self.servers


@dataclass
class DiscoverItem:
    """Something a user can put on a watchlist that the local library does not hold."""

    guid: str
    type: str  # movie | show
    title: str
    year: int
    external_guids: list[str] = field(default_factory=list)
    released: str = "2000-01-01"


@dataclass
class Scenario:
    sections: list[Section]
    movies: list[Movie]
    shows: list[Show]
    users: list[User]  # the owner first
    now: float = 1_760_000_000.0
    # user name -> guids (plex://...) of watchlisted items, newest first
    watchlists: dict[str, list[str]] = field(default_factory=dict)
    discover_only: list[DiscoverItem] = field(default_factory=list)
    # user name -> {rating_key: viewed_at}; every entry is also a history entry
    viewed: dict[str, dict[int, float]] = field(default_factory=dict)
    # user name -> {rating_key: (view offset in ms, last viewed at)}
    progress: dict[str, dict[int, tuple[int, float]]] = field(default_factory=dict)
    # live sessions: dicts with user, rating_key, state (playing|paused), offset_ms, and
    # optionally kind (library | live | track | clip), transcode (bool), version (index of
    # the Media being played), no_user (bool), title and file (track and clip sessions)
    sessions: list[dict] = field(default_factory=list)
    # plays of items deleted since: history rows without ratingKey (user, title, type,
    # viewed_at, section)
    deleted_history: list[dict] = field(default_factory=list)
    # Trakt: list path as the rules file writes it (movies/trending,
    # users/NAME/lists/SLUG, users/NAME/watchlist) -> Trakt JSON items
    trakt_lists: dict[str, list[dict]] = field(default_factory=dict)
    trakt_client_id: str = "trakt-client-id"
    # server tokens PMS accepts that plex.tv does not hand out (users paste them by hand)
    extra_server_tokens: dict[str, str] = field(default_factory=dict)  # token -> user name
    machine_identifier: str = "0123456789abcdef0123456789abcdef01234567"
    server_name: str = "FakePlex"
    rss_id: str = "friends-feed-0001"

    def __post_init__(self) -> None:
        for movie in self.movies:
            movie.guid = movie.guid or f"plex://movie/{_hex24(movie.rating_key)}"
            movie.added_at = movie.added_at or self.now - 30 * DAY
            movie.updated_at = movie.updated_at or movie.added_at
        for show in self.shows:
            show.guid = show.guid or f"plex://show/{_hex24(show.rating_key)}"
            show.added_at = show.added_at or self.now - 60 * DAY
            show.updated_at = show.updated_at or show.added_at
            for season in show.seasons:
                for episode in season.episodes:
                    episode.added_at = episode.added_at or show.added_at
        for user in self.users:
            user.uuid = user.uuid or _hex24(user.id)[:16]
            if user.kind == "owner" and user.account_token is None:
                user.account_token = user.server_token

    @property
    def owner(self) -> User:
        return self.users[0]

    def user(self, name: str) -> User:
        for user in self.users:
            if user.name.lower() == name.lower():
                return user
        raise KeyError(name)

    # ----------------------------------------------------------------- plain data

    def to_dict(self) -> dict:
        """The scenario as JSON-ready data (`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scenario:
        """Build a scenario from `to_dict()` output (or hand-written JSON/YAML data)."""

        def versions(raw):
            return [Version([tuple(f) for f in v["files"]], v.get("resolution", "1080")) for v in raw]

        def show(raw):
            seasons = [Season(se["rating_key"], se["index"], [
                Episode(**{**e, "versions": versions(e["versions"])}) for e in se["episodes"]])
                for se in raw["seasons"]]
            return Show(**{**raw, "seasons": seasons})

        fields = dict(data)
        fields["sections"] = [Section(**x) for x in data["sections"]]
        fields["movies"] = [Movie(**{**m, "versions": versions(m["versions"])}) for m in data["movies"]]
        fields["shows"] = [show(x) for x in data["shows"]]
        fields["users"] = [User(**u) for u in data["users"]]
        fields["discover_only"] = [DiscoverItem(**d) for d in data.get("discover_only", [])]
        fields["viewed"] = {name: {int(k): v for k, v in seen.items()}
                            for name, seen in data.get("viewed", {}).items()}
        fields["progress"] = {name: {int(k): tuple(v) for k, v in seen.items()}
                              for name, seen in data.get("progress", {}).items()}
        return cls(**fields)

    # ----------------------------------------------------------------- the two builders

    @classmethod
    def small_demo(cls) -> Scenario:
        """A few movies (one in 1080p and 4K), a show with 2 seasons, an owner, a Home
        user and a friend, with on-deck state that crosses a season boundary."""
        now = 1_760_000_000.0
        movies_dir = "/data/media/movies"
        tv_dir = "/data/media/tv"
        sections = [
            Section(1, "Movies", "movie", movies_dir),
            Section(2, "TV Shows", "show", tv_dir),
        ]
        movies = [
            Movie(
                101,
                "Example Movie",
                2008,
                [
                    Version([(f"{movies_dir}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv", 8 * GiB)]),
                    Version(
                        [(f"{movies_dir}/Example Movie (2008)/Example Movie (2008) - 2160p.mkv", 40 * GiB)],
                        resolution="4k",
                    ),
                ],
                external_guids=["imdb://tt0000101", "tmdb://90101"],
                added_at=now - 40 * DAY,
                released="2008-05-20",
            ),
            Movie(
                102,
                "Second Movie",
                2019,
                [Version([(f"{movies_dir}/Second Movie (2019)/Second Movie (2019).mkv", 6 * GiB)])],
                external_guids=["imdb://tt0000102", "tmdb://90102"],
                added_at=now - 2 * DAY,
                released="2019-03-01",
            ),
            Movie(
                103,
                "Pinned Movie",
                1999,
                [
                    Version(
                        [
                            (f"{movies_dir}/Pinned Movie (1999)/Pinned Movie (1999) - pt1.avi", 700 * MiB),
                            (f"{movies_dir}/Pinned Movie (1999)/Pinned Movie (1999) - pt2.avi", 650 * MiB),
                        ]
                    )
                ],
                external_guids=["imdb://tt0000103", "tmdb://90103"],
                added_at=now - 100 * DAY,
                released="1999-09-09",
                labels=["cache"],
            ),
        ]
        show = _make_show(
            200, "Example Show", 2020, tv_dir, seasons=2, episodes_per_season=3,
            episode_size=700 * MiB, added_at=now - 50 * DAY,
            external_guids=["imdb://tt0000200", "tmdb://90200", "tvdb://900200"],
        )
        other = _make_show(
            300, "Other Show", 2015, tv_dir, seasons=1, episodes_per_season=4,
            episode_size=500 * MiB, added_at=now - 80 * DAY,
            external_guids=["imdb://tt0000300", "tmdb://90300", "tvdb://900300"],
        )
        users = [
            User("owner", 1000001, "owner", "OWNER-TOKEN", uuid="aa00000000000001"),
            User("kid", 3000003, "home", "KID-SERVER-TOKEN", account_token="KID-ACCOUNT-TOKEN",
                 uuid="cc00000000000003"),
            User("friend", 2000002, "friend", "FRIEND-SERVER-TOKEN", uuid="bb00000000000002"),
        ]
        ep = {(s.index, e.index): e.rating_key for s in show.seasons for e in s.episodes}
        upcoming = DiscoverItem("plex://movie/5d77680000000000000f0001", "movie", "Not Yet Out",
                                2099, ["imdb://tt0009999"], released="2099-01-01")
        elsewhere = DiscoverItem("plex://movie/5d77680000000000000f0002", "movie",
                                 "Not In Library", 2021, ["imdb://tt0009998"], released="2021-01-01")
        return cls(
            sections=sections,
            movies=movies,
            shows=[show, other],
            users=users,
            now=now,
            viewed={
                "owner": {ep[(1, 1)]: now - 3 * DAY, ep[(1, 2)]: now - 2 * DAY},
                "kid": {other.seasons[0].episodes[0].rating_key: now - 20 * DAY},
                "friend": {ep[(1, 1)]: now - 1 * DAY},
            },
            progress={
                # owner is half-way through S01E03: next episodes cross into season 2
                "owner": {ep[(1, 3)]: (600_000, now - 1 * DAY)},
            },
            watchlists={
                "owner": [movies[1].guid, upcoming.guid, elsewhere.guid],
                "kid": [other.guid],
                "friend": [show.guid, movies[0].guid],
            },
            discover_only=[upcoming, elsewhere],
            trakt_lists={
                "movies/trending": [
                    {"watchers": 21, "movie": {"title": "Example Movie", "year": 2008,
                                               "ids": {"trakt": 501, "slug": "example-movie-2008",
                                                       "imdb": "tt0000101", "tmdb": 90101}}},
                    {"watchers": 7, "movie": {"title": "Not In Library", "year": 2023,
                                              "ids": {"trakt": 502, "slug": "not-in-library-2023",
                                                      "imdb": None, "tmdb": 90999}}},
                ],
                "shows/trending": [
                    {"watchers": 35, "show": {"title": "Other Show", "year": 2015,
                                              "ids": {"trakt": 601, "slug": "other-show",
                                                      "tvdb": 900300, "imdb": None, "tmdb": None}}},
                ],
            },
        )

    @classmethod
    def generate(cls, items: int, users: int, seed: int = 1) -> Scenario:
        """A library of about `items` playable files (half movies, half episodes in shows of
        2 seasons x 5 episodes) and `users` users (the owner, then Home users and friends
        alternately), each with an on-deck show, watchlist entries and a Trakt list."""
        rng = random.Random(seed)
        now = 1_760_000_000.0
        movies_dir, tv_dir = "/data/media/movies", "/data/media/tv"
        sections = [Section(1, "Movies", "movie", movies_dir), Section(2, "TV Shows", "show", tv_dir)]
        n_movies = items // 2
        movies = []
        for i in range(n_movies):
            rk = 10_000 + i
            title = f"Movie {i:05d}"
            movies.append(Movie(
                rk, title, 1980 + i % 40,
                [Version([(f"{movies_dir}/{title}/{title}.mkv", rng.randint(2, 30) * GiB)])],
                external_guids=[f"imdb://tt{1_000_000 + i}", f"tmdb://{500_000 + i}"],
                added_at=now - rng.randint(1, 400) * DAY,
            ))
        shows = []
        n_shows = max(1, (items - n_movies) // 10)
        for i in range(n_shows):
            shows.append(_make_show(
                1_000_000 + i * 100, f"Show {i:04d}", 1990 + i % 30, tv_dir, seasons=2,
                episodes_per_season=5, episode_size=rng.randint(300, 2000) * MiB,
                added_at=now - rng.randint(1, 400) * DAY,
                external_guids=[f"imdb://tt{3_000_000 + i}", f"tvdb://{700_000 + i}"],
            ))
        people = [User("owner", 1000001, "owner", "OWNER-TOKEN")]
        for u in range(1, users):
            kind = "home" if u % 2 else "friend"
            people.append(User(
                f"user{u}", 2_000_000 + u, kind, f"USER{u}-SERVER-TOKEN",
                account_token=f"USER{u}-ACCOUNT-TOKEN" if kind == "home" else None,
            ))
        viewed: dict[str, dict[int, float]] = {}
        progress: dict[str, dict[int, tuple[int, float]]] = {}
        watchlists: dict[str, list[str]] = {}
        for u, person in enumerate(people):
            show = shows[u % len(shows)]
            episodes = [e for s in show.seasons for e in s.episodes]
            viewed[person.name] = {episodes[0].rating_key: now - 3 * DAY,
                                   episodes[1].rating_key: now - 2 * DAY}
            movie = movies[(u * 7) % len(movies)] if movies else None
            if movie:
                progress[person.name] = {movie.rating_key: (1_200_000, now - DAY)}
            picks = [m.guid for m in rng.sample(movies, min(3, len(movies)))]
            picks.append(shows[(u + 1) % len(shows)].guid)
            watchlists[person.name] = picks
        trakt = [
            {"watchers": 10 - i, "movie": {"title": m.title, "year": m.year,
                                           "ids": {"trakt": i, "imdb": m.external_guids[0][7:],
                                                   "tmdb": None}}}
            for i, m in enumerate(rng.sample(movies, min(10, len(movies))))
        ]
        scenario = cls(sections=sections, movies=movies, shows=shows, users=people, now=now,
                       viewed=viewed, progress=progress, watchlists=watchlists,
                       trakt_lists={"movies/trending": trakt})
        return scenario


def with_windows_paths(scenario: Scenario, posix_root: str = "/data/media",
                       windows_root: str = "M:\\Media") -> Scenario:
    """The scenario as a Plex server on Windows reports it: every file and library folder
    under `posix_root` becomes `windows_root` with backslashes (M:\\Media\\Movies\\...)."""

    def convert(path: str) -> str:
        if path == posix_root or path.startswith(posix_root + "/"):
            return windows_root + path[len(posix_root):].replace("/", "\\")
        return path

    def versions(items):
        for version in items:
            version.files = [(convert(path), size) for path, size in version.files]

    for section in scenario.sections:
        section.location = convert(section.location)
    for movie in scenario.movies:
        versions(movie.versions)
    for show in scenario.shows:
        for season in show.seasons:
            for episode in season.episodes:
                versions(episode.versions)
    return scenario


def _hex24(number: int) -> str:
    return hashlib.sha1(str(number).encode()).hexdigest()[:24]


def _make_show(rating_key: int, title: str, year: int, root: str, *, seasons: int,
               episodes_per_season: int, episode_size: int, added_at: float,
               external_guids: list[str]) -> Show:
    """Season rating keys are rating_key + 10*s, episodes follow their season's key."""
    built = []
    for s in range(1, seasons + 1):
        season_key = rating_key + 10 * s
        episodes = []
        for e in range(1, episodes_per_season + 1):
            name = f"{title} - S{s:02d}E{e:02d}.mkv"
            episodes.append(Episode(
                season_key + e, e, f"Episode {e}",
                [Version([(f"{root}/{title}/Season {s:02d}/{name}", episode_size)])],
                external_guids=[f"tvdb://{rating_key}{s:02d}{e:02d}"],
                added_at=added_at + s * DAY,
                released=f"{year + s - 1}-01-{e:02d}",
            ))
        built.append(Season(season_key, s, episodes))
    return Show(rating_key, title, year, built, external_guids=external_guids, added_at=added_at,
                updated_at=added_at + seasons * DAY)
