"""Quantized TFLite export (`export --backend tflite --quantize fp16|dynamic|int8`): int8
calibrated on real photos (scikit-image's bundled ones) prepared by the spec's `preprocess`,
every op read back from the converted model, and the int8 model compared with the float32
one; the calibration inputs checked against the definition of the preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli.main import main as cli
from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.runtimes import quantize
from conftest import small_net

NET = small_net("ib k3 s2 e4 c24 se0.25; ds k3 c24").replace("input 32x32x3", "input 64x64x3")
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


@pytest.fixture
def photos(tmp_path):
    import imageio.v3 as iio
    import skimage.data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        iio.imwrite(folder / f"{name}.png", getattr(skimage.data, name)())
    (folder / "notes.txt").write_text("not an image: left out")
    return folder


def _export(tmp_path, *args: str) -> int:
    spec = tmp_path / "n.arch"
    spec.write_text(NET)
    return cli(["export", str(spec), "--backend", "tflite", "--random-weights", *args])


def _tensors(path) -> list[dict]:
    import tensorflow as tf

    return tf.lite.Interpreter(model_path=str(path)).get_tensor_details()


@pytest.mark.parametrize("io", ["float32", "int8"])
def test_int8_is_integer_throughout_and_agrees_with_float32(tmp_path, photos, capsys, io):
    out = tmp_path / "n_int8.tflite"
    assert _export(tmp_path, "--quantize", "int8", "--calibration", str(photos), "--io", io, "-o", str(out)) == 0
    printed = capsys.readouterr().err
    report = quantize.op_report(out.read_bytes())
    assert not report.float_ops and (report.input_type, report.output_type) == (io, io)
    assert report.counts["CONV_2D"] >= 5 and "every op integer" in printed
    assert ("QUANTIZE" in report.counts) == (io == "float32")  # float IO: (de)quantized at the ends only
    conv_weights = [t for t in _tensors(out) if t["dtype"] == np.int8 and len(t["shape"]) == 4]
    assert conv_weights  # the weights themselves are int8
    line = next(x for x in printed.splitlines() if x.startswith("int8 vs float32 on 4 images"))
    sqnr = float(line.split("SQNR ")[1].split(" dB")[0])
    assert sqnr > 20  # random weights, 16 calibration inputs: far above noise, far below float


def test_fp16_and_dynamic_quantize_the_weights_only(tmp_path, capsys):
    import tensorflow as tf

    plain = tmp_path / "n.tflite"
    assert _export(tmp_path, "-o", str(plain)) == 0
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32)
    reference = quantize.run(plain.read_bytes(), [x])
    for mode, weight_type in (("fp16", np.float16), ("dynamic", np.int8)):
        out = tmp_path / f"n_{mode}.tflite"
        assert _export(tmp_path, "--quantize", mode, "-o", str(out)) == 0
        assert f"{mode} quantizes weights only" in capsys.readouterr().err
        assert any(t["dtype"] == weight_type and len(t["shape"]) == 4 for t in _tensors(out))
        got = quantize.run(out.read_bytes(), [x])
        assert np.max(np.abs(got - reference)) <= 0.05 * max(1.0, np.max(np.abs(reference))), mode
        assert tf.lite.Interpreter(model_path=str(out)).get_input_details()[0]["dtype"] == np.float32


def test_a_float_model_is_reported_as_computing_in_float(tmp_path):
    plain = tmp_path / "n.tflite"
    assert _export(tmp_path, "-o", str(plain)) == 0
    report = quantize.op_report(plain.read_bytes())
    assert report.float_ops and any(op.startswith("CONV_2D") for op in report.float_ops)


def test_calibration_inputs_are_the_preprocessed_centre_crop():
    """By the definition: shorter side to floor(size / crop_pct), centre crop, [0, 1], mean / std."""
    net = compile_text(NET.replace("  classes 10\n", "  classes 10\n  preprocess {\n    crop_pct 0.5\n  }\n"))
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 150:] = 255  # left half black, right half white: the crop straddles the edge
    x = quantize.prepare(image, net)[0]
    mean, std = np.asarray(net.preprocess.mean), np.asarray(net.preprocess.std)
    assert x.shape == (64, 64, 3)
    np.testing.assert_allclose(x[:, :20], np.broadcast_to(-mean / std, (64, 20, 3)), atol=1e-5)  # black
    np.testing.assert_allclose(x[:, -20:], np.broadcast_to((1 - mean) / std, (64, 20, 3)), atol=1e-5)  # white
    flat = quantize.prepare(np.full((50, 80, 3), 51, np.uint8), net)[0]
    np.testing.assert_allclose(flat, np.broadcast_to((0.2 - mean) / std, flat.shape), atol=1e-5)


def test_calibration_from_an_npz(tmp_path):
    net = compile_text(NET)
    images = np.random.default_rng(0).integers(0, 255, (3, 80, 90, 3), dtype=np.uint8)
    np.savez(tmp_path / "images.npz", images=images)
    got, samples = quantize.calibration_inputs(str(tmp_path / "images.npz"), net)
    assert len(got) == 3 and np.array_equal(got[0], quantize.prepare(images[0], net))
    assert len(samples) == 12 and np.array_equal(samples[6], got[0][:, :, ::-1])  # closer crops, then flips
    assert np.array_equal(samples[3], quantize.prepare(images[0], net, 0.7 * 0.875))
    inputs = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", inputs)
    got, samples = quantize.calibration_inputs(str(tmp_path / "inputs.npz"), net)
    assert np.array_equal(got[1][0], np.transpose(inputs[1], (1, 2, 0))) and len(samples) == 4  # as they are, NHWC
    np.savez(tmp_path / "bad.npz", np.zeros((2, 5), np.float32))
    with pytest.raises(ArchError, match="an array float32"):
        quantize.calibration_inputs(str(tmp_path / "bad.npz"), net)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--quantize", "int8"], 2, "calibrates on images"),
        (["--calibration", "x"], 2, "go with --quantize int8"),
        (["--quantize", "fp16", "--io", "int8"], 2, "go with --quantize int8, not fp16"),
        (["--quantize", "int8", "--calibration", "EMPTY"], 1, "no images"),
    ],
)
def test_quantization_mistakes_are_refused_before_any_work(tmp_path, capsys, args, code, message):
    (tmp_path / "EMPTY").mkdir()
    args = [str(tmp_path / a) if a == "EMPTY" else a for a in args]
    assert _export(tmp_path, *args, "-o", str(tmp_path / "out.tflite")) == code
    assert message in capsys.readouterr().err and not (tmp_path / "out.tflite").exists()


def test_quantize_is_for_tflite_only(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text(NET)
    argv = [
        "export",
        str(spec),
        "--backend",
        "coreml",
        "--random-weights",
        "--quantize",
        "fp16",
        "-o",
        str(tmp_path / "m.mlpackage"),
    ]
    assert cli(argv) == 2
    assert "--quantize is for tflite" in capsys.readouterr().err


def test_int8_hard_swish_is_spelled_for_delegated_integer_ops(tmp_path, photos, capsys):
    """An int8 HARD_SWISH has no XNNPACK kernel (TFLite's reference kernel runs it, two thirds of
    int8 MobileNetV3's time): the int8 build spells hard-swish as ops the converter does not fuse,
    the float32 build keeps the fused op. Same function either way."""
    from keras import ops

    from archdsl.codegen.registry import get_backend
    from archdsl.runtimes.runners import load_module

    spec = tmp_path / "n.arch"
    spec.write_text(NET.replace("ib k3 s2 e4 c24 se0.25", "ib k3 s2 e4 c24 se0.25 act=hard_swish"))
    common = ["export", str(spec), "--backend", "tflite", "--random-weights", "-o"]
    assert cli([*common, str(tmp_path / "f.tflite")]) == 0
    assert cli([*common, str(tmp_path / "q.tflite"), "--quantize", "int8", "--calibration", str(photos)]) == 0
    float_ops = quantize.op_report((tmp_path / "f.tflite").read_bytes()).counts
    int8 = quantize.op_report((tmp_path / "q.tflite").read_bytes())
    assert float_ops["HARD_SWISH"] == 2 and "HARD_SWISH" not in int8.counts and not int8.float_ops
    printed = capsys.readouterr().err
    sqnr = float(printed.split("SQNR ")[1].split(" dB")[0])
    assert sqnr > 20
    # the 1/6 of both hard-swishes and of the SE gate's hard-sigmoid went into the scales after them
    assert "\n3 multiplications by a constant folded into the scales after them\n" in printed
    assert int8.counts["MUL"] == 3  # x * relu6(x + 3), twice, and the SE gate

    module = load_module(get_backend("keras").emit(compile_text(NET.replace("se0.25", "se0.25 act=hard_swish"))), "hs")
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    fused = np.asarray(ops.convert_to_numpy(module.hard_swish(x)))
    quantize.unfuse_hard_swish(module)
    np.testing.assert_allclose(np.asarray(ops.convert_to_numpy(module.hard_swish(x))), fused, atol=1e-6)
    np.testing.assert_allclose(fused, x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)


HARD_SWISH_NET = """\
network hs {
  input 64x64x3
  classes 10
  stem conv k3 s2 c16 act=hard_swish
  stage a {
    ds k3 c16 act=hard_swish
    ib k3 s2 e4 c24 se0.25 act=hard_swish
  }
  head {
    conv k1 c64 act=hard_swish
    pool avg
    classifier
  }
}
"""


def test_a_multiplication_by_a_constant_folds_into_the_scales_after_it_and_nothing_else_changes(tmp_path):
    """hard-swish's and hard-sigmoid's 1/6, an int8 MUL each, removed where every value it
    reaches ends in a conv or dense layer (through a PAD, the SE's MEAN and gate, the head's
    pool and flatten), whose weight scales take the factor: 5 here. The stem's stays: its value
    also reaches the ds block's residual add. The integers computed are the same."""
    from archdsl.codegen.registry import get_backend
    from archdsl.runtimes.runners import load_module
    from archdsl.runtimes.tflite_fold import fold_scalar_multiplications
    from archdsl.runtimes.weights import init_weights, save_weights

    net = compile_text(HARD_SWISH_NET)
    save_weights(init_weights(net, 3), tmp_path / "w.safetensors")
    module = load_module(get_backend("keras").emit(net), "hs_fold")
    quantize.unfuse_hard_swish(module)
    model = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors"))
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 64, 64, 3)).astype(np.float32) for _ in range(8)]
    plain, not_folded = quantize.convert(model, "int8", samples, fold=False)
    folded = fold_scalar_multiplications(plain)
    assert not_folded is None and (folded.folded, folded.left) == (5, 1)
    assert folded.text().endswith("; 1 kept (it reaches a residual add, a concatenation or an output)")
    before, after = quantize.op_report(plain), quantize.op_report(folded.model)
    assert after.counts == {**before.counts, "MUL": before.counts["MUL"] - 5} and not after.float_ops
    got, want = quantize.run(folded.model, samples), quantize.run(plain, samples)
    step = np.abs(np.diff(np.unique(want))).min()  # one step of the output's int8 scale
    assert np.max(np.abs(got - want)) <= step and np.abs(want).max() > 10 * step
    again = fold_scalar_multiplications(folded.model)
    assert (again.folded, again.left, again.model) == (0, 1, folded.model)
