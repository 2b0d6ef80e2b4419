"""`export` is safe and quiet: it refuses to ship random weights unless asked, refuses options
that do not apply to the backend, keeps TensorFlow's and coremltools' chatter off stdout, says
in one closing line what it wrote, and can write a .tflite to stdout (`-o -`); `verify --json`
gives CI a report on a stdout that holds nothing else. Run as a user runs them, in a
subprocess: stdout and stderr are the real file descriptors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import small_net


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "archdsl.toml").write_text("")
    (tmp_path / "n.arch").write_text(small_net("ib k3 s2 e4 c24"))
    return tmp_path / "n.arch"


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archdsl", "export", *args], cwd=cwd, capture_output=True, timeout=600)


def test_without_weights_export_refuses_and_writes_nothing(spec):
    result = _run("n.arch", "--backend", "tflite", "-o", "m.tflite", cwd=spec.parent)
    assert result.returncode == 1 and not (spec.parent / "m.tflite").exists()
    err = result.stderr.decode()
    assert "export needs the model's weights" in err and "import-weights" in err and "--random-weights" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backend", "tflite", "--random-weights", "--precision", "fp16", "-o", "m.tflite"],
            "CoreML's compute precision",
        ),
        (
            ["--backend", "tflite", "--random-weights", "--weights", "w.safetensors", "-o", "m.tflite"],
            "exclude each other",
        ),
        (["--backend", "coreml", "--random-weights", "-o", "-"], "cannot go to stdout"),
    ],
)
def test_options_that_do_not_apply_are_usage_errors(spec, args, message):
    result = _run("n.arch", *args, cwd=spec.parent)
    assert result.returncode == 2 and message in result.stderr.decode()


def test_a_file_export_says_what_it_wrote_on_stderr_and_nothing_on_stdout(spec):
    result = _run("n.arch", "--backend", "tflite", "--random-weights", "-o", "m.tflite", cwd=spec.parent)
    assert result.returncode == 0, result.stderr.decode()
    size = (spec.parent / "m.tflite").stat().st_size
    assert result.stdout == b""  # TensorFlow's "Saved artifact at ..." went to stderr
    assert f"wrote m.tflite ({size:,} bytes; TFLite float32)" in result.stderr.decode().splitlines()[-1]


def test_dash_o_writes_the_tflite_model_alone_to_stdout(spec, tmp_path):
    import tensorflow as tf

    result = _run("n.arch", "--backend", "tflite", "--random-weights", "-o", "-", cwd=spec.parent)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[4:8] == b"TFL3"  # the flatbuffer's identifier: nothing before the model
    interpreter = tf.lite.Interpreter(model_content=result.stdout)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interpreter.invoke()
    assert interpreter.get_tensor(out["index"]).shape == (1, 10)
    assert f"wrote stdout ({len(result.stdout):,} bytes" in result.stderr.decode()
    assert not list(spec.parent.glob("*.tflite"))


def test_verify_json_is_the_only_thing_on_stdout(spec):
    argv = [sys.executable, "-m", "archdsl", "verify", "n.arch", "--backends", "torch,keras,tflite", "--json"]
    result = subprocess.run(argv, cwd=spec.parent, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)  # TFLite's converter printed to stderr, not here
    assert report["ok"] is True and report["network"] == "n" and report["tolerance"] == 1e-4
    assert [(p["reference"], p["other"], p["ok"]) for p in report["pairs"]] == [("torch", "keras", True),
                                                                                ("torch", "tflite", True)]  # fmt: skip
    assert all(p["relative"] <= 1e-4 and p["first_divergence"] is None for p in report["pairs"])
