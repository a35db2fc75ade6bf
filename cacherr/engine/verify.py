"""`verify: checksum`: re-read the copy from the disk, segment by segment, beside the copy.

As soon as a segment of the target is written, it is made durable (fdatasync), dropped
from the page cache (posix_fadvise DONTNEED) and re-read by a thread that hashes it block
by block; the copy goes on meanwhile. So the re-read costs little extra time, and what is
compared is what the disk returns, not what sits in memory.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

SEGMENT_BYTES = 16 * 1024 * 1024


class OverlappedVerifier:
    """Re-read `path` (the temporary copy being written through `target_fd`) in blocks."""

    def __init__(
        self,
        path: Path,
        target_fd: int,
        block_size_bytes: int,
        checkpoint: Callable[[str], None],
        segment_bytes: int = SEGMENT_BYTES,
    ):
        self._target_fd = target_fd
        self._block = block_size_bytes
        self._segment = max(1, segment_bytes // block_size_bytes) * block_size_bytes
        self._checkpoint = checkpoint
        self._queued_to = 0
        self._digests: dict[int, bytes] = {}
        self._error: BaseException | None = None
        self._ranges: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._reader = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        os.posix_fadvise(self._reader, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._thread = threading.Thread(target=self._run, name="cacherr-verify", daemon=True)
        self._thread.start()

    def written(self, done: int) -> None:
        """The copy has written `done` bytes; hand every complete segment to the re-reader."""
        if done - self._queued_to >= self._segment:
            self._queue(done - (done - self._queued_to) % self._segment)

    def finish(self, total: int) -> list[bytes]:
        """After the final fsync: re-read the rest, wait; return the block digests in order."""
        self._queue(total)
        self._stop()
        if self._error is not None:
            raise self._error
        return [self._digests[index] for index in range(-(-total // self._block))]

    def _queue(self, end: int) -> None:
        if end > self._queued_to:
            start, self._queued_to = self._queued_to, end
            self._ranges.put((start, end))

    def _run(self) -> None:
        buffer = bytearray(self._block)
        try:
            with memoryview(buffer) as view:
                while (item := self._ranges.get()) is not None:
                    start, end = item
                    # Flush here, not in the copying thread, so the copy never waits for the
                    # disk; then the range's pages are clean and DONTNEED really drops them.
                    os.fdatasync(self._target_fd)
                    os.posix_fadvise(self._reader, start, end - start, os.POSIX_FADV_DONTNEED)
                    for offset in range(start, end, self._block):
                        length = min(self._block, end - offset)
                        filled = 0
                        while filled < length:
                            got = os.preadv(self._reader, [view[filled:length]], offset + filled)
                            if got == 0:
                                raise OSError(
                                    f"{offset + filled}: the copy is shorter than written"
                                )
                            filled += got
                        self._digests[offset // self._block] = hashlib.sha256(
                            view[:length]
                        ).digest()
                        self._checkpoint("verify-chunk")
                    os.posix_fadvise(self._reader, start, end - start, os.POSIX_FADV_DONTNEED)
        except BaseException as error:  # re-raised in the copying thread by finish()
            self._error = error
            while self._ranges.get() is not None:
                pass

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._ranges.put(None)
            self._thread.join()

    def close(self) -> None:
        self._stop()
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def __enter__(self) -> OverlappedVerifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
