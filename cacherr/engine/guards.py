"""What holds or paces a transfer: the Unraid guards (invariant 7), one transfer per slow
branch at a time, and idle I/O priority for the copying thread (invariant 6)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from cacherr.config.model import HostConfig
from cacherr.engine.errors import Cancelled, Held, Refused
from cacherr.host import unraid

log = logging.getLogger(__name__)

WAIT_CHECK_SECONDS = 0.2  # how often a thread waiting for a busy branch looks at `cancel`


def require_not_held(host: HostConfig | None, relative_path: str) -> None:
    """Raise Held if the Unraid mover or a parity check runs; an unknown guard (its files
    are not visible here) does not hold: the service reports it on /health instead."""
    if host is None:
        return
    if unraid.mover_running(host):
        raise Held(relative_path, "mover_running")
    if unraid.parity_check_running(host):
        raise Held(relative_path, "parity_check")


class BranchLocks:
    """One transfer per slow branch at a time, across every engine and thread that shares
    this object. `on_wait(branch)` is called when a transfer has to wait (tests watch it)."""

    def __init__(self, on_wait: Callable[[str], None] | None = None):
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self.on_wait = on_wait

    @contextlib.contextmanager
    def held(self, branch: str | Path, cancel: threading.Event | None = None) -> Iterator[None]:
        """Hold `branch` for the body; wait while another transfer holds it (raise
        Cancelled if `cancel` is set meanwhile)."""
        key = os.path.normpath(str(branch))
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            log.info("waiting for the transfer on %s to finish (one per disk)", key)
            if self.on_wait is not None:
                self.on_wait(key)
            while not lock.acquire(timeout=WAIT_CHECK_SECONDS):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(key, "cancelled while waiting for the disk's other transfer")
        try:
            yield
        finally:
            lock.release()


class FileClaims:
    """At most one action per file at a time, across the engines sharing this object (two
    videos leaving together could otherwise both evict the poster they shared)."""

    def __init__(self):
        self._changed = threading.Condition()
        self._claimed: set[str] = set()

    @contextlib.contextmanager
    def claimed(
        self, relative_path: str, *, wait: bool = False, cancel: threading.Event | None = None
    ) -> Iterator[None]:
        """Hold `relative_path` for the body. If another action holds it: wait for it
        (`wait`; raise Cancelled if `cancel` is set meanwhile), else raise Refused."""
        with self._changed:
            while relative_path in self._claimed:
                if not wait:
                    raise Refused(relative_path, "another action on this file is running")
                if cancel is not None and cancel.is_set():
                    raise Cancelled(relative_path, "cancelled while another action ran on it")
                self._changed.wait(WAIT_CHECK_SECONDS)
            self._claimed.add(relative_path)
        try:
            yield
        finally:
            with self._changed:
                self._claimed.discard(relative_path)
                self._changed.notify_all()


# Engines are made one per thread by their callers; the branches they copy from are the
# same disks and the files the same ledger's, so by default they share these.
PROCESS_BRANCH_LOCKS = BranchLocks()
PROCESS_FILE_CLAIMS = FileClaims()

# ioprio_set / ioprio_get syscall numbers (include/uapi/asm-generic/unistd.h and the arch tables).
_IOPRIO_SYSCALLS = {
    "x86_64": (251, 252),
    "aarch64": (30, 31),
    "arm64": (30, 31),
    "riscv64": (30, 31),
    "i386": (289, 290),
    "i686": (289, 290),
    "armv7l": (314, 315),
    "ppc64le": (273, 274),
    "s390x": (282, 283),
}
_IOPRIO_WHO_PROCESS = 1  # with who = 0: the calling thread
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13


def _syscall() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall
    except (OSError, AttributeError):
        return None


def io_priority() -> int | None:
    """The calling thread's I/O priority value (class << 13 | data), or None if unknown."""
    numbers, syscall = _IOPRIO_SYSCALLS.get(platform.machine()), _syscall()
    if numbers is None or syscall is None:
        return None
    value = syscall(numbers[1], _IOPRIO_WHO_PROCESS, 0)
    return None if value < 0 else int(value)


def _set_io_priority(value: int) -> bool:
    numbers, syscall = _IOPRIO_SYSCALLS.get(platform.machine()), _syscall()
    if numbers is None or syscall is None:
        return False
    return syscall(numbers[0], _IOPRIO_WHO_PROCESS, 0, value) == 0


@contextlib.contextmanager
def idle_io_priority() -> Iterator[None]:
    """Run the body with the calling thread at idle I/O priority (threads it starts inherit
    it), then put the previous priority back; where the kernel refuses, carry on as is."""
    before = io_priority()
    changed = before is not None and _set_io_priority(IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
    try:
        yield
    finally:
        if changed:
            _set_io_priority(before)  # type: ignore[arg-type]
