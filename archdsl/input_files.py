"""Open a file archdsl reads (a spec, weights, a checkpoint) only when it is a regular file of
bounded size: opening a FIFO blocks until a writer comes, and a device such as /dev/zero can be
read for ever. The kind is checked with `stat` before opening and again with `fstat` after (a
FIFO swapped in between must not block either: the open is non-blocking)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}  # fmt: skip


def file_kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


@contextmanager
def open_regular(path: str | os.PathLike[str], max_bytes: int, too_big: str,
                 fail: Callable[[str], Exception]) -> Iterator[tuple[BinaryIO, int]]:  # fmt: skip
    """The open file and its size; `fail(problem)` builds the error for a file that is not
    regular or is over `max_bytes` (`too_big` says what the limit is, e.g. "a spec may have").
    OSErrors (a missing file, no permission) are the caller's to report."""
    for_kind = os.stat(path)
    _check(for_kind, max_bytes, too_big, fail)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        _check(info, max_bytes, too_big, fail)
        yield f, info.st_size


def read_text(path: str, max_bytes: int, what: str) -> str:
    """A small text file (a profile) whole, as UTF-8; an error "cannot read <what> ..." when it is
    missing, unreadable, not a regular file or over `max_bytes`."""
    from .errors import ArchError

    def fail(problem: str) -> ArchError:
        return ArchError(f"cannot read {what} {path!r}: {problem}")

    try:
        with open_regular(path, max_bytes, f"a {what} may have", fail) as (f, _):
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None


def _check(info: os.stat_result, max_bytes: int, too_big: str, fail: Callable[[str], Exception]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise fail(f"it is {file_kind(info.st_mode)}, not a regular file")
    if info.st_size > max_bytes:
        raise fail(f"it has {info.st_size:,} bytes, more than the {max_bytes:,} bytes {too_big}")
