"""Write output files so that no user data is ever lost.

- A regular file is replaced atomically: the data goes to a short-named temporary file beside it
  (same file system), which is renamed over the target; a reader sees the old file or the new
  one, never half of one. The target's permission bits are kept.
- A symlink is written through to its target; the link itself stays.
- A character device or FIFO (`-o /dev/null`, `-o >(gzip)`) is written to, never replaced.
- Anything else that exists (a directory, a block device, a socket) is refused.
- A failure or a signal during the write removes the temporary file.

`check_output` rejects, before any work is done, an output path that cannot be a file or that
names one of the command's inputs. `-` is stdout, wherever `-o` is taken (a file named `-` is
written as `$PWD/-`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from pathlib import Path
from typing import Iterable

from .errors import ArchError, UsageError


def check_output(output: str, inputs: Iterable[str | Path] = ()) -> Path:
    """The output path, checked: a usage error (exit 2) when it can never name a file, an error
    (exit 1) when it names an input of the command or something archdsl must not replace."""
    require_text(output)
    if output == "-":
        return STDOUT
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        raise UsageError(f"the output path {output!r} names a directory", hint="give a file name, e.g. -o out/model.py")
    st = _stat(path)
    if st is None:
        return path
    for given in inputs:
        other = _stat(Path(given))
        if other is not None and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            raise ArchError(f"refusing to write over the input file {str(given)!r}", hint="choose another output path")
    _writable_kind(path, st)
    return path


def require_text(output: str) -> None:
    """A usage error for an output path that is no path at all (shared by every `-o`)."""
    if output == "" or "\0" in output:
        raise UsageError("the output path is empty" if output == "" else "the output path contains a NUL byte")


STDOUT = Path("/dev/stdout")  # `-o -`: written to as any stream is, below


def write_atomic(path: Path, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    if str(path) == "-":
        path = STDOUT
    if path == STDOUT:
        sys.stdout.flush()  # what Python buffered goes first
    st = _stat(path)  # through any links
    if st is not None and _writable_kind(path, st) == "stream":
        _write_stream(path, raw, os.O_WRONLY | os.O_NONBLOCK)
        return
    if st is not None and _through_descriptor(path):  # `-o /dev/stdout` with stdout a file
        _write_stream(path, raw, os.O_WRONLY | os.O_APPEND)  # the shell opened (and truncated) it
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(target.parent)
    try:
        fd = os.open(tmp, os.O_WRONLY)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except OSError as exc:  # name the output, not the temporary file
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:  # a SIGTERM arrives as SystemExit (see cli.run)
        tmp.unlink(missing_ok=True)
        raise


_DESCRIPTOR = re.compile(r"^/(proc/[^/]+|dev)/fd/[0-9]+$")


def _through_descriptor(path: Path) -> bool:
    """Whether `path` is, or links through, an open file descriptor (`/dev/stdout`, `/dev/fd/3`,
    `/proc/self/fd/1`, a shell's `>(cmd)`): a rename beside its target would miss the descriptor,
    so such an output is written in place."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own bound on a chain of links
        if _DESCRIPTOR.match(current):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return False


def temporary_name(directory: Path, suffix: str = ".tmp") -> Path:
    """A fresh short name beside the target: `.archdsl-<8 hex>.tmp` fits any file system's
    NAME_MAX, whatever the target's name length. (`os.urandom`, as `secrets` draws: importing
    `secrets` costs a compile 1.5 ms.)"""
    return directory / f".archdsl-{os.urandom(4).hex()}{suffix}"


def _create_temporary(directory: Path) -> Path:
    for _ in range(100):
        tmp = temporary_name(directory)
        try:
            # mode 0o666 less the umask: what a new file gets from any other program
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot create a temporary file", str(directory))


def _write_stream(target: Path, raw: bytes, flags: int) -> None:
    """A character device, FIFO or open descriptor: written in place. A FIFO that nobody reads is
    an error, not a hang (a non-blocking open fails with ENXIO)."""
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ArchError(f"nothing is reading the FIFO {str(target)!r}", hint="start its reader first") from None
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)


def _writable_kind(path: Path, st: os.stat_result) -> str:
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return "stream"
    what = "a directory" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode) else "a socket"
    raise ArchError(f"refusing to replace {str(path)!r}: it is {what}, not a regular file")


def _stat(path: Path) -> os.stat_result | None:
    """`stat` following symlinks; None where nothing exists (a dangling link included)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
