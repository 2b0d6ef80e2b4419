"""Output safety: archdsl never deletes or replaces what it did not write. Every destructive
`-o` case runs in a temporary directory whose whole contents are snapshotted before and after:
the only change allowed is the output itself."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

TINY = """\
network tiny {
  input 16x16x3
  classes 10
  stem conv k3 s2 c8
  stage a {
    ib k3 e2 c8
  }
  head {
    pool avg
    classifier
  }
}
"""


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root`: its kind, and its bytes, link target or mode."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
            else:
                out[rel] = (stat.S_IFMT(st.st_mode),)
    return out


@pytest.fixture
def work(tmp_path):
    """A project with a spec that imports a library, a user's folder and a checkpoint."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "lib.arch").write_text("block pair(c) {\n  ib k3 e2 c=c\n}\n")
    (tmp_path / "s.arch").write_text('import "lib.arch"\n' + TINY.replace("ib k3 e2 c8", "pair c=8"))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a user's photo")
    (tmp_path / "sub").mkdir()
    (tmp_path / "not_a_package.mlpackage").write_text("a file with a package's name")
    return tmp_path


# (args, exit status, message): each must refuse before touching anything.
REFUSED = [
    (["export", "s.arch", "--backend", "coreml", "-o", "photos"], 1, "not an ML package"),
    (["export", "s.arch", "--backend", "coreml", "-o", "not_a_package.mlpackage"], 1, "not an ML package"),
    (["export", "s.arch", "--backend", "coreml", "-o", "."], 2, "names a directory"),
    (["export", "s.arch", "--backend", "tflite", "-o", "s.arch"], 1, "input file 's.arch'"),
    (["compile", "s.arch", "-o", "s.arch"], 1, "input file 's.arch'"),
    (["compile", "s.arch", "-o", "lib.arch"], 1, "lib.arch"),
    (["compile", "s.arch", "-o", "photos"], 2, "names a directory"),
    (["compile", "s.arch", "-o", "photos/"], 2, "names a directory"),
    (["init-weights", "s.arch", "-o", "s.arch"], 1, "input file 's.arch'"),
    (["import-weights", "s.arch", "--from", "timm", "photos/cat.jpg", "-o", "photos/cat.jpg"], 1, "cat.jpg"),
]
for command in (["compile", "s.arch"], ["init-weights", "s.arch"],
                ["import-weights", "s.arch", "--from", "timm", "photos/cat.jpg"]):  # fmt: skip
    for bad in (".", "", "/", ".."):
        REFUSED.append(([*command, "-o", bad], 2, "the output path"))


