"""Command-line arguments are checked before any work is done: a bad value is a usage error
(exit 2, argparse's `usage:` line or a located message), never a traceback, and never after
a framework has run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from archdsl.cli.main import main
from conftest import ROOT

SPEC = str(ROOT / "specs" / "mnv3_small.arch")

USAGE = [
    (["init-weights", SPEC, "--seed", "-1", "-o", "w.safetensors"], "--seed"),
    (["verify", SPEC, "--seed", "-1"], "--seed"),
    (["export", SPEC, "--backend", "tflite", "-o", "m.tflite", "--seed", "-1"], "--seed"),
    (["init-weights", SPEC, "--seed", str(2**64), "-o", "w.safetensors"], "--seed"),
    (["compile", SPEC, "--backend", "nonsense"], "unknown backend 'nonsense'"),
    (["compile", SPEC, "--backend", ""], "unknown backend ''"),
    (["compile", SPEC, "--backend", "tflite"], "tflite is an export format"),
    (["compile", SPEC, "--network", "zz"], "no network named 'zz'"),
    (["cost", SPEC, "--network", "zz"], "no network named 'zz'"),
    (["verify", SPEC, "--backends", "torch,onnxrt"], "unknown backend 'onnxrt'"),
    (["verify", SPEC, "--backends", "torch"], "at least two different backends"),
    (["verify", SPEC, "--backends", "torch,torch"], "at least two different backends"),
    (["verify", SPEC, "--backends", "torch,keras,torch"], "named twice"),
    (["verify", SPEC, "--tolerance", "nan"], "finite positive"),
    (["verify", SPEC, "--tolerance", "inf"], "finite positive"),
    (["verify", SPEC, "--tolerance", "0"], "finite positive"),
    (["verify", SPEC, "--tolerance=-1e-4"], "finite positive"),
    (["verify", SPEC, "--input", "0x224"], "between 1 and"),
    (["verify", SPEC, "--input", "224"], "expected HxW"),
]


@pytest.mark.parametrize("args, message", USAGE, ids=lambda v: " ".join(v[1:]) if isinstance(v, list) else None)
def test_a_bad_argument_is_a_usage_error_before_any_work(args, message, tmp_path):
    code = (
        "import sys\nfrom archdsl.cli.main import main\n"
        "try:\n    status = main(sys.argv[1:])\nexcept SystemExit as exc:  # argparse\n    status = exc.code\n"
        "loaded = sorted({'torch', 'tensorflow', 'keras', 'coremltools'} & {m.split('.')[0] for m in sys.modules})\n"
        "print(loaded)\nsys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip() == "[]"  # no framework was loaded before the complaint
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_closed_stdout_is_an_error_message_not_a_traceback():
    result = subprocess.run(f"{sys.executable} -m archdsl cost {SPEC} >&-", shell=True, cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "error: standard output is closed: <stdout>"


def test_a_closed_stdout_does_not_stop_a_command_that_writes_a_file(tmp_path):
    out = tmp_path / "m.py"
    result = subprocess.run(f"{sys.executable} -m archdsl compile {SPEC} -o {out} >&-", shell=True, cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (ROOT / "generated" / "torch" / "mnv3_small.py").read_text()


def test_the_cost_table_ends_with_a_newline():
    result = subprocess.run([sys.executable, "-m", "archdsl", "cost", SPEC], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.endswith(" MACs\n")


@pytest.mark.parametrize("argv, missing, extra", [
    (["verify", "specs/mnv1.arch", "--backends", "torch,onnx"], "onnxruntime", "onnx"),
    (["export", "specs/mnv1.arch", "--backend", "coreml", "--random-weights", "-o", "m.mlpackage"], "coremltools", "coreml"),
    (["bench", "specs/mnv1.arch", "--runtime", "tflite"], "tensorflow", "keras"),
    (["roofline", "specs/mnv1.arch", "--plot", "r.svg"], "matplotlib", "plot"),
], ids=["verify", "export", "bench", "plot"])  # fmt: skip
def test_a_missing_extra_is_named_before_anything_runs(argv, missing, extra, monkeypatch, capsys, tmp_path):
    """Without the package a command needs, it exits 2 naming the pip extra, and writes nothing."""
    import archdsl.extras

    real = archdsl.extras.find_spec
    monkeypatch.setattr(archdsl.extras, "find_spec", lambda name: None if name == missing else real(name))
    monkeypatch.chdir(ROOT)
    argv = [str(tmp_path / a) if a.endswith((".mlpackage", ".svg")) else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"needs {missing}, which is not installed" in err and f"pip install 'archdsl[{extra}]'" in err
    assert list(tmp_path.iterdir()) == []
