"""Who counts as a user this cycle, and with which tokens.

The owner, Plex Home users and friends come from plex.tv (one users request, one
shared_servers request for every server token). `plex.user_tokens` in the rules file
supplies tokens plex.tv does not hand out. Home users' plex.tv tokens (from switching)
are kept across cycles in the state directory; a service keeps the users it resolved in
memory for its frequent rounds. A friend with no token is a warning, not
a failure. Users without activity for `users.inactive_after` are left out.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from cacherr.sources.plex import PlexAdapter, SourceError
from cacherr.sources.types import User

TOKENS_FILE = "plex-home-tokens.json"


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


def resolve_users(plex: PlexAdapter, users_config, plex_config, store: TokenStore, now: float,
                  *, need_account_tokens: bool) -> UserResolution:
    """Given the adapter and the `users`/`plex` config, return the users of this cycle.

    plex.tv failing leaves the owner alone (and `plextv` failed: the planner keeps what
    the others had cached). `need_account_tokens`: a watchlist rule needs Home users'
    plex.tv tokens (a switch, kept across cycles).
    """
    result = UserResolution()
    manual = {name.casefold(): token for name, token in (plex_config.user_tokens or {}).items()}
    try:
        found = plex.plex_users()
    except SourceError as error:
        result.failures[error.source] = error.message
        found = [User(name="owner", id=0, kind="owner", token=plex.token, account_token=plex.token)]
    for user in found:
        if not included(user, users_config.include, users_config.exclude):
            continue
        token = manual.get(user.name.casefold()) or manual.get((user.username or "").casefold())
        user = replace(user, token=token or user.token)
        if user.kind == "home":
            user = _home_tokens(plex, user, store, result, need_account_tokens)
        if user.token is None and user.kind == "friend":
            result.warnings.append(
                f"plex.tv gives no server token for {user.name}: their On Deck comes from the "
                f"owner's view of their history and sessions; add it to plex.user_tokens for more")
        result.users.append(user)
    if users_config.inactive_after_seconds:
        result.users = _active(plex, result, now - users_config.inactive_after_seconds)
    return result


def _home_tokens(plex: PlexAdapter, user: User, store: TokenStore, result: UserResolution,
                 need_account_tokens: bool) -> User:
    kept = store.get(user.id)
    account_token = kept.get("account_token")
    token = user.token or kept.get("server_token")
    if (account_token is None and need_account_tokens) or token is None:
        try:
            account_token = plex.switch_home_user(user)
            if token is None:
                token = plex.server_token_for(account_token)
            store.put(user.id, account_token=account_token, server_token=token)
        except SourceError as error:
            result.failures[f"user:{user.name}"] = f"switching to Home user failed: {error.message}"
    return replace(user, token=token, account_token=account_token)


def _active(plex: PlexAdapter, result: UserResolution, since: float) -> list[User]:
    """Users with a play since `since` (one history request per user, one row each)."""
    active = []
    for user in result.users:
        try:
            rows = plex.history(since=since, account_id=user.account_id, max_results=1)
        except SourceError as error:
            result.failures[error.source] = error.message
            active.append(user)
            continue
        if rows:
            active.append(user)
        else:
            result.inactive.append(user.name)
    return active