@pytest.mark.parametrize("args, status, message", REFUSED, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_an_output_that_is_not_ours_is_refused_and_nothing_changes(work, args, status, message):
    before = snapshot(work)
    result = run(*args, cwd=work)
    assert result.returncode == status, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(work) == before


def test_dot_dot_from_a_subdirectory_leaves_the_parent_alone(work):
    before = snapshot(work)
    result = run("export", "../s.arch", "--backend", "coreml", "--random-weights", "-o", "..", cwd=work / "sub")
    assert result.returncode == 2 and "names a directory" in result.stderr
    assert snapshot(work) == before


def test_an_ml_package_is_replaced_whole_and_nothing_else_is_left(work):
    out = work / "tiny.mlpackage"
    assert run("export", "s.arch", "--backend", "coreml", "--random-weights", "-o", out.name, cwd=work).returncode == 0
    (out / "notes.txt").write_text("a user's notes")  # beside Manifest.json and Data/: not a package now
    refused = run("export", "s.arch", "--backend", "coreml", "--random-weights", "-o", out.name, cwd=work)
    assert refused.returncode == 1 and "not an ML package" in refused.stderr
    (out / "notes.txt").unlink()
    first = snapshot(out)
    result = run("export", "s.arch", "--backend", "coreml", "--random-weights", "-o", out.name, "--seed", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    assert snapshot(out).keys() == first.keys() and snapshot(out) != first  # new weights, same layout
    assert not [p for p in work.iterdir() if p.name.startswith(".archdsl-")]


def test_a_symlink_is_written_through_and_stays_a_link(work):
    (work / "link.py").symlink_to("real.py")
    assert run("compile", "s.arch", "-o", "link.py", cwd=work).returncode == 0
    assert (work / "link.py").is_symlink() and (work / "real.py").read_text().startswith('"""tiny: generated')


def test_a_fifo_is_written_to_not_replaced(work):
    fifo = work / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    time.sleep(0.2)
    result = run("compile", "s.arch", "-o", "pipe", cwd=work)
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and received[0].startswith(b'"""tiny: generated')


def test_a_fifo_nobody_reads_is_an_error_not_a_hang(work):
    os.mkfifo(work / "pipe")
    result = run("compile", "s.arch", "-o", "pipe", cwd=work, timeout=30)
    assert result.returncode == 1 and "nothing is reading the FIFO" in result.stderr
    assert stat.S_ISFIFO((work / "pipe").lstat().st_mode)


def test_special_files_other_than_streams_are_refused(tmp_path):
    from archdsl.atomic import _writable_kind
    from archdsl.errors import ArchError

    with pytest.raises(ArchError, match="a directory"):
        _writable_kind(tmp_path, os.stat(tmp_path))


def test_a_name_at_name_max_is_written_with_a_short_temporary_name(work):
    name = "a" * 252 + ".py"  # 255 bytes: the longest name a Linux file system allows
    result = run("compile", "s.arch", "-o", name, cwd=work)
    assert result.returncode == 0, result.stderr
    assert (work / name).read_text().startswith('"""tiny')
    assert not [p for p in work.iterdir() if p.name.startswith(".archdsl-")]


def test_overwriting_keeps_the_file_mode(work):
    target = work / "m.py"
    target.write_text("old")
    target.chmod(0o600)
    assert run("compile", "s.arch", "-o", "m.py", cwd=work).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() != "old"
    fresh = work / "fresh.py"
    assert run("compile", "s.arch", "-o", "fresh.py", cwd=work).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_sigterm_during_a_write_removes_the_temporary_file(tmp_path):
    """A child writes through `write_atomic` with a slow fsync; SIGTERM arrives mid-write."""
    code = (
        "import os, signal, time\n"
        "from pathlib import Path\n"
        "from archdsl import atomic\nfrom archdsl.cli import main as cli\n"
        "signal.signal(signal.SIGTERM, cli._terminate)\n"
        "os.fsync = lambda fd: time.sleep(60)\n"
        f"atomic.write_atomic(Path({str(tmp_path / 'out.py')!r}), 'x' * 100000)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".archdsl-*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".archdsl-*.tmp")), "the child never started writing"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_fmt_write_on_a_symlink_formats_the_target(tmp_path):
    (tmp_path / "real.arch").write_text(TINY.replace("  classes 10", "classes   10"))
    (tmp_path / "link.arch").symlink_to("real.arch")
    assert run("fmt", "--write", "link.arch", cwd=tmp_path).returncode == 0
    assert (tmp_path / "link.arch").is_symlink() and (tmp_path / "real.arch").read_text() == TINY


@pytest.fixture
def project(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tiny.arch").write_text(TINY)
    assert run("regen", "--root", ".", cwd=tmp_path).returncode == 0
    return tmp_path


def test_regen_removes_only_orphans_archdsl_wrote(project):
    torch_dir = project / "generated" / "torch"
    ours = (torch_dir / "tiny.py").read_text()
    (torch_dir / "gone.py").write_text(ours.replace('"""tiny:', '"""gone:'))  # a spec since deleted
    (torch_dir / "notes.py").write_text("# a user's file\n")
    (torch_dir / "README.md").write_text(ours)  # archdsl writes only .py files
    (torch_dir / "link.py").symlink_to("tiny.py")
    check = run("check", "--root", ".", cwd=project)
    assert check.returncode == 1 and "gone.py: no spec generates this file\n" in check.stdout
    assert "notes.py: no spec generates this file (not written by regen" in check.stdout
    result = run("regen", "--root", ".", cwd=project)
    assert result.returncode == 0 and "removed generated/torch/gone.py" in result.stderr
    assert sorted(p.name for p in torch_dir.iterdir()) == ["README.md", "link.py", "notes.py", "tiny.py"]


def test_check_sees_line_endings_changed_to_crlf(project):
    target = project / "generated" / "keras" / "tiny.py"
    target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))
    result = run("check", "--root", ".", cwd=project)
    assert result.returncode == 1 and "generated/keras/tiny.py" in result.stdout
    assert run("regen", "--root", ".", cwd=project).returncode == 0
    assert b"\r\n" not in target.read_bytes()
    assert run("check", "--root", ".", cwd=project).returncode == 0


# ---- found in review: descriptors, generated/ that is not what regen made, packages with inputs --


