"""The durable copy: a complete, verified, fsynced file appears at its final name, or none.

Order (invariant 1 and 3): write a hidden temporary name in the target folder; fsync;
verify; copy owner, mode, xattrs and times; fsync; check the source is unchanged; rename
into place without replacing anything; fsync the folder. Any failure removes the
temporary file and leaves the source alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.errors import Cancelled, CopyFailed, NoSpace, SourceChanged
from cacherr.engine.hashing import BackgroundHasher, read_block
from cacherr.engine.paths import fsync_folder, temp_path
from cacherr.engine.verify import SEGMENT_BYTES, OverlappedVerifier
from cacherr.state.ledger import FileIdentity

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
# A kernel copy that fails with one of these before any byte moved falls back to the next way.
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


@dataclass(frozen=True)
class CopyOptions:
    """How to copy: verification, chunking, and the hooks checked between chunks."""

    verify: str = "size"  # size | checksum
    chunk_size_bytes: int = DEFAULT_CHUNK_BYTES
    cancel: threading.Event | None = None
    progress: Callable[[int, int], None] | None = None  # (bytes done, bytes total)
    throttle: Callable[[int], None] | None = None  # called with each chunk's size (bandwidth)
    checkpoints: Checkpoints | None = None
    verify_segment_bytes: int = SEGMENT_BYTES  # checksum: how much is written before a re-read


@dataclass(frozen=True)
class CopyResult:
    target: FileIdentity
    source: FileIdentity
    sha256: str | None
    method: str  # copy_file_range | sendfile | read/write


def identity_of(st: os.stat_result) -> FileIdentity:
    return FileIdentity.of_stat(st)


def _renameat2(source: Path, target: Path, flags: int) -> int:
    """renameat2(2); return 0, or the errno."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags):
        return ctypes.get_errno()
    return 0


