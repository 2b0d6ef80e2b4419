"""The pre-commit hooks of `.pre-commit-hooks.yaml`, run for real: `pre-commit try-repo` builds
each hook's environment by pip-installing archdsl from a copy of this working tree (committed in
a temporary repository: try-repo of a local path adds uncommitted changes of tracked and staged
files only, never an untracked file) and runs the hooks in temporary projects with `specs/` and
`generated/`. Each try-repo run builds its own environment (it ignores PRE_COMMIT_HOME), so the
three run side by side: about 45 s on two cores, most of it pip. Skipped where no package index
is reachable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli.main import main as archdsl
from conftest import ROOT

pytest.importorskip("pre_commit")
if shutil.which("git") is None:
    pytest.skip("pre-commit needs git", allow_module_level=True)

MESSY = "network tiny { input 32x32x3; classes 10\n  stem conv k3 c16\n  stage s0 { ib k3 e4 c16 }\n  head { pool avg; classifier } }\n"  # fmt: skip
CANONICAL = "network tiny {\n  input 32x32x3\n  classes 10\n  stem conv k3 c16\n  stage s0 {\n    ib k3 e4 c16\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"  # fmt: skip
# pip could not reach a package index: the hooks cannot be installed here, which is no failure of theirs
OFFLINE = ("Failed to establish a new connection", "Temporary failure in name resolution", "Network is unreachable",
           "No matching distribution found")  # fmt: skip


GIT = ("git", "-c", "user.name=archdsl tests", "-c", "user.email=tests@archdsl.invalid", "-c", "commit.gpgsign=false")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, env=_env(cwd), capture_output=True, text=True, check=True).stdout


def _env(tmp: Path) -> dict[str, str]:
    """No GIT_* variables of an enclosing git hook (they would point git at this repository), and
    pre-commit's own files under `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "PRE_COMMIT_HOME": str(tmp / ".pre-commit-home")}


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> Path:
    """This working tree as it is now (tracked and untracked files git does not ignore), committed."""
    try:
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    except subprocess.CalledProcessError:
        pytest.skip("the source tree is not a git checkout")
    repo = tmp_path_factory.mktemp("hooks")
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the working tree is left out
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "archdsl working tree", cwd=repo)
    return repo


def project(path: Path, spec: str, generated_from: str | None) -> Path:
    """A project with `specs/tiny.arch` holding `spec`, and `generated/` regenerated from the
    spec text `generated_from` (None: no generated/), all staged."""
    (path / "specs").mkdir(parents=True)
    if generated_from is not None:
        (path / "specs" / "tiny.arch").write_text(generated_from)
        assert archdsl(["regen", "--root", str(path)]) == 0
    (path / "specs" / "tiny.arch").write_text(spec)
    git("init", "-q", cwd=path)
    git("add", "-A", cwd=path)
    return path


def try_repo(repo: Path, project: Path, *hook: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(repo), *hook, "--all-files", "--color", "never"]
    return subprocess.Popen(cmd, cwd=project, env=_env(project), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def results(proc: subprocess.Popen) -> tuple[str, dict[str, str]]:
    """The output and each hook's result by name (`archdsl fmt....Failed` -> {"archdsl fmt": "Failed"})."""
    out, _ = proc.communicate(timeout=600)
    if proc.returncode not in (0, 1):
        if any(marker in out for marker in OFFLINE):
            pytest.skip("pre-commit could not install the hooks: no package index reachable")
        pytest.fail(f"pre-commit try-repo failed (exit {proc.returncode}):\n{out}")
    lines = (re.fullmatch(r"(\w.*?)\.{3,}(?:\(.*\))?(Passed|Failed|Skipped)", line) for line in out.splitlines())
    return out, {m[1]: m[2] for m in lines if m}


def test_hooks_fail_on_what_they_guard_and_pass_on_clean_projects(hook_repo, tmp_path):
    # Three projects, each run once (side by side: each run builds its own hook environment).
    check_only = project(tmp_path / "a", MESSY, generated_from=None)
    messy = project(tmp_path / "b", MESSY, generated_from=MESSY)  # generated/ fresh, spec not canonical
    stale = project(tmp_path / "c", CANONICAL.replace("c16", "c24"), generated_from=CANONICAL)
    runs = [try_repo(hook_repo, check_only, "archdsl-fmt-check"), try_repo(hook_repo, messy),
            try_repo(hook_repo, stale)]  # fmt: skip
    (out_a, a), (out_b, b), (out_c, c) = (results(run) for run in runs)

    # archdsl-fmt-check: fails with the diff, changes nothing
    assert a == {"archdsl fmt --diff": "Failed"}, out_a
    assert "--- a/specs/tiny.arch\n+++ b/specs/tiny.arch\n" in out_a
    assert (check_only / "specs" / "tiny.arch").read_text() == MESSY
    # every hook (sorted by id): check passes on a fresh generated/; fmt rewrites the spec and
    # fails for it, as ruff-format does; fmt --diff, after it, passes on the canonical file
    assert b == {"archdsl check": "Passed", "archdsl fmt": "Failed", "archdsl fmt --diff": "Passed"}, out_b
    assert "files were modified by this hook" in out_b
    assert (messy / "specs" / "tiny.arch").read_text() == CANONICAL
    # check fails with a diff where the spec changed since generation; canonical specs pass
    assert c == {"archdsl check": "Failed", "archdsl fmt": "Passed", "archdsl fmt --diff": "Passed"}, out_c
    assert "--- a/generated/torch/tiny.py" in out_c and "generated file(s) are stale" in out_c
