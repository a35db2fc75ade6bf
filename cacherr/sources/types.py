"""cacherr's own view of what Plex, plex.tv and Trakt report: plain frozen dataclasses.

The adapter (`cacherr.sources.plex`) turns plexapi objects into these; selectors and the
planner only ever see these. Times are epoch seconds, sizes bytes, offsets milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCES = ("plex", "plextv", "trakt")


@dataclass(frozen=True)
class MediaFile:
    """One file (a Plex `Part`) of a media version."""

    plex_path: str
    size_bytes: int


@dataclass(frozen=True)
class MediaVersion:
    """One Plex `Media` element: a version of an item (e.g. 1080p, 4K), one or more files."""

    files: tuple[MediaFile, ...]
    resolution: str | None = None
    media_id: int | None = None  # Plex's Media id (a session names the version it plays by it)

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


@dataclass(frozen=True)
class Item:
    """A movie, show or episode in the local library, as one user sees it.

    `guids` holds the primary guid (plex://..., or a legacy agent guid) and every
    external id (imdb://, tmdb://, tvdb://). Shows carry no versions.
    """

    rating_key: int
    type: str  # movie | show | episode
    title: str
    library: str
    library_id: int | None = None
    guids: frozenset[str] = frozenset()
    versions: tuple[MediaVersion, ...] = ()
    show_rating_key: int | None = None
    show_title: str | None = None
    season_index: int | None = None
    episode_index: int | None = None
    added_at: float | None = None
    updated_at: float | None = None
    released: str | None = None  # YYYY-MM-DD
    labels: frozenset[str] = frozenset()
    view_count: int = 0
    view_offset_ms: int = 0
    last_viewed_at: float | None = None
    duration_ms: int | None = None  # the runtime Plex gives (None: not given)

    @property
    def watched(self) -> bool:
        return self.view_count > 0

    @property
    def files(self) -> tuple[MediaFile, ...]:
        return tuple(f for v in self.versions for f in v.files)

    @property
    def order(self) -> tuple[int, int]:
        """(season, episode), for sorting episodes across seasons."""
        return (self.season_index or 0, self.episode_index or 0)

    def describe(self) -> str:
        """A short, log-friendly identity: 'Show S01E02' or 'Movie (rk 101)'."""
        if self.type == "episode":
            return f"{self.show_title} S{self.season_index or 0:02d}E{self.episode_index or 0:02d}"
        return f"{self.title} ({self.type} {self.rating_key})"


@dataclass(frozen=True)
class User:
    """A Plex user. `token` is their token for this server (None: none known).
    `account_token` is their plex.tv token (owner; Home users after a switch)."""

    name: str
    id: int  # plex.tv id
    kind: str  # owner | home | friend
    token: str | None = None
    account_token: str | None = None
    uuid: str | None = None
    username: str | None = None

    @property
    def account_id(self) -> int:
        """The id the server uses in history and sessions (the owner is account 1)."""
        return 1 if self.kind == "owner" else self.id

    def matches(self, name: str) -> bool:
        """Users are matched by plex.tv username or title, case-insensitively."""
        wanted = name.casefold()
        return wanted in {self.name.casefold(), (self.username or "").casefold()}


@dataclass(frozen=True)
class SharedUser:
    """A user from plex.tv's list of everyone the owner shares anything with, and the
    servers (machine identifiers) shared with them."""

    user: User
    servers: tuple[str, ...]


CACHEABLE_KINDS = ("movie", "episode")


@dataclass(frozen=True)
class Session:
    """A live playback, its item resolved to the source files on disk.

    `kind` is movie, episode, clip, track, photo, live (Live TV) or other; only movies and
    episodes are cached, but every file being read is protected. A transcoded session's
    files are its item's: the version it plays (matched by Media id), or every version
    when that cannot be matched.
    """

    user_name: str
    account_id: int | None
    item: Item
    state: str  # playing | paused | buffering
    view_offset_ms: int = 0
    kind: str = "movie"
    session_key: str | None = None
    transcoding: bool = False

    @property
    def cacheable(self) -> bool:
        return self.kind in CACHEABLE_KINDS


@dataclass(frozen=True)
class HistoryEntry:
    rating_key: int
    account_id: int
    viewed_at: float
    type: str
    show_rating_key: int | None = None
    season_index: int | None = None
    episode_index: int | None = None


@dataclass(frozen=True)
class Play:
    """A finished playback from the server's history (for `keep: {until: watched}`)."""

    rating_key: int
    user_name: str  # the included user's name, or "account:<id>" for anyone else
    viewed_at: float


@dataclass(frozen=True)
class WatchlistEntry:
    """An item on someone's watchlist, as plex.tv or the RSS feed describes it."""

    guids: frozenset[str]
    type: str  # movie | show
    title: str
    released: str | None = None


@dataclass(frozen=True)
class Selection:
    """One selector's pick: an item (possibly restricted to some files) for some users."""

    item: Item
    users: frozenset[str]
    paths: frozenset[str] | None = None  # only these files of the item (pinned paths)
    # Its place in its users' viewing queue of one show: (queue, position), 0 = in
    # progress, 1 = next up, then the look-ahead (see planner.model.Want).
    queue: tuple[str, int] | None = None


@dataclass(frozen=True)
class Wanted:
    """A file some rule wants on the fast pool, for some users."""

    host_path: str
    plex_path: str
    size_bytes: int
    rule: str
    users: frozenset[str]
    priority: int
    item: str  # identity for logs, e.g. "Example Show S01E02"
    rating_key: int | None = None
    queues: tuple[tuple[str, int], ...] = ()  # (rule/queue, position): see Selection.queue


@dataclass(frozen=True)
class LookAhead:
    """The look-ahead window a rule chose for some users in one show, and why."""

    rule: str
    users: tuple[str, ...]
    show: str
    episodes: int
    reason: str


@dataclass
class SourceStatus:
    """Per-source health for /health and metrics (`source_up`, request failures)."""

    up: bool = True
    requests: int = 0
    failures: int = 0
    last_error: str | None = None
    skipped_elements: int = 0  # elements of answers that could not be read (skipped)


@dataclass
class SelectionResult:
    """What one selection round found.

    `failed_sources` maps a source (`plex`, `plextv`, `trakt`) or `user:NAME` to why it
    failed; `failed_rules` maps each rule whose evaluation was incomplete to the failed
    sources/users it depended on, so the planner keeps what they had cached. `warnings`
    are permanent conditions (no token for a friend, unmapped paths) that are not failures.
    """

    wanted: list[Wanted] = field(default_factory=list)
    evaluated_rules: tuple[str, ...] = ()
    failed_sources: dict[str, str] = field(default_factory=dict)
    failed_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)  # plex path -> suggestion
    request_count: int = 0
    status: dict[str, SourceStatus] = field(default_factory=dict)
    users: tuple[User, ...] = ()
    sessions: tuple[Session, ...] = ()
    plays: tuple[Play, ...] = ()  # only when select_all is given history_since
    windows: tuple[LookAhead, ...] = ()  # each `ahead:` window and why (plan, ls)
