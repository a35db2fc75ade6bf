"""How far ahead of a viewer to cache: the look-ahead window of one user in one show.

A rule says `episodes_ahead: N` (a fixed count), `ahead: 3h` (the next episodes until
their runtime covers three hours of viewing) or `ahead: auto` (as many as this user
watches, at their own recent pace, in the time a cached file stays). Pure: the selectors
pass in the runtimes of the next episodes and the user's recent plays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY_SECONDS = 86400.0
PACE_DAYS = 30  # how far back a viewer's pace is measured
SHOW_PACE_MIN_EPISODES = 3  # fewer finished episodes of a show: use the pace over all shows
DEFAULT_RUNTIME_SECONDS = 30 * 60.0  # an episode whose runtime Plex does not give


@dataclass(frozen=True)
class AheadSpec:
    """A rule's look-ahead: exactly one of a fixed count, a viewing time or auto."""

    episodes: int = 0
    seconds: float | None = None
    auto: bool = False
    max_episodes: int = 10  # the most `auto` ever picks
    horizon_seconds: float = DAY_SECONDS  # `auto`: how long a cached file stays

    @property
    def wanted(self) -> bool:
        return bool(self.episodes or self.seconds or self.auto)


def spec_of(rule) -> AheadSpec:
    """A rule's look-ahead. For `auto`, a cached file stays for the rule's keep (`for`,
    else `min`, else `grace`), and at least a day: a viewer's pace is per day."""
    keep = rule.keep
    stays = keep.for_seconds or keep.min_seconds or keep.grace_seconds or 0.0
    return AheadSpec(episodes=rule.episodes_ahead, seconds=rule.ahead_seconds,
                     auto=rule.ahead_auto, max_episodes=rule.ahead_max,
                     horizon_seconds=max(DAY_SECONDS, stays))


@dataclass(frozen=True)
class Pace:
    """Episodes a user finished per day; `scope` says of what ("this show", "all shows")."""

    episodes_per_day: float
    scope: str


@dataclass(frozen=True)
class Window:
    """How many of the next episodes to cache, and a sentence saying why."""

    count: int
    reason: str


@dataclass(frozen=True)
class Finished:
    """One finished play: which episode (`rating_key`) of which show, and when."""

    rating_key: int
    show_key: int | None
    viewed_at: float


def pace(plays: Iterable[Finished], show_key: int | None, now: float) -> Pace | None:
    """Given one user's finished plays, return their pace for this show over the last
    PACE_DAYS days (or over every show, when this show has fewer than
    SHOW_PACE_MIN_EPISODES of them); None without any recent play.

    The pace is distinct episodes per day, counted from the first play in the window
    (at least one day), so a viewer who started a show yesterday is measured on one day,
    not thirty.
    """
    since = now - PACE_DAYS * DAY_SECONDS
    recent = [p for p in plays if since <= p.viewed_at <= now and p.show_key is not None]
    of_show = [p for p in recent if show_key is not None and p.show_key == show_key]
    if len({p.rating_key for p in of_show}) >= SHOW_PACE_MIN_EPISODES:
        return Pace(_per_day(of_show, now), "this show")
    if recent:
        return Pace(_per_day(recent, now), "all shows")
    return None


def _per_day(plays: Sequence[Finished], now: float) -> float:
    first = min(p.viewed_at for p in plays)
    days = min(PACE_DAYS, max(1.0, (now - first) / DAY_SECONDS))
    return len({p.rating_key for p in plays}) / days


def window(spec: AheadSpec, runtimes_seconds: Sequence[float | None], user: str, show: str,
           user_pace: Pace | None = None) -> Window:
    """Given a rule's look-ahead, the runtimes of the next episodes in viewing order
    (None where unknown), and for `auto` the user's pace, return the window: never more
    than the episodes there are, never fewer than one while there is one.
    """
    available = len(runtimes_seconds)
    if available == 0 or not spec.wanted:
        return Window(0, f"no episode of {show} after where {user} is")
    if spec.seconds is not None:
        count, covered = _covering(spec.seconds, runtimes_seconds)
        return Window(count, f"the next {count} episode{'s' * (count != 1)} of {show} cover "
                             f"{_hours(covered)} of viewing (ahead: {_hours(spec.seconds)})")
    if spec.auto:
        if user_pace is None:
            return Window(1, f"{user} has no finished play in {PACE_DAYS} days → 1 ahead")
        wanted = math.ceil(user_pace.episodes_per_day * spec.horizon_seconds / DAY_SECONDS)
        count = max(1, min(wanted, spec.max_episodes, available))
        of = f"of {show}" if user_pace.scope == "this show" else "across all shows"
        return Window(count, f"{user} watches {user_pace.episodes_per_day:.1f} episodes/day {of}"
                             f" → {count} ahead")
    count = min(spec.episodes, available)
    return Window(count, f"episodes_ahead: {spec.episodes} → {count} ahead")


def _covering(seconds: float, runtimes_seconds: Sequence[float | None]) -> tuple[int, float]:
    """The fewest next episodes (at least one) whose runtime reaches `seconds`, and that
    runtime; all of them if they never do."""
    known = [r for r in runtimes_seconds if r]
    typical = sorted(known)[len(known) // 2] if known else DEFAULT_RUNTIME_SECONDS
    covered = 0.0
    for count, runtime in enumerate(runtimes_seconds, start=1):
        covered += runtime or typical
        if covered >= seconds:
            return count, covered
    return len(runtimes_seconds), covered


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
