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
    assert "archdsl/templates/onnx/module.py.j2" in names and "archdsl/py.typed" in names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    meta = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    assert "License-Expression: Apache-2.0" in meta and "License-File: LICENSE" in meta  # PEP 639
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    requires = [line.removeprefix("Requires-Dist: ") for line in meta if line.startswith("Requires-Dist: ")]
    assert "tensorflow-cpu>=2.16; (sys_platform != 'darwin') and extra == 'keras'" in requires
    assert "tensorflow>=2.16; (sys_platform == 'darwin') and extra == 'keras'" in requires
    assert not any(r.startswith("pytest") and "extra == 'all'" in r for r in requires)  # test tools: `dev` only

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