def test_o_dev_stdout_appends_to_a_file_and_feeds_a_pipe(work):
    log = work / "log.txt"
    log.write_text("precious\n")
    shell = f"{sys.executable} -m archdsl compile s.arch -o /dev/stdout >> log.txt"
    assert subprocess.run(shell, shell=True, cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode == 0
    assert log.read_text().startswith('precious\n"""tiny: generated')
    piped = run("compile", "s.arch", "-o", "/dev/stdout", cwd=work)  # stdout is a pipe here
    assert piped.returncode == 0 and piped.stdout.startswith('"""tiny: generated'), piped.stderr
    assert not [p for p in work.iterdir() if p.name.startswith(".archdsl-")]


def test_a_character_device_is_written_to_not_replaced(tmp_path):
    from archdsl.atomic import _writable_kind

    assert _writable_kind(Path("/dev/null"), os.stat("/dev/null")) == "stream"
    device = tmp_path / "null"
    try:  # a device of our own, so that a regression cannot replace the machine's /dev/null
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a character device needs CAP_MKNOD; the /dev/null classification is checked above")
    (tmp_path / "x.arch").write_text(TINY)
    assert run("compile", "x.arch", "-o", "null", cwd=tmp_path).returncode == 0
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_regen_never_writes_through_a_link_in_generated(project):
    target = project / "generated" / "torch" / "tiny.py"
    target.unlink()
    target.symlink_to("../../specs/tiny.arch")
    for command in ("regen", "check"):
        result = run(command, "--root", ".", cwd=project)
        assert result.returncode == 1 and "generated/torch/tiny.py is a symbolic link" in result.stderr
    assert (project / "specs" / "tiny.arch").read_text() == TINY


def test_regen_without_specs_removes_nothing(project):
    (project / "specs" / "tiny.arch").rename(project / "tiny.arch")
    (project / "specs").rmdir()
    before = snapshot(project)
    result = run("regen", "--root", ".", cwd=project)
    assert result.returncode == 1 and "has no specs/ directory" in result.stderr
    assert snapshot(project) == before


def test_regen_keeps_what_compile_wrote_from_other_specs_and_ignores_folders(project):
    (project / "elsewhere").mkdir()
    (project / "elsewhere" / "mine.arch").write_text(TINY.replace("network tiny", "network mine"))
    mine = project / "generated" / "torch" / "mine_tuned.py"
    assert run("compile", "elsewhere/mine.arch", "-o", str(mine), cwd=project).returncode == 0
    (project / "generated" / "torch" / "__pycache__").mkdir()
    leftover = project / "generated" / "torch" / ".archdsl-0123abcd.tmp"
    leftover.write_text("from a write that was killed")
    check = run("check", "--root", ".", cwd=project)
    assert (
        "__pycache__" not in check.stdout and "mine_tuned.py: no spec generates this file (not written" in check.stdout
    )
    assert run("regen", "--root", ".", cwd=project).returncode == 0
    assert mine.exists() and (project / "generated" / "torch" / "__pycache__").is_dir() and not leftover.exists()


@pytest.mark.parametrize("make", ["fifo", "dev-zero"])
def test_check_does_not_hang_on_a_special_file_in_generated(project, make):
    target = project / "generated" / "torch" / "tiny.py"
    target.unlink()
    if make == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    result = run("check", "--root", ".", cwd=project, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "generated/torch/tiny.py" in result.stderr


def test_a_package_that_holds_an_input_is_not_replaced(work):
    out = work / "tiny.mlpackage"
    assert run("export", "s.arch", "--backend", "coreml", "--random-weights", "-o", out.name, cwd=work).returncode == 0
    (out / "Data" / "kept.arch").write_text((work / "s.arch").read_text())
    (out / "Data" / "lib.arch").write_text((work / "lib.arch").read_text())
    before = snapshot(work)
    result = run(
        "export",
        "tiny.mlpackage/Data/kept.arch",
        "--backend",
        "coreml",
        "--random-weights",
        "-o",
        "tiny.mlpackage/",
        cwd=work,
    )
    assert result.returncode == 1 and "it holds the input file" in result.stderr
    assert snapshot(work) == before


def test_an_unwritable_output_names_the_output_escaped(work):
    result = run("compile", "s.arch", "-o", "s.arch/\x1b[31mred", cwd=work)
    assert result.returncode == 1 and "\x1b" not in result.stderr and "\\x1b[31mred" in result.stderr
    assert ".archdsl-" not in result.stderr


def test_ctrl_c_is_a_quiet_exit_130(work):
    code = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from archdsl import atomic\nfrom archdsl.cli import main as cli\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with it ignored\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGINT) or time.sleep(1)\n"
        "sys.argv = ['archdsl', 'compile', 's.arch', '-o', 'm.py']\n"
        "cli.run()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 130 and result.stderr.strip() == "interrupted"
    assert not (work / "m.py").exists() and not [p for p in work.iterdir() if p.name.startswith(".archdsl-")]
