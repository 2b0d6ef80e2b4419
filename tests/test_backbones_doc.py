"""docs/backbones.md's worked example, run as it is written: the backbone spec, its cost (the
line the doc quotes), a PyTorch detector on `build_model(features_only=True)`, verify through
every backend and the TFLite backbone export with one named output per endpoint."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from doc_fences import fence

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "backbones.md").read_text()


def test_the_worked_example_runs_as_written(tmp_path: Path):
    (tmp_path / "backbone.arch").write_text(fence(DOC, "archdsl", "network backbone {"))
    (tmp_path / "archdsl.toml").write_text("")
    (tmp_path / "detect.py").write_text(fence(DOC, "python", "import backbone_torch"))
    commands = [line.split("#")[0].split() for line in fence(DOC, "", "archdsl cost backbone.arch").splitlines()]
    printed = {}
    for command in commands:
        argv = (
            [sys.executable, "-m", "archdsl", *command[1:]]
            if command[0] == "archdsl"
            else [sys.executable, *command[1:]]
        )
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        printed[command[1]] = result.stdout
    endpoints_line = fence(DOC, "", "feature endpoints:").strip()
    assert endpoints_line in printed["cost"].splitlines()
    assert printed["detect.py"].strip() == "boxes (2, 2304, 4) scores (2, 2304, 21)"
    assert "boxes (2, 2304, 4) scores (2, 2304, 21)" in DOC
    assert "all backends agree" in printed["verify"]
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(tmp_path / "backbone.tflite")).get_signature_runner()
    out = runner(image=np.zeros((1, 128, 128, 3), np.float32))
    assert {k: v.shape for k, v in out.items()} == {"s2": (1, 16, 16, 32), "s3": (1, 8, 8, 96), "s4": (1, 8, 8, 160)}
