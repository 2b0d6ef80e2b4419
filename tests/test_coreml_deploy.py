"""Deploy-ready CoreML (`export --backend coreml --input-type image --labels F --sizes ...`): the
written .mlpackage is read back into a MIL program (coremltools' milproto loader) and run by the
reference evaluator (CoreML's own prediction needs macOS), at every size it declares, against
the fp32 program archdsl builds for that size; what cannot be exported is refused before any
file is written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from archdsl.cli.main import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.runtimes.mil_eval import run_program
from archdsl.runtimes.runners import load_module
from conftest import SPECS


def saved_program(package: Path):
    """The ML Program a written .mlpackage holds, as a pymil program, and its spec."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    weights = os.path.join(package, "Data", "com.apple.CoreML", "weights")
    return load(spec, spec.specificationVersion, weights), spec


def static_outputs(spec: Path, size: tuple[int, int], weights: str, x: np.ndarray) -> dict:
    """The fp32 program archdsl builds for the network compiled at `size`, run on `x`."""
    net = compile_file(spec, resolution=size)
    return run_program(load_module(get_backend("coreml").emit(net), "static").build_program(weights), {"image": x})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random canonical weights of the specs these tests export (the spec name -> file)."""
    folder = tmp_path_factory.mktemp("weights")
    made = {}
    for name in ("shufflenet_v1_g3", "mnv4_hybrid_m", "mnv4_conv_s"):
        made[name] = str(folder / f"{name}.safetensors")
        assert cli(["init-weights", str(SPECS / f"{name}.arch"), "--seed", "1", "-o", made[name]]) == 0
    return made


@pytest.mark.parametrize(("name", "sizes"), [("shufflenet_v1_g3", [(224, 224), (256, 256)]),
                                             ("mnv4_hybrid_m", [(256, 256), (320, 288)])])  # fmt: skip
def test_an_image_classifier_at_every_size_computes_the_network(tmp_path, weights, name, sizes, capsys):
    # ImageNet's std differs per channel: CoreML's one image scale plus the program's multiply;
    # channel shuffles and attention read their spatial shape at run time
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i:04d}\n" for i in range(1000)))
    out = tmp_path / "m.mlpackage"
    argv = ["export", str(SPECS / f"{name}.arch"), "--backend", "coreml", "--weights", weights[name], "-o", str(out),
            "--input-type", "image", "--labels", str(labels), "--sizes", ",".join(f"{h}x{w}" for h, w in sizes)]  # fmt: skip
    assert cli(argv) == 0
    closing = capsys.readouterr().err.strip().splitlines()
    assert closing[-2].startswith("checked by the MIL evaluator: the converted fp32 program is within")
    assert closing[-1].startswith(f"wrote {out} (") and "image input, 1000 labels, sizes" in closing[-1]
    program, spec = saved_program(out)
    image = spec.description.input[0].type.imageType
    assert image.colorSpace == image.RGB
    assert [(s.height, s.width) for s in image.enumeratedSizes.sizes] == sizes
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs"]
    net = compile_file(SPECS / f"{name}.arch")
    mean, std = (np.array(v, np.float32).reshape(1, 3, 1, 1) for v in (net.preprocess.mean, net.preprocess.std))
    for h, w in sizes:
        pixels = np.random.default_rng(h).integers(0, 256, (1, 3, h, w)).astype(np.float32)
        logits = static_outputs(SPECS / f"{name}.arch", (h, w), weights[name], (pixels / 255 - mean) / std)["logits"]
        got = run_program(program, {"image": pixels})
        probabilities = np.array([got["classLabel_probs"][f"class {i:04d}"] for i in range(1000)])
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert np.abs(probabilities - expected.reshape(-1)).max() <= 1e-4 * expected.max()
        assert got["classLabel"] == f"class {int(np.argmax(logits)):04d}"


def test_fp16_is_checked_and_refused_when_it_overflows(tmp_path, weights, capsys):
    from safetensors.numpy import load_file, save_file

    spec = str(SPECS / "mnv4_conv_s.arch")
    out = tmp_path / "m.mlpackage"
    assert cli(["export", spec, "--backend", "coreml", "--weights", weights["mnv4_conv_s"], "--precision", "fp16",
                "-o", str(out)]) == 0  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-2]
    assert line.startswith("checked by the MIL evaluator: the converted fp16 program is within")
    assert float(line.split("within ")[1].split(" ")[0]) <= 1e-2 and line.endswith("tolerance 1e-02")
    program, _ = saved_program(out)  # the saved fp16 program: fp16 rounding between its ops
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = static_outputs(SPECS / "mnv4_conv_s.arch", (224, 224), weights["mnv4_conv_s"], x)["logits"]
    error = np.abs(run_program(program, {"image": x})["logits"] - want).max() / np.abs(want).max()
    assert 1e-4 < error <= 1e-2  # fp16 really rounds (the fp32 program agrees within 1e-6), and stays close

    huge = load_file(weights["mnv4_conv_s"])
    huge["head.2.fc.weight"] = huge["head.2.fc.weight"] * np.float32(1e6)  # logits beyond fp16's 65504
    save_file(huge, str(tmp_path / "huge.safetensors"))
    bad = tmp_path / "bad.mlpackage"
    assert cli(["export", spec, "--backend", "coreml", "--weights", str(tmp_path / "huge.safetensors"),
                "--precision", "fp16", "-o", str(bad)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "the converted fp16 model's 'logits'" in err and "beyond 1e-02" in err and "65504" in err
    assert not bad.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sizes_that_change_the_network_are_refused(tmp_path, capsys):
    out = tmp_path / "m.mlpackage"
    argv = ["export", str(SPECS / "lraspp_mnv3_large.arch"), "--backend", "coreml", "--random-weights", "-o", str(out),
            "--sizes", "512,544"]  # fmt: skip
    assert cli(argv) == 1 and not out.exists()
    err = capsys.readouterr().err
    assert (
        "at 512x512 the network is not the one it is at 520x520" in err
        and "`target_size_height=65,` becomes `target_size_height=64,`" in err
    )


@pytest.mark.parametrize(
    ("labels", "extra", "message"),
    [
        ("a\nb\n", [], "has 2 labels for 1000 classes"),
        (
            "".join(f"c{i}\n" for i in range(999)) + "c7\n",
            [],
            "labels.txt:1000:1: error: label on line 1000 repeats line 8",
        ),
        ("a\n\nb\n", [], "labels.txt:2:1: error: label on line 2 is empty"),
        (None, ["--sizes", "224,0"], "--sizes: '0' is not a size"),
        (None, ["--sizes", "224,224x224"], "--sizes: 224x224 is given twice"),
        (None, ["--backend", "onnx", "--sizes", "224"], "--sizes is for CoreML models"),
    ],
)
def test_bad_deploy_options_are_located_errors(tmp_path, capsys, labels, extra, message):
    argv = ["export", str(SPECS / "mnv4_conv_s.arch"), "--random-weights", "-o", str(tmp_path / "m.mlpackage")]
    if labels is not None:
        (tmp_path / "labels.txt").write_text(labels)
        argv += ["--labels", str(tmp_path / "labels.txt")]
    argv += extra if "--backend" in extra else ["--backend", "coreml", *extra]
    assert cli(argv) in (1, 2)
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == ([tmp_path / "labels.txt"] if labels is not None else [])


def test_labels_need_a_classifier(tmp_path, capsys):
    (tmp_path / "labels.txt").write_text("".join(f"c{i}\n" for i in range(91)))
    argv = ["export", str(SPECS / "ssdlite320_mnv3_large.arch"), "--backend", "coreml", "--random-weights",
            "-o", str(tmp_path / "m.mlpackage"), "--labels", str(tmp_path / "labels.txt")]  # fmt: skip
    assert cli(argv) == 2
    assert "--labels makes a classifier: ssdlite320_mnv3_large's export is its ssdlite head" in capsys.readouterr().err
