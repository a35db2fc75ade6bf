"""The typed form of a validated rules file. Every default is applied here, in memory.

Durations are seconds (float), sizes are bytes (int) or a `Percent` of the fast file
system, resolved by `Size.bytes_of(total)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Size:
    """A size in bytes, or a percentage (0 < percent <= 100) of a file system's size."""

    bytes: int | None = None
    percent: float | None = None

    def bytes_of(self, total_bytes: int) -> int:
        """Given the file system's total size, return this size in bytes."""
        if self.percent is not None:
            return int(total_bytes * self.percent / 100)
        return int(self.bytes or 0)


@dataclass(frozen=True)
class PathMapping:
    """Plex's path prefix and the same folder as this host sees it."""

    plex: str
    host: str


@dataclass(frozen=True)
class PlexConfig:
    url: str
    token: str = field(repr=False)
    watchlist_rss: str | None = field(default=None, repr=False)
    user_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = 30.0
    alerts: bool = True  # listen to the alert stream; polling stays the fallback


@dataclass(frozen=True)
class UnionLayout:
    view: Path  # the merged view Plex reads; never written
    fast: Path  # the pool branch
    slow: tuple[Path, ...]  # physical slow branches (globs expanded at load time)
    slow_patterns: tuple[str, ...] = ()  # as written, for re-expansion (new disks)


@dataclass(frozen=True)
class SymlinkLayout:
    dir: Path  # where cached copies live on this host
    plex_dir: str  # the same folder as Plex sees it (symlink targets are written this way)


@dataclass(frozen=True)
class Transfers:
    to_cache: int = 2
    to_slow: int = 1


@dataclass(frozen=True)
class CacheConfig:
    layout: str  # union | symlink
    original: str  # shadow | backup | move
    union: UnionLayout | None
    symlink: SymlinkLayout | None
    max_size: Size
    min_free: Size
    sidecars: str  # none | subtitles | all
    verify: str  # size | checksum
    transfers: Transfers
    mover_exclude_file: Path
    defer_while_playing: str  # never | same_disk | any
    bandwidth_bytes_per_second: int | None = None


@dataclass(frozen=True)
class UsersConfig:
    include: tuple[str, ...] | None  # None = all
    exclude: tuple[str, ...] = ()
    inactive_after_seconds: float | None = None


@dataclass(frozen=True)
class Keep:
    """How long a rule keeps what it selected. Exactly one of the three forms."""

    while_selected: bool = False
    min_seconds: float = 0.0
    for_seconds: float | None = None
    until_watched: bool = False
    grace_seconds: float = 0.0


@dataclass(frozen=True)
class Rule:
    name: str
    select: str  # ondeck | watchlist | playing | recently_added | pinned | trakt
    keep: Keep
    priority: int = 50
    within_seconds: float | None = None
    episodes_ahead: int = 0
    ahead_seconds: float | None = None  # ahead: 3h
    ahead_auto: bool = False  # ahead: auto
    ahead_max: int = 10
    episodes: int = 1
    when: str = "start"  # playing: start | complete
    list: str | None = None  # trakt
    limit: int = 10  # trakt
    label: str | None = None  # pinned
    paths: tuple[str, ...] = ()  # pinned
    users: tuple[str, ...] | None = None  # None = every included user
    libraries: tuple[str, ...] | None = None  # None = every library
    versions: str = "all"  # all | smallest | largest
    max_file_size_bytes: int | None = None


@dataclass(frozen=True)
class TraktConfig:
    client_id: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ScheduleConfig:
    every_seconds: float = 3600.0
    sessions_every_seconds: float = 30.0


@dataclass(frozen=True)
class NotifyConfig:
    urls: tuple[str, ...] = field(default=(), repr=False)  # they hold tokens
    events: tuple[str, ...] = ("summary", "error", "cache_full")
    unraid_notify_script: str = "/usr/local/emhttp/webGui/scripts/notify"


@dataclass(frozen=True)
class ServerConfig:
    listen_host: str = "0.0.0.0"
    listen_port: int = 5445
    token: str | None = field(default=None, repr=False)  # None: write endpoints answer 403
    protect_cached: bool = False  # /api/cached needs the token too


@dataclass(frozen=True)
class HostConfig:
    """Where this host's system files are (Unraid's by default); tests point them at a sandbox."""

    mover_pid_file: Path = Path("/var/run/mover.pid")
    emhttp_dir: Path = Path("/var/local/emhttp")
    boot_config_dir: Path = Path("/boot/config")


@dataclass(frozen=True)
class Config:
    """A loaded, validated rules file."""

    source_path: Path
    plex: PlexConfig
    paths: tuple[PathMapping, ...]
    cache: CacheConfig
    users: UsersConfig
    rules: tuple[Rule, ...]
    trakt: TraktConfig
    schedule: ScheduleConfig
    notify: NotifyConfig
    server: ServerConfig
    host: HostConfig
    state_dir: Path
    dry_run: bool = False
    source_failure_grace_seconds: float = 86400.0
