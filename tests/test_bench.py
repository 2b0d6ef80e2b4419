"""`archdsl bench`: real runtimes in processes of their own, taking turns; one or two rounds here
(no timed assertions: only that every figure is there, positive and consistent)."""

from __future__ import annotations

import json

import pytest

from archdsl.cli.main import main
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.bench import bench
from conftest import small_net


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "small.arch"
    path.write_text(small_net("ds k3 c16 se0.25"))
    return path


def _run(capsys, *args):
    code = main(["bench", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_torch_with_per_block_times(spec, capsys):
    code, data = _run(capsys, spec, "--rounds", "2", "--warmup", "1", "--per-block")
    assert code == 0 and data["form"] == "deploy" and data["threads"] == 1
    (torch_run,) = data["runtimes"]
    assert torch_run["runtime"] == "torch" and len(torch_run["seconds"]) == 2
    assert all(s > 0 for s in torch_run["seconds"])
    assert torch_run["min_seconds"] <= torch_run["median_seconds"]
    q1, q3 = torch_run["iqr_seconds"]
    assert torch_run["min_seconds"] <= q1 <= q3
    paths = [b.path for b in compile_file(spec, deploy=True).blocks()]
    assert list(torch_run["blocks"]) == paths and all(s > 0 for s in torch_run["blocks"].values())


def test_runtimes_take_turns_and_tflite_has_no_block_times(spec, capsys):
    code, data = _run(capsys, spec, "--runtime", "torch,tflite", "--rounds", "2", "--warmup", "0", "--per-block",
                      "--train-form")  # fmt: skip
    assert code == 0 and data["form"] == "train"
    assert [r["runtime"] for r in data["runtimes"]] == ["torch", "tflite"]
    assert [len(r["seconds"]) for r in data["runtimes"]] == [2, 2]
    assert data["runtimes"][1]["blocks"] == {}  # the converter fuses layers: no block boundaries left


def test_onnx_and_int8_tflite_runtimes(spec, capsys):
    code, data = _run(capsys, spec, "--runtime", "onnx,tflite-int8", "--rounds", "2", "--warmup", "1", "--threads", "2")
    assert code == 0 and [r["runtime"] for r in data["runtimes"]] == ["onnx", "tflite-int8"]
    assert all(s > 0 for r in data["runtimes"] for s in r["seconds"]) and data["runtimes"][0]["blocks"] == {}


def test_torch_compile(spec, capsys):
    code, data = _run(capsys, spec, "--runtime", "torch-compile", "--rounds", "1", "--warmup", "1")
    assert code == 0 and data["runtimes"][0]["runtime"] == "torch-compile"
    assert data["runtimes"][0]["seconds"][0] > 0


def test_the_text_report(spec, capsys):
    assert main(["bench", str(spec), "--rounds", "1", "--per-block"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "per block (torch" in out and "stages.0.blocks.1" in out


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ("torh", "did you mean 'torch'"),
        ("torch,torch", "name each runtime once"),
        ("onnxrt", "did you mean 'onnx'"),
    ],
)
def test_an_unknown_runtime_is_a_usage_error(spec, capsys, runtime, message):
    assert main(["bench", str(spec), "--runtime", runtime]) == 2
    assert message in capsys.readouterr().err


def test_a_runtime_that_fails_is_named(tmp_path):
    net = compile_text(small_net())
    with pytest.raises(ArchError, match="the torch runtime failed: .*"):
        bench(net, str(tmp_path / "absent.safetensors"), ["torch"], 1, 1, 0, False)


def test_calls_per_round_give_one_figure_each(spec, capsys):
    code, data = _run(capsys, spec, "--rounds", "2", "--warmup", "0", "--calls", "3")
    (torch_run,) = data["runtimes"]
    assert code == 0 and data["calls"] == 3 and len(torch_run["seconds"]) == 2
