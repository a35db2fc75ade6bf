"""make_plan: (wanted set, ledger, space, sessions, failures) → Plan. Pure: no I/O.

Keep rules decide what stays; space only adds. The plan:
1. evicts what no rule keeps any more (`released`), except files in a live session;
2. orders everything that may be on the fast branch — live files first, then what a
   failed source selected (evicted last), then by priority, files already there before
   newcomers on ties — and keeps the longest prefix that fits: files already there up to
   the budget, newcomers up to a margin below it (hysteresis). When others pushed the
   pool over its budget, files already there also go down to the margin (`pressure`), so
   one new file does not evict one old file every cycle. Once a file already there does
   not fit, it and every later one leave (`displaced` by higher priorities, or
   `pressure`), so a higher priority is never evicted while a lower one stays. Newcomers
   that fit are cached (or adopted when already on the fast branch); one that does not
   fit is skipped and smaller ones after it still get their chance.
3. A file evicted for space is not cached again for a cool-down, so it cannot come
   straight back into the room its own eviction left. With that, planning again after
   carrying out a plan gives no action.
4. Viewing queues (one user's look-ahead in one show) stay contiguous. Among files of one
   priority, earlier queue positions come first, so pressure takes the far ends of every
   queue before anything nearer the viewer; and once a position cannot be on the fast
   branch (no room, too large, cooling down), the later positions of that queue leave or
   are skipped too, even if they would fit: a gap would only be filled, and emptied,
   again by the next cycle, and the viewer reaches the gap first anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from cacherr.planner.keep import rule_keeps, wanted_and_kept
from cacherr.planner.model import UNQUEUED_POSITION, Plan, PlanInput, PlannedAction, Want
from cacherr.state.ledger import Attribution, CachedFile


@dataclass(slots=True)
class _Entry:
    """A file that may be on the fast branch after this plan."""

    relative_path: str
    size_bytes: int
    priority: int
    rules: tuple[str, ...]
    users: tuple[str, ...]
    incumbent: bool  # in the ledger now
    live: bool = False
    protected: bool = False  # kept only because its source failed, within the grace
    adopt: bool = False  # a newcomer already on the fast branch
    uses_disk: bool = True  # False for adopted files: they stay on disk either way
    queues: dict[str, int] = field(default_factory=dict)  # queue → position in it
    # Some rule wants it outside any queue (a movie, a pinned file): no cut holds it back.
    free_standing: bool = True
    # The queues its leaving cuts: those of rules that would want it back as a newcomer
    # (a file whose keep ran out leaves no gap: its position is simply no longer wanted).
    cuts: dict[str, int] = field(default_factory=dict)
    left_off: str = ""  # a newcomer that cannot come (cooldown, too_large): it cuts its queues

    @property
    def position(self) -> int:
        return min(self.queues.values(), default=UNQUEUED_POSITION)

    def order(self) -> tuple:
        return (not self.live, not self.protected, -self.priority, self.position,
                not self.incumbent, self.relative_path)


class _Queues:
    """Where each viewing queue was cut: the first position that is not on the fast
    branch. A file is held back by the cuts only when every queue it belongs to was cut
    before its position (one user's far end may be another's next episode)."""

    def __init__(self) -> None:
        self._cut: dict[str, int] = {}

    def cut(self, entry: _Entry) -> None:
        for queue, position in entry.cuts.items():
            self._cut[queue] = min(self._cut.get(queue, position), position)

    def beyond_a_cut(self, entry: _Entry) -> bool:
        if entry.free_standing or entry.live or entry.protected:
            return False
        return all(queue in self._cut and self._cut[queue] < position
                   for queue, position in entry.queues.items())


def _newcomer_keeps(plan_input: PlanInput, rule_name: str, path: str,
                    by_rule: dict[str, list[Attribution]]) -> bool:
    rule = plan_input.rules.get(rule_name)
    if rule is None:
        return False
    if rule.keep.for_seconds is None:
        return True  # only `for: D` stops wanting a file it still selects
    return wanted_and_kept(rule, path, by_rule.get(rule_name, ()), plan_input)


@dataclass
class _Capacity:
    usage_high: int  # max_size
    disk_high: int  # what cacherr's own copies may take on disk above min_free
    margin: int

    def fits(self, usage: int, disk: int, low: bool) -> bool:
        margin = self.margin if low else 0
        return usage <= self.usage_high - margin and disk <= self.disk_high - margin


def _group_wants(wants: Iterable[Want]) -> dict[str, dict[str, Want]]:
    """path → rule → one Want (users merged, highest priority, largest size, each queue
    at its nearest position)."""
    grouped: dict[str, dict[str, Want]] = defaultdict(dict)
    for want in wants:
        previous = grouped[want.relative_path].get(want.rule)
        if previous is not None:
            want = Want(want.relative_path, max(want.size_bytes, previous.size_bytes), want.rule,
                        want.users | previous.users, max(want.priority, previous.priority),
                        tuple(sorted(_queues_of([want, previous]).items())))
        grouped[want.relative_path][want.rule] = want
    return grouped


def _queues_of(wants: Iterable[Want]) -> dict[str, int]:
    queues: dict[str, int] = {}
    for want in wants:
        for queue, position in want.queues:
            queues[queue] = min(queues.get(queue, position), position)
    return queues


def _group_attributions(rows: Iterable[Attribution]) -> dict[str, dict[str, list[Attribution]]]:
    grouped: dict[str, dict[str, list[Attribution]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row.relative_path][row.rule].append(row)
    return grouped


def make_plan(plan_input: PlanInput) -> Plan:
    """Given the planner's input, return the Plan; the same input always gives the same
    Plan, whatever the order of its sequences."""
    wants = _group_wants(plan_input.wants)
    attributions = _group_attributions(plan_input.attributions)
    cached = {entry.relative_path: entry for entry in plan_input.cached}
    held = {path for path, until in plan_input.holds.items() if until > plan_input.now}
    total = plan_input.space.total_bytes
    max_bytes = plan_input.max_size.bytes_of(total)
    min_free_bytes = plan_input.min_free.bytes_of(total)
    own_disk = sum(entry.fast.size_bytes for entry in cached.values() if entry.kind != "adopted")
    capacity = _Capacity(
        usage_high=max_bytes - plan_input.reserved_bytes,
        disk_high=plan_input.space.free_bytes + own_disk - min_free_bytes,
        margin=int(max_bytes * plan_input.margin_fraction),
    )
    evictions: list[PlannedAction] = []
    skips: list[PlannedAction] = []

    # 1. What no rule keeps any more leaves, unless someone is playing it.
    entries: list[_Entry] = []
    for path in sorted(cached):
        entry = _incumbent(plan_input, cached[path], wants.get(path, {}),
                           attributions.get(path, {}), held)
        if entry.rules:
            entries.append(entry)
            continue
        rules = tuple(sorted(attributions.get(path, {})))
        users = _users(row.user for rows in attributions.get(path, {}).values() for row in rows)
        if path in plan_input.live:
            skips.append(PlannedAction("skip", path, entry.size_bytes, 0, rules, users,
                                       "in_session"))
            entries.append(_Entry(path, entry.size_bytes, 0, rules, users, True, live=True,
                                  uses_disk=entry.uses_disk))
        else:
            evictions.append(PlannedAction("evict", path, entry.size_bytes, 0, rules, users,
                                           "released"))

    # 2. Newcomers: wanted, still within their rules' keep, not held, able to fit at all.
    for path in sorted(wants):
        if path in cached:
            continue
        newcomer = _newcomer(plan_input, path, wants[path], attributions.get(path, {}))
        if newcomer is None:
            continue
        evicted_at = plan_input.evicted_for_space.get(path)
        if path in held:
            skips.append(_skip(newcomer, "held"))
        elif evicted_at is not None and plan_input.now - evicted_at < plan_input.cooldown_seconds:
            newcomer.left_off = "cooldown"
            entries.append(newcomer)
        elif newcomer.uses_disk and not capacity.fits(newcomer.size_bytes, newcomer.size_bytes,
                                                      low=True):
            newcomer.left_off = "too_large"
            entries.append(newcomer)
        else:
            entries.append(newcomer)

    # 3. The longest prefix that fits; a newcomer left off cuts its queues where it stands.
    entries.sort(key=_Entry.order)
    queues = _Queues()
    incumbents = [e for e in entries if e.incumbent]
    pressure = not capacity.fits(sum(e.size_bytes for e in incumbents),
                                 sum(e.size_bytes for e in incumbents if e.uses_disk), low=False)
    usage = disk = 0
    incumbents_cut = False
    additions: list[PlannedAction] = []
    for entry in entries:
        if entry.left_off:
            skips.append(_skip(entry, entry.left_off))
            queues.cut(entry)
            continue
        size_on_disk = entry.size_bytes if entry.uses_disk else 0
        fits = capacity.fits(usage + entry.size_bytes, disk + size_on_disk,
                             low=pressure or not entry.incumbent)
        beyond_a_cut = queues.beyond_a_cut(entry)
        if entry.live or (fits and not beyond_a_cut and
                          not (entry.incumbent and incumbents_cut)):
            usage += entry.size_bytes
            disk += size_on_disk
            if not entry.incumbent:
                kind = "adopt" if entry.adopt else "cache"
                additions.append(PlannedAction(kind, entry.relative_path, entry.size_bytes,
                                               entry.priority, entry.rules, entry.users))
            continue
        queues.cut(entry)
        if entry.incumbent:
            # Leaving only to keep its queue contiguous says nothing about room for the
            # files after it, so it does not cut the other incumbents.
            incumbents_cut = incumbents_cut or not beyond_a_cut
            evictions.append(PlannedAction("evict", entry.relative_path, entry.size_bytes,
                                           entry.priority, entry.rules, entry.users,
                                           "pressure" if pressure else "displaced"))
        else:
            skips.append(_skip(entry, "no_space"))

    adopts = [a for a in additions if a.kind == "adopt"]
    caches = [a for a in additions if a.kind == "cache"]
    actions = tuple(evictions + adopts + caches + skips)
    used_now = sum(entry.fast.size_bytes for entry in cached.values())
    return Plan(
        actions=actions,
        budget_bytes=max(0, min(capacity.usage_high, capacity.disk_high)),
        used_bytes=used_now,
        add_bytes=sum(a.size_bytes for a in caches),
        free_bytes=sum(a.size_bytes for a in evictions if cached[a.relative_path].kind != "adopted"),
    )


def _users(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({name for name in names if name}))


def _skip(entry: _Entry, reason: str) -> PlannedAction:
    return PlannedAction("skip", entry.relative_path, entry.size_bytes, entry.priority,
                         entry.rules, entry.users, reason)


def _incumbent(plan_input: PlanInput, cached: CachedFile, wants: dict[str, Want],
               by_rule: dict[str, list[Attribution]], held: set[str]) -> _Entry:
    """A ledger entry with the rules that still keep it (none: it is released)."""
    path = cached.relative_path
    keeping: list[str] = []
    protected = True
    if path not in held:
        for name in sorted(set(by_rule) | set(wants)):
            rule = plan_input.rules.get(name)
            if rule_keeps(rule, path, by_rule.get(name, []), name in wants, plan_input):
                keeping.append(name)
                failing = name in plan_input.failed_rules and name in plan_input.evaluated_rules
                protected = protected and failing
    priority = max((wants[name].priority if name in wants else plan_input.rules[name].priority
                    for name in keeping), default=0)
    users = _users(user for name in keeping for user in
                   (wants[name].users if name in wants else
                    (row.user for row in by_rule.get(name, []))))
    return _Entry(path, cached.fast.size_bytes, priority, tuple(keeping), users, True,
                  live=path in plan_input.live, protected=bool(keeping) and protected,
                  uses_disk=cached.kind != "adopted",
                  queues=_queues_of(wants[name] for name in keeping if name in wants),
                  free_standing=any(name not in wants or not wants[name].queues
                                    for name in keeping),
                  cuts=_queues_of(wants[name] for name in keeping if name in wants and
                                  _newcomer_keeps(plan_input, name, path, by_rule)))


def _newcomer(plan_input: PlanInput, path: str, wants: dict[str, Want],
              by_rule: dict[str, list[Attribution]]) -> _Entry | None:
    if len(wants) == 1:
        name, want = next(iter(wants.items()))
        if not _newcomer_keeps(plan_input, name, path, by_rule):
            return None
        adopt = path in plan_input.on_fast
        return _Entry(path, want.size_bytes, want.priority, (name,), tuple(sorted(want.users)),
                      False, adopt=adopt, uses_disk=not adopt, queues=_queues_of([want]),
                      free_standing=not want.queues, cuts=_queues_of([want]))
    rules = [name for name in sorted(wants) if _newcomer_keeps(plan_input, name, path, by_rule)]
    if not rules:
        return None
    adopt = path in plan_input.on_fast
    return _Entry(
        relative_path=path,
        size_bytes=max(wants[name].size_bytes for name in rules),
        priority=max(wants[name].priority for name in rules),
        rules=tuple(rules),
        users=_users(user for name in rules for user in wants[name].users),
        incumbent=False,
        adopt=adopt,
        uses_disk=not adopt,
        queues=_queues_of(wants[name] for name in rules),
        free_standing=any(not wants[name].queues for name in rules),
        cuts=_queues_of(wants[name] for name in rules),
    )
