"""docs/backbones.md's worked example, run as it is written: the backbone spec, its cost (the
line the doc quotes), a PyTorch detector on `build_model(features_only=True)`, verify through
every backend and the TFLite backbone export with one named output per endpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from doc_fences import fence, run_commands

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "backbones.md").read_text()


def test_the_worked_example_runs_as_written(tmp_path: Path):
    (tmp_path / "backbone.arch").write_text(fence(DOC, "archdsl", "network backbone {"))
    (tmp_path / "archdsl.toml").write_text("")
    (tmp_path / "detect.py").write_text(fence(DOC, "python", "import backbone_torch"))
    printed = {c[1]: r.stdout for c, r in run_commands(fence(DOC, "", "archdsl cost backbone.arch"), tmp_path)}
    endpoints_line = fence(DOC, "", "feature endpoints:").strip()
    assert endpoints_line in printed["cost"].splitlines()
    assert printed["detect.py"].strip() == "boxes (2, 2304, 4) scores (2, 2304, 21)"
    assert "boxes (2, 2304, 4) scores (2, 2304, 21)" in DOC
    assert "all backends agree" in printed["verify"]
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(tmp_path / "backbone.tflite")).get_signature_runner()
    out = runner(image=np.zeros((1, 128, 128, 3), np.float32))
    assert {k: v.shape for k, v in out.items()} == {"s2": (1, 16, 16, 32), "s3": (1, 8, 8, 96), "s4": (1, 8, 8, 160)}


def test_the_detector_spec_is_the_backbone_with_a_head():
    """The SSDLite spec of the doc: the backbone's blocks and endpoints, two extra layers, and the
    outputs the doc states."""
    from archdsl.compiler import compile_text

    detector = compile_text(fence(DOC, "archdsl", "network detector {"), "detector.arch")
    backbone = compile_text(fence(DOC, "archdsl", "network backbone {"), "backbone.arch")
    assert [e.name for e in detector.endpoints] == [e.name for e in backbone.endpoints] + ["x0", "x1"]
    assert detector.outputs() == (("bbox_regression", (2046, 4)), ("cls_logits", (2046, 21)))
    assert "`bbox_regression` (2046, 4) and `cls_logits` (2046, 21)" in DOC
