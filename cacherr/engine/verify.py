"""`verify: checksum`: re-read the copy from the disk, segment by segment, beside the copy.

As soon as a segment of the target is written, it is made durable (fdatasync), dropped
from the page cache (posix_fadvise DONTNEED) and re-read by a thread, whose blocks worker
threads hash; the copy goes on meanwhile. So the re-read costs little extra time, and what
is compared is what the disk returns, not what sits in memory.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from cacherr.engine.hashing import BackgroundHasher

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
        # Blocks are read in order by one thread and hashed by the hasher's workers.
        self._hasher = BackgroundHasher(block_size_bytes)
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
        digests = self._hasher.block_digests()
        if len(digests) != -(-total // self._block):
            raise OSError(f"re-read {len(digests)} blocks of {-(-total // self._block)}")
        return digests

    def _queue(self, end: int) -> None:
        if end > self._queued_to:
            start, self._queued_to = self._queued_to, end
            self._ranges.put((start, end))

    def _run(self) -> None:
        try:
            while (item := self._ranges.get()) is not None:
                start, end = item
                # Flush here, not in the copying thread, so the copy never waits for the
                # disk; then the range's pages are clean and DONTNEED really drops them.
                os.fdatasync(self._target_fd)
                os.posix_fadvise(self._reader, start, end - start, os.POSIX_FADV_DONTNEED)
                for offset in range(start, end, self._block):
                    buffer = self._hasher.take()
                    length = min(self._block, end - offset)
                    self._read_exactly(buffer, length, offset)
                    self._hasher.submit(buffer, length)
                    self._checkpoint("verify-chunk")
                os.posix_fadvise(self._reader, start, end - start, os.POSIX_FADV_DONTNEED)
        except BaseException as error:  # re-raised in the copying thread by finish()
            self._error = error
            while self._ranges.get() is not None:
                pass

    def _read_exactly(self, buffer: bytearray, length: int, offset: int) -> None:
        with memoryview(buffer) as view:
            filled = 0
            while filled < length:
                got = os.preadv(self._reader, [view[filled:length]], offset + filled)
                if got == 0:
                    raise OSError(f"{offset + filled}: the copy is shorter than what was written")
                filled += got

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._ranges.put(None)
            self._thread.join()

    def close(self) -> None:
        self._stop()
        self._hasher.__exit__(None, None, None)
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def __enter__(self) -> OverlappedVerifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
