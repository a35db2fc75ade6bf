"""Who counts as a user this cycle, and with which tokens.

The owner, Plex Home users and friends come from plex.tv (one users request, one
shared_servers request for every server token); only those this server is shared with
count. `plex.user_tokens` in the rules file supplies tokens plex.tv does not hand out.
Home users' plex.tv tokens (from switching) are kept across cycles in the state
directory; a service keeps the users it resolved in memory for its frequent rounds. A
friend with no token is a warning, not a failure. Users without activity (a finished or
partial play, or a live session) for `users.inactive_after` are left out.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cacherr.sources.plex import PlexAdapter, SourceError
from cacherr.sources.types import HistoryEntry, Item, Session, SharedUser, User

log = logging.getLogger(__name__)

TOKENS_FILE = "plex-home-tokens.json"
SERVER_TOKEN_RETRY_SECONDS = 86400.0


class TokenStore:
    """Home users' plex.tv and server tokens, by plex.tv id, in a 0600 JSON file.
    `persist=False` (plan) reads the file but never writes it."""

    def __init__(self, state_dir: Path, *, persist: bool = True) -> None:
        self.path = Path(state_dir) / TOKENS_FILE
        self.persist = persist
        try:
            self.tokens: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.tokens = {}
        self.changed = False

    def get(self, user_id: int) -> dict:
        return self.tokens.get(str(user_id), {})

    def put(self, user_id: int, **tokens: str | None) -> None:
        entry = self.tokens.setdefault(str(user_id), {})
        for key, value in tokens.items():
            if value and entry.get(key) != value:
                entry[key] = value
                self.changed = True

    def drop(self, user_id: int) -> None:
        if self.tokens.pop(str(user_id), None) is not None:
            self.changed = True

    def save(self) -> None:
        if not self.changed or not self.persist:
            return
        _write_private(self.path, self.tokens)
        self.changed = False


def _write_private(path: Path, data) -> None:
    """Write JSON atomically, readable by the owner only (it holds tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class UsersMemory:
    """The users of the last successful resolution, kept in memory (never on disk: they
    carry tokens) for frequent rounds of a long-running service to reuse."""

    def __init__(self) -> None:
        self._saved: tuple[str, float, list[User]] | None = None

    def save(self, users: list[User], key: str, now: float) -> None:
        self._saved = (key, now, list(users))

    def load(self, key: str, now: float, max_age_seconds: float) -> list[User] | None:
        """The users saved with the same config `key`, if younger than max_age."""
        if self._saved is None:
            return None
        saved_key, saved_at, users = self._saved
        if saved_key != key or now - saved_at > max_age_seconds:
            return None
        return list(users)


@dataclass
class UserResolution:
    users: list[User] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    inactive: list[str] = field(default_factory=list)


def included(user: User, include: tuple[str, ...] | None, exclude: tuple[str, ...]) -> bool:
    """users.include (None = all) and users.exclude, by username or title, any case."""
    if any(user.matches(name) for name in exclude):
        return False
    return include is None or any(user.matches(name) for name in include)


def on_this_server(shared: SharedUser, machine_identifier: str) -> bool:
    """plex.tv lists everyone the owner shares any server with: only those this server is
    shared with are its users (the owner always is)."""
    return shared.user.kind == "owner" or machine_identifier in shared.servers


def latest_activity(user: User, plays: Iterable[HistoryEntry], deck: Iterable[Item],
                    sessions: Iterable[Session], now: float) -> float | None:
    """When the user was last seen watching: the latest of a finished play (history), a
    partial one (On Deck / Continue Watching `lastViewedAt`: Plex writes no history row
    for an unfinished play) and a live session (now). None: never."""
    times = [p.viewed_at for p in plays if p.account_id == user.account_id]
    times += [i.last_viewed_at for i in deck if i.last_viewed_at is not None]
    if any(s.account_id == user.account_id or (s.account_id is None and user.matches(s.user_name))
           for s in sessions):
        times.append(now)
    return max(times, default=None)


def resolve_users(plex: PlexAdapter, users_config, plex_config, store: TokenStore, now: float,
                  *, need_account_tokens: bool, deck_sections=None) -> UserResolution:
    """Given the adapter and the `users`/`plex` config, return the users of this cycle.

    plex.tv failing leaves the owner alone (and `plextv` failed: the planner keeps what
    the others had cached). `need_account_tokens`: a watchlist rule needs Home users'
    plex.tv tokens (a switch, kept across cycles). `deck_sections`: the libraries On Deck
    is read for (so the activity check and the rules share one request per user).
    """
    result = UserResolution()
    manual = {name.casefold(): token for name, token in (plex_config.user_tokens or {}).items()}
    try:
        found = plex.plex_users()
    except SourceError as error:
        result.failures[error.source] = error.message
        found = [SharedUser(User(name="owner", id=0, kind="owner", token=plex.token,
                                 account_token=plex.token), ())]
    machine = plex.machine_identifier
    for shared in found:
        user = shared.user
        if not on_this_server(shared, machine):
            log.debug("plex.tv user %s has no share of this server: not a user here", user.name)
            continue
        if not included(user, users_config.include, users_config.exclude):
            continue
        token = manual.get(user.name.casefold()) or manual.get((user.username or "").casefold())
        user = replace(user, token=token or user.token)
        if user.kind == "home":
            user = _home_tokens(plex, user, store, result, need_account_tokens, now)
        if user.token is None and user.kind == "friend":
            result.warnings.append(
                f"plex.tv gives no server token for {user.name}: their On Deck comes from the "
                f"owner's view of their history and sessions; add it to plex.user_tokens for more")
        result.users.append(user)
    if users_config.inactive_after_seconds:
        result.users = _active(plex, result, now, now - users_config.inactive_after_seconds, deck_sections)
        if not result.users and result.inactive:
            result.warnings.append(
                f"no user watched anything within users.inactive_after "
                f"({_days(users_config.inactive_after_seconds)}): every user ({', '.join(result.inactive)}) "
                f"is left out and user-based rules select nothing")
    return result


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds:g}s"