def rename_noreplace(source: Path, target: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing an existing target."""
    err = _renameat2(source, target, _RENAME_NOREPLACE)
    if err == 0:
        return
    if err not in (errno.EINVAL, errno.ENOSYS):
        raise OSError(err, os.strerror(err), str(source), None, str(target))
    # This file system has no RENAME_NOREPLACE: check, then rename (the window is tiny).
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "target exists", str(target))
    os.rename(source, target)


def rename_exchange(first: Path, second: Path) -> bool:
    """Atomically swap two names (renameat2 RENAME_EXCHANGE); return False, changing
    nothing, where the file system cannot (the caller then renames after a check)."""
    err = _renameat2(first, second, _RENAME_EXCHANGE)
    if err == 0:
        return True
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(first), None, str(second))


def durable_copy(
    source: Path,
    target: Path,
    expected: FileIdentity,
    options: CopyOptions,
    on_temp: Callable[[int], None] | None = None,
) -> CopyResult:
    """Given a source whose identity must be `expected` and a free target name, copy it.

    `on_temp(inode)` hears the temporary file's inode before any byte is written (the
    journal keeps it: the copy is told from anyone else's file by it). Return the
    identities of both (the target's measured after its rename) and the SHA-256 (verify:
    checksum). Raise SourceChanged if the source differs from `expected` (size, mtime,
    inode or ctime) before, during or after; NoSpace on ENOSPC; Cancelled if the cancel
    event is set; CopyFailed on any other I/O error or a failed verification. On any error
    the temporary file is gone and the target name is free.
    """
    checkpoint = options.checkpoints.reached if options.checkpoints else (lambda name: None)
    temporary = temp_path(target)
    try:
        source_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceChanged(source, "vanished before the copy") from None
    except OSError as error:
        raise CopyFailed(source, f"cannot open: {error.strerror}") from None
    target_fd = -1
    try:
        st = os.fstat(source_fd)
        if not expected.matches(identity_of(st)):
            raise SourceChanged(source, "size, mtime, ctime or inode changed before the copy")
        os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # a leftover of an aborted copy of this same file
        target_fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        checkpoint("temp-created")
        if on_temp is not None:
            on_temp(os.fstat(target_fd).st_ino)
        if options.verify == "checksum":
            method = "read/write"  # the bytes pass through user space to be hashed
            digest = _copy_verified(
                source_fd, target_fd, temporary, st.st_size, options, checkpoint, source
            )
        else:
            digest = None
            method = _copy_kernel(source_fd, target_fd, st.st_size, options, checkpoint, source)
            os.fsync(target_fd)
            checkpoint("temp-synced")
            if os.fstat(target_fd).st_size != st.st_size:
                raise CopyFailed(temporary, "the copy's size differs from the source's")
        _copy_metadata(source_fd, target_fd, st)
        os.fsync(target_fd)
        os.close(target_fd)
        target_fd = -1
        checkpoint("temp-complete")
        try:
            after = identity_of(os.lstat(source))
        except FileNotFoundError:
            raise SourceChanged(source, "vanished during the copy") from None
        if not expected.matches(after):
            raise SourceChanged(source, "size, mtime, ctime or inode changed during the copy")
        try:
            rename_noreplace(temporary, target)
        except FileExistsError:
            raise CopyFailed(target, "another file appeared at the target name") from None
        # Measured at once (the rename moved its ctime): from now on the merged view
        # serves the copy, and an edit through it must never pass for cacherr's copy.
        placed = identity_of(os.lstat(target))
        checkpoint("renamed")
        fsync_folder(target.parent)
        checkpoint("placed")
        return CopyResult(placed, expected, digest, method)
    except OSError as error:
        _discard(temporary, target_fd)
        target_fd = -1
        if error.errno == errno.ENOSPC:
            raise NoSpace(target, "the fast file system filled up during the copy") from None
        raise CopyFailed(
            target, f"{error.strerror or error} ({error.filename or target})"
        ) from None
    except BaseException:
        _discard(temporary, target_fd)
        target_fd = -1
        raise
    finally:
        os.close(source_fd)


def _discard(temporary: Path, target_fd: int) -> None:
    if target_fd >= 0:
        os.close(target_fd)
    # Already gone, or the file system went read-only: recovery removes it later.
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _between_chunks(
    source: Path,
    done: int,
    total: int,
    options: CopyOptions,
    checkpoint: Callable[[str], None],
    name: str,
    length: int,
) -> None:
    checkpoint(name)
    if options.throttle is not None:
        options.throttle(length)
    if options.progress is not None:
        options.progress(done, total)
    if options.cancel is not None and options.cancel.is_set():
        raise Cancelled(str(source), "cancelled (SIGTERM); the partial copy was removed")


def _copy_kernel(
    source_fd: int,
    target_fd: int,
    total: int,
    options: CopyOptions,
    checkpoint: Callable[[str], None],
    source: Path,
) -> str:
    """Copy with copy_file_range, else sendfile, else read/write; return the method used.

    Stop at end of file, not at `total`: a source that grew is caught by the size check.
    """
    chunk = options.chunk_size_bytes
    for method in ("copy_file_range", "sendfile"):
        done = 0
        while True:
            try:
                if method == "copy_file_range":
                    moved = os.copy_file_range(source_fd, target_fd, chunk)
                else:
                    moved = os.sendfile(target_fd, source_fd, None, chunk)
            except OSError as error:
                if done == 0 and error.errno in _FALLBACK_ERRNOS:
                    break
                raise
            if moved == 0:
                _require_size(source, done, total)
                return method
            done += moved
            _between_chunks(source, done, total, options, checkpoint, "copy-chunk", moved)
    _copy_hashing(source_fd, target_fd, total, options, checkpoint, hashing=False, source=source)
    return "read/write"


def _copy_hashing(
    source_fd: int,
    target_fd: int,
    total: int,
    options: CopyOptions,
    checkpoint: Callable[[str], None],
    hashing: bool = True,
    *,
    source: Path,
    verifier: OverlappedVerifier | None = None,
) -> list[bytes]:
    """Copy in user space; with `hashing`, hash the blocks in worker threads as they pass.

    Return the block digests (empty without hashing). `verifier` is told of each write.
    """
    with BackgroundHasher(options.chunk_size_bytes) as hasher:
        done = 0
        while True:
            buffer = hasher.take()
            length = read_block(source_fd, buffer)
            if length == 0:
                hasher.give_back(buffer)
                break
            with memoryview(buffer) as view:
                written = 0
                while written < length:
                    written += os.write(target_fd, view[written:length])
            if hashing:
                hasher.submit(buffer, length)
            else:
                hasher.give_back(buffer)
            done += length
            if verifier is not None:
                verifier.written(done)
            _between_chunks(source, done, total, options, checkpoint, "copy-chunk", length)
        _require_size(source, done, total)
        return hasher.block_digests() if hashing else []


def _copy_verified(
    source_fd: int,
    target_fd: int,
    temporary: Path,
    total: int,
    options: CopyOptions,
    checkpoint: Callable[[str], None],
    source: Path,
) -> str:
    """verify: checksum. Hash while copying; compare with the target re-read from the disk.

    Return the file's digest; raise CopyFailed if any block differs.
    """
    with OverlappedVerifier(
        temporary, target_fd, options.chunk_size_bytes, checkpoint, options.verify_segment_bytes
    ) as verifier:
        copied = _copy_hashing(
            source_fd, target_fd, total, options, checkpoint, source=source, verifier=verifier
        )
        os.fsync(target_fd)
        checkpoint("temp-synced")
        if os.fstat(target_fd).st_size != total:
            raise CopyFailed(temporary, "the copy's size differs from the source's")
        reread = verifier.finish(total)
    if options.cancel is not None and options.cancel.is_set():
        raise Cancelled(str(temporary), "cancelled (SIGTERM); the partial copy was removed")
    if reread != copied:
        raise CopyFailed(temporary, "checksum of the re-read copy differs from the source's")
    return hashlib.sha256(b"".join(copied)).hexdigest()


def _require_size(source: Path, done: int, total: int) -> None:
    if done != total:
        raise SourceChanged(source, f"read {done} bytes where {total} were expected: it changed")


def _copy_metadata(source_fd: int, target_fd: int, st: os.stat_result) -> None:
    """Owner first (chown clears set-id bits), then mode, xattrs, and times last."""
    os.fchown(target_fd, st.st_uid, st.st_gid)
    os.fchmod(target_fd, st.st_mode & 0o7777)
    try:
        names = os.listxattr(source_fd)
    except OSError as error:
        if error.errno not in (errno.ENOTSUP, errno.ENODATA):
            raise
        names = []
    for name in names:
        try:
            os.setxattr(target_fd, name, os.getxattr(source_fd, name))
        except OSError as error:
            # A pool without xattr support (or a security.* name we may not set) keeps
            # the data; the owner, mode and times are what Plex and Unraid rely on.
            if error.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    os.utime(target_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
