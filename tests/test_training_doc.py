"""docs/training.md's worked example, run as it is written: the spec, the commands (compile,
train in PyTorch on synthetic data, fold, verify, export) and the training script, in a fresh
directory; then the trained weights are checked to be trained, folded and exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from doc_fences import fence, run_commands

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "training.md").read_text()


def _block(language: str, holding: str) -> str:
    return fence(DOC, language, holding)


def test_the_worked_example_runs_as_written(tmp_path: Path):
    (tmp_path / "tiny.arch").write_text(_block("archdsl", "network tiny {"))
    (tmp_path / "archdsl.toml").write_text("")
    (tmp_path / "train_torch.py").write_text(_block("python", "import tiny_torch"))
    done = run_commands(_block("", "archdsl compile tiny.arch"), tmp_path)
    assert [c[:2] for c, _ in done] == [["archdsl", "compile"], ["python", "train_torch.py"],
                                         ["archdsl", "fold-weights"], ["archdsl", "verify"], ["archdsl", "verify"],
                                         ["archdsl", "export"]]  # fmt: skip
    for command, result in done:
        if command[1] == "verify":
            agree = "the training step agrees in every backend" if "--train" in command else "all backends agree"
            assert agree in result.stdout
    from safetensors.numpy import load_file

    from archdsl.compiler import compile_file
    from archdsl.runtimes.weights import init_weights

    trained = load_file(str(tmp_path / "trained.safetensors"))
    net = compile_file(tmp_path / "tiny.arch")
    assert trained.keys() == init_weights(net, 0).keys()
    means = [k for k in trained if k.endswith("running_mean")]
    assert means and any(np.abs(trained[k]).max() > 0 for k in means)  # trained: statistics moved off zero
    deploy = load_file(str(tmp_path / "deploy.safetensors"))
    assert not any(".bn." in k for k in deploy) and (tmp_path / "tiny.tflite").stat().st_size > 10_000
