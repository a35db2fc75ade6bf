"""Checksums computed beside the copy, in worker threads, so hashing overlaps the I/O.

The file is hashed in fixed-size blocks (the chunk size), each block's SHA-256 on any free
worker (hashlib releases the GIL on large buffers, so two cores hash two blocks at once);
the digest of a file is the SHA-256 of its block digests in order. The copy and the re-read
of the target use the same block size, so equal files give equal digests, and any changed
byte changes its block's digest.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading


def _worker_count() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class BackgroundHasher:
    """A pool of block buffers; `take()` one, fill it, `submit()` it; `hexdigest()` at the end.

    Use as a context manager so the workers always stop, even when the copy fails.
    """

    def __init__(self, block_size_bytes: int, workers: int | None = None):
        self._workers = workers or _worker_count()
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(2 * self._workers + 2):
            self._free.put(bytearray(block_size_bytes))
        self._work: queue.Queue[tuple[int, bytearray, int] | None] = queue.Queue()
        self._digests: dict[int, bytes] = {}
        self._submitted = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"cacherr-hash-{n}", daemon=True)
            for n in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            index, buffer, length = item
            with memoryview(buffer) as view:
                self._digests[index] = hashlib.sha256(view[:length]).digest()
            self._free.put(buffer)

    def take(self) -> bytearray:
        """A free buffer (waits while all of them are being hashed)."""
        return self._free.get()

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer that was not submitted."""
        self._free.put(buffer)

    def submit(self, buffer: bytearray, length: int) -> None:
        """Hash the next block, the first `length` bytes of `buffer`; do not touch it after."""
        self._work.put((self._submitted, buffer, length))
        self._submitted += 1

    def block_digests(self) -> list[bytes]:
        """Wait for every block; return their digests in order."""
        self._stop()
        return [self._digests[index] for index in range(self._submitted)]

    def hexdigest(self) -> str:
        """Wait for every block; return the digest of the whole file."""
        return hashlib.sha256(b"".join(self.block_digests())).hexdigest()

    def _stop(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> BackgroundHasher:
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop()


def read_block(fd: int, buffer: bytearray) -> int:
    """Fill `buffer` from `fd` (short reads retried); return the bytes read, < len at EOF."""
    with memoryview(buffer) as view:
        filled = 0
        while filled < len(buffer):
            length = os.readv(fd, [view[filled:]])
            if length == 0:
                break
            filled += length
        return filled
