"""An installed wheel works outside the checkout: the grammar and templates ship inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile

from conftest import ROOT


def test_wheel_installs_and_compiles_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], check=True)
    (wheel,) = dist.glob("archdsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "archdsl/grammars/archdsl.lark" in names and "archdsl/templates/torch/module.py.j2" in names

    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    subprocess.run([env / "bin" / "pip", "install", "-q", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "specs", work / "specs")
    (work / "pyproject.toml").write_text("")  # a project: generated code names specs relative to its root
    result = subprocess.run(
        [env / "bin" / "archdsl", "compile", "specs/mnv4_conv_s.arch", "--backend", "torch"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "generated" / "torch" / "mnv4_conv_s.py").read_text()