def _home_tokens(plex: PlexAdapter, user: User, store: TokenStore, result: UserResolution,
                 need_account_tokens: bool, now: float) -> User:
    """A Home user's tokens: kept ones first; a switch only for a missing plex.tv token; a
    server token plex.tv does not have is asked for again only once a day."""
    kept = store.get(user.id)
    account_token = kept.get("account_token")
    token = user.token or kept.get("server_token")
    asked = float(kept.get("no_server_token_at") or 0)
    try:
        if account_token is None and (need_account_tokens or token is None):
            account_token = plex.switch_home_user(user)
            store.put(user.id, account_token=account_token)
        if token is None and account_token is not None and now - asked >= SERVER_TOKEN_RETRY_SECONDS:
            token = plex.server_token_for(account_token)
            if token is None:
                store.put(user.id, no_server_token_at=now)
                result.warnings.append(f"plex.tv gives no server token for Home user {user.name}; "
                                       f"asking again in a day")
        store.put(user.id, server_token=token)
    except SourceError as error:
        result.failures[f"user:{user.name}"] = f"switching to Home user failed: {error.message}"
    return replace(user, token=token, account_token=account_token)


def _active(plex: PlexAdapter, result: UserResolution, now: float, since: float,
            deck_sections) -> list[User]:
    """Users seen watching since `since` (`latest_activity`): one history request for
    everyone, the round's sessions, and On Deck only for those the two did not show."""
    try:
        plays = plex.history(since=since)
    except SourceError as error:
        result.failures[error.source] = error.message
        return result.users
    try:
        sessions = plex.sessions()
    except SourceError:
        sessions = []  # the round reports it when it reads the sessions for itself
    active = []
    for user in result.users:
        latest = latest_activity(user, plays, (), sessions, now)
        if (latest is None or latest < since) and user.token is not None:
            try:
                deck = plex.on_deck(user.token, deck_sections)
            except SourceError:
                deck = None
            latest = now if deck is None else latest_activity(user, plays, deck, sessions, now)
        if latest is not None and latest >= since:
            active.append(user)
        else:
            result.inactive.append(user.name)
    if result.inactive:
        log.info("users without activity since %s left out: %s",
                 time.strftime("%Y-%m-%d", time.localtime(since)), ", ".join(result.inactive))
    return active
