"""Value conversions shared by the .env and plexcache_settings.json converters."""

from __future__ import annotations

import re

from cacherr.migrate.draft import Draft, RuleDraft

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}
_SECRET_NAME = re.compile(r"token|secret|password|passwd|api_?key|webhook_?url|rss_?url",
                          re.IGNORECASE)
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B?|%)?\s*$", re.IGNORECASE)
_UNITS = {"": "GB", "b": "B", "k": "KB", "kb": "KB", "m": "MB", "mb": "MB", "g": "GB",
          "gb": "GB", "t": "TB", "tb": "TB", "kib": "KiB", "mib": "MiB", "gib": "GiB",
          "tib": "TiB", "%": "%"}


class NotConvertible(ValueError):
    """A value of a known setting that has no meaning here (listed, with this reason)."""


def is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NotConvertible("not a yes/no value")


def to_int(value: object, low: int = 0, high: int | None = None) -> int:
    """Given a whole number (or its text), return it; raise NotConvertible if out of range."""
    try:
        number = int(float(str(value).strip())) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise NotConvertible(f"not a whole number in {bounds}")
    return number


def to_size(value: object) -> str:
    """'500GB', '75%', '1.5T', 500 (GB) -> a cacherr size; raise NotConvertible."""
    match = _SIZE.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise NotConvertible("not a size such as 500GB or 75%")
    unit = _UNITS.get((match.group(2) or "").lower())
    if unit is None:
        raise NotConvertible("not a size such as 500GB or 75%")
    if unit == "%" and not 0 < float(match.group(1)) <= 100:
        raise NotConvertible("a percentage must be between 0 and 100")
    return f"{match.group(1)}{unit}"


def normalise_plex_url(url: str) -> str:
    """'192.168.1.5:32400' -> 'http://192.168.1.5:32400'; raise NotConvertible if empty."""
    url = url.strip().rstrip("/")
    if not url:
        raise NotConvertible("empty")
    if not re.match(r"^https?://", url):
        url = "http://" + url
    if not re.match(r"^https?://[^\s/]+", url):
        raise NotConvertible("not a URL")
    return url


def ondeck_rule(days: int | None = None, episodes: int | None = None,
                keep_hours: int | None = None, keep_setting: str = "") -> RuleDraft:
    """The On Deck rule, with what an older tool's settings say: days to look back,
    episodes ahead, and hours to keep (named after `keep_setting` in a comment)."""
    rule = RuleDraft("continue-watching", "ondeck", 80, keep={"while": "selected", "min": "24h"})
    if days:
        rule.options["within"] = f"{days}d"
    if episodes is not None:
        rule.options["episodes_ahead"] = episodes
    if keep_hours is not None:
        rule.keep = {"while": "selected", "min": f"{keep_hours}h"}
        rule.comment = f"keep: min from {keep_setting}"
    return rule


def watchlist_rule() -> RuleDraft:
    return RuleDraft("watchlists", "watchlist", 50, keep={"while": "selected"})


def starter_rules() -> list[RuleDraft]:
    """The rules of a plain `cacherr init`: On Deck, what is playing, watchlists."""
    ondeck = ondeck_rule()
    ondeck.options = {"within": "14d", "episodes_ahead": 3}
    playing = RuleDraft("now-playing", "playing", 90, options={"episodes_ahead": 2},
                        keep={"until": "watched", "grace": "48h"})
    watchlists = watchlist_rule()
    watchlists.keep = {"for": "14d"}
    return [ondeck, playing, watchlists]


def set_fast(draft: Draft, fast: str, origin: str) -> None:
    """Use `fast` as the union's fast branch when it is a pool path on this host's /mnt."""
    fast = fast.rstrip("/") or "/"
    if re.match(r"^/mnt/[^/]+$", fast) and fast not in ("/mnt/user", "/mnt/user0"):
        draft.union_fast, draft.union_fast_comment = fast, f"from {origin}"
    else:
        draft.union_fast_comment = (f"{origin} was {fast}, not a pool at /mnt/<pool>: "
                                    "name your pool here")
    draft.state_dir = f"{draft.union_fast}/appdata/cacherr"
    draft.state_dir_comment = "on the pool: persistent, local, never the flash drive"


class Settings:
    """Hands out another tool's settings, remembers which were used, and records in the
    draft the ones that cannot be converted (so nothing is dropped silently).
    `fold_case`: keys match case-insensitively (JSON settings); the draft names each
    setting as its file wrote it."""

    def __init__(self, values, draft: Draft, *, fold_case: bool = False):
        self._fold = str.lower if fold_case else str
        self.values = dict(values)
        self.data = {self._fold(key): (key, value) for key, value in values.items()}
        self.draft, self.used = draft, set()

    def has(self, key: str) -> bool:
        entry = self.data.get(self._fold(key))
        return entry is not None and str(entry[1]).strip() != ""

    def raw(self, key: str):
        folded = self._fold(key)
        if folded not in self.data:
            return None
        self.used.add(folded)
        return self.data[folded][1]

    def get(self, key: str, convert=None, *args):
        value = self.raw(key)
        if value is None or convert is None:
            return value
        try:
            return convert(value, *args)
        except NotConvertible as error:
            self.draft.skip(self.data[self._fold(key)][0], value, str(error),
                            secret=is_secret(key))
            return None

    def skip(self, key: str, reason: str) -> None:
        folded = self._fold(key)
        if folded in self.data and folded not in self.used:
            self.used.add(folded)
            name, value = self.data[folded]
            self.draft.skip_unless_empty(name, value, reason, secret=is_secret(key))
