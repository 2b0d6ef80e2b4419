"""docs/deploy.md run as it is written: the EfficientNet-Lite0 checkpoint imported, verified
through five backends, and exported as a full-integer .tflite, an .onnx and an .mlpackage, each
file checked in its own runtime or loader; the figures the doc states are the ones printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from doc_fences import fence, run_commands

from conftest import ROOT, SPECS

DOC = (ROOT / "docs" / "deploy.md").read_text()


def test_the_walk_through_runs_as_written(tmp_path: Path):
    (tmp_path / "specs").mkdir()
    for name in ("tf_efficientnet_lite0.arch", "efficientnet_lite.arch"):  # the spec and the family it imports
        shutil.copy(SPECS / name, tmp_path / "specs")
    (tmp_path / "archdsl.toml").write_text("")
    (tmp_path / "prepare.py").write_text(fence(DOC, "python", "EfficientnetLite0ModelFile"))
    done = run_commands(fence(DOC, "", "archdsl import-weights"), tmp_path)
    assert [c[1] for c, _ in done] == ["prepare.py", "import-weights", "verify", "export", "export", "export"]
    verify, int8 = done[2][1], done[3][1]
    assert verify.stdout.endswith("all backends agree\n")
    assert "every op integer; input int8, output int8" in int8.stderr
    agreement = next(x for x in int8.stderr.splitlines() if x.startswith("int8 vs float32 on 4 images"))
    assert "top-1 agrees on 4/4" in agreement and "top-5 overlap 1.00" in agreement and "SQNR 18.2 dB" in agreement, (
        agreement
    )
    assert (
        "top-1 agrees with float32 on 4 of 4 photos, the top-5\n  overlap is 1.00, and the logits' SQNR is 18.2 dB"
        in DOC
    )

    import coremltools as ct
    import onnx
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "lite0_int8.tflite"))
    (inp,) = interpreter.get_input_details()
    assert inp["dtype"] == np.int8 and list(inp["shape"]) == [1, 224, 224, 3]
    model = onnx.load(str(tmp_path / "lite0.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 18
    spec = ct.models.MLModel(str(tmp_path / "lite0.mlpackage"), skip_model_load=True).get_spec()
    assert [o.name for o in spec.description.output] == ["logits"]

    # CoreML for an app: the doc's command, with a labels file of the network's class count
    (tmp_path / "labels.txt").write_text("".join(f"class {i}\n" for i in range(1000)))
    ((_, app),) = run_commands(fence(DOC, "", "--input-type image"), tmp_path)
    closing = app.stderr.strip().splitlines()
    assert closing[-2].startswith("checked by the MIL evaluator: the converted fp16 program is within")
    assert "fp16, image input, 1000 labels, sizes 224x224, 256x256" in closing[-1]
    spec = ct.models.MLModel(str(tmp_path / "lite0_app.mlpackage"), skip_model_load=True).get_spec()
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs"]
