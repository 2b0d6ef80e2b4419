"""Trained weights back to canonical form (issue 18): the generated PyTorch and Keras modules'
`save_weights` write canonical safetensors with the spec's hash and form in their metadata,
undoing what training leaves behind (torch.compile's prefixes, channels_last, half precision,
`num_batches_tracked`); either framework's file loads into the other and into archdsl's
commands; `load_weights` names a file from another spec or of the other form."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch

from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_text
from archdsl.ir.deploy_form import deploy_form
from archdsl.runtimes.weights import init_weights, load_canonical, save_weights
from conftest import import_code, small_net

SPEC = small_net("ib k3 e4 c24 se0.25; mobileone k3 c24 branches=2")


@pytest.fixture
def trained(tmp_path):
    """The spec's network, its generated PyTorch module, and a model holding seed-3 weights
    (as if trained: not PyTorch's initialisation)."""
    net = compile_text(SPEC, "n.arch")
    module = import_code(get_backend("torch").emit(net), "torch_net", tmp_path)
    save_weights(init_weights(net, 3), tmp_path / "start.safetensors")
    model = module.load_weights(module.build_model(), str(tmp_path / "start.safetensors")).eval()
    return net, module, model


def _logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).float().numpy()


def _x(net) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, *net.input_shape), dtype=np.float32)


def test_torch_save_weights_writes_canonical_weights_with_the_specs_metadata(trained, tmp_path):
    net, module, model = trained
    path = tmp_path / "saved.safetensors"
    module.save_weights(model, str(path))
    weights, form = load_canonical(path, net)  # what archdsl's commands read
    assert form == "train" and all(np.array_equal(weights[k], v) for k, v in init_weights(net, 3).items())
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()["archdsl"])
    assert meta == {"network": "n", "source_hash": net.source_hash, "deploy": "False"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".weights-")] == []  # no temporary left


def test_torch_save_weights_undoes_what_training_leaves(trained, tmp_path):
    net, module, model = trained
    x = _x(net)
    expected = _logits(model, x)
    compiled = torch.compile(model)  # wraps the model: its state dict keys start with `_orig_mod.`
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    module.save_weights(compiled, str(tmp_path / "compiled.safetensors"))
    model.to(memory_format=torch.channels_last)  # non-contiguous weights
    module.save_weights(model, str(tmp_path / "channels_last.safetensors"))
    for name in ("compiled", "channels_last"):
        fresh = module.load_weights(module.build_model(), str(tmp_path / f"{name}.safetensors")).eval()
        np.testing.assert_array_equal(_logits(fresh, x), expected)
    from safetensors.numpy import load_file

    assert not any(k.endswith("num_batches_tracked") for k in load_file(str(tmp_path / "compiled.safetensors")))
    model.to(torch.bfloat16)
    with pytest.warns(UserWarning, match=r"saved as float32: \d+ tensor\(s\), e.g. .*bfloat16"):
        module.save_weights(model, str(tmp_path / "bf16.safetensors"))
    weights = load_file(str(tmp_path / "bf16.safetensors"))
    assert {v.dtype for v in weights.values()} == {np.dtype("float32")}


def test_load_weights_names_a_file_of_another_spec_or_form(trained, tmp_path):
    net, module, model = trained
    path = tmp_path / "saved.safetensors"
    module.save_weights(model, str(path))
    # the spec edited (a comment): another hash, the same tensors: loaded, with a warning
    edited = compile_text("# widths checked\n" + SPEC, "n.arch")
    assert edited.source_hash != net.source_hash
    other = import_code(get_backend("torch").emit(edited), "edited", tmp_path)
    with pytest.warns(
        UserWarning, match=f"was saved from another spec \\(n, hash {net.source_hash}\\); its tensors fit n"
    ):
        other.load_weights(other.build_model(), str(path))
    # another network: its tensors do not fit, and the message says whose file it is
    wider = import_code(get_backend("torch").emit(compile_text(small_net("ib k3 e4 c32"), "w.arch")), "wider", tmp_path)
    with pytest.raises(KeyError, match=f"saved from another spec \\(n, hash {net.source_hash}\\)"):
        wider.load_weights(wider.build_model(), str(path))
    # the deploy form's module refuses a train-form file by its metadata
    deploy = import_code(get_backend("torch").emit(deploy_form(net)), "deploy", tmp_path)
    with pytest.raises(ValueError, match="holds the train form of n: this module is the other form"):
        deploy.load_weights(deploy.build_model(), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own file: no warning at all
        module.load_weights(module.build_model(), str(path))


def test_keras_and_torch_load_each_others_saved_weights(trained, tmp_path):
    keras_module = pytest.importorskip("keras")  # noqa: F841 - TensorFlow's Keras 3
    net, module, model = trained
    x = _x(net)
    torch_file, keras_file = tmp_path / "from_torch.safetensors", tmp_path / "from_keras.safetensors"
    module.save_weights(model, str(torch_file))
    keras_net = import_code(get_backend("keras").emit(net), "keras_net", tmp_path)
    k = keras_net.load_weights(keras_net.build_model(), str(torch_file))
    keras_logits = np.asarray(k(np.transpose(x, (0, 2, 3, 1)), training=False))
    np.testing.assert_allclose(keras_logits, _logits(model, x), rtol=1e-4, atol=1e-5)
    keras_net.save_weights(k, str(keras_file))
    weights, form = load_canonical(keras_file, net)
    reference = init_weights(net, 3)
    assert form == "train" and weights.keys() == reference.keys()
    assert all(np.array_equal(weights[key], reference[key]) for key in reference)  # layouts undone exactly
    back = module.load_weights(module.build_model(), str(keras_file)).eval()
    np.testing.assert_array_equal(_logits(back, x), _logits(model, x))


def test_fine_tuning_for_other_classes_skips_the_classifier(trained, tmp_path):
    """Weights trained for 10 classes load into the same backbone built for 5 with
    `skip_classifier=True`: every other tensor is the file's, the classifier stays the model's."""
    net, module, model = trained
    path = tmp_path / "ten.safetensors"
    module.save_weights(model, str(path))
    five_net = compile_text(SPEC.replace("classes 10", "classes 5"), "five.arch")
    five = import_code(get_backend("torch").emit(five_net), "five", tmp_path)
    fresh = five.build_model()
    own = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith(five.CLASSIFIER + ".")}
    with pytest.raises(RuntimeError, match="size mismatch"):  # without it: the classifier does not fit
        five.load_weights(five.build_model(), str(path))
    with pytest.warns(UserWarning, match="saved from another spec"):
        tuned = five.load_weights(fresh, str(path), skip_classifier=True)
    state = tuned.state_dict()
    from safetensors.numpy import load_file

    saved = load_file(str(path))
    assert own and all(torch.equal(state[k], v) for k, v in own.items())
    assert all(np.array_equal(state[k].numpy(), saved[k]) for k in saved if not k.startswith(five.CLASSIFIER + "."))
    keras_net = import_code(get_backend("keras").emit(five_net), "keras_five", tmp_path)
    with pytest.warns(UserWarning, match="saved from another spec"):
        k = keras_net.load_weights(keras_net.build_model(), str(path), skip_classifier=True)
    (dense,) = [layer for layer in k.layers if keras_net._path(layer) == five.CLASSIFIER]
    assert dense.get_weights()[0].shape == (five_net.head.blocks[-1].cin, 5)


@pytest.mark.parametrize("spec", ["shufflenet_v1_g3", "shufflenet_v2_x1_0", "mnv4_hybrid_m", "mnv3_small"])
def test_a_keras_model_saves_and_reloads_without_custom_objects(spec, tmp_path):
    """The generated custom layers (attention, channel shuffle and slice, layer scale, constant
    padding) and activations are registered with Keras' serialization: a `.keras` file loads
    back with `keras.saving.load_model` alone, to the same outputs."""
    keras = pytest.importorskip("keras")
    from archdsl.compiler import compile_file
    from conftest import SPECS

    net = compile_file(SPECS / f"{spec}.arch", resolution=(64, 64))
    module = import_code(get_backend("keras").emit(net), f"keras_{spec}", tmp_path)
    save_weights(init_weights(net, 1), tmp_path / "w.safetensors")
    model = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors"))
    x = np.random.default_rng(2).standard_normal((1, 64, 64, 3), dtype=np.float32)
    model.save(tmp_path / "model.keras")
    back = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        np.asarray(back(x, training=False)), np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("damage", ["nan", "float16"])
def test_load_weights_names_the_first_tensor_that_is_not_finite_float32(trained, tmp_path, framework, damage):
    net, _, _ = trained
    weights = init_weights(net, 3)
    key = sorted(weights)[4]
    if damage == "nan":
        weights[key] = weights[key].copy()
        weights[key].flat[0] = np.nan
    else:
        weights[key] = weights[key].astype(np.float16)
    from safetensors.numpy import save_file

    save_file(weights, str(tmp_path / "bad.safetensors"))
    if framework == "keras":
        pytest.importorskip("keras")
    module = import_code(get_backend(framework).emit(net), f"{framework}_bad", tmp_path)
    with pytest.raises(ValueError, match=f"bad.safetensors: tensor {re.escape(key)} is not finite float32"):
        module.load_weights(module.build_model(), str(tmp_path / "bad.safetensors"))


DROP_PATH = small_net("ib k3 e4 c16 drop_path=0.5; ds k3 c16 drop_path=0.2")


def test_keras_stochastic_depth_drops_whole_branches_while_training_only(tmp_path):
    """The Keras code's DropPath, as PyTorch's drop_path: in inference the model is the PyTorch
    model's function; in training each sample's branch is kept with probability 1 - rate and
    scaled by 1 / (1 - rate)."""
    keras = pytest.importorskip("keras")
    net = compile_text(DROP_PATH, "dp.arch")
    save_weights(init_weights(net, 5), tmp_path / "w.safetensors")
    k_module = import_code(get_backend("keras").emit(net), "keras_dp", tmp_path)
    t_module = import_code(get_backend("torch").emit(net), "torch_dp", tmp_path)
    k = k_module.load_weights(k_module.build_model(), str(tmp_path / "w.safetensors"))
    t = t_module.load_weights(t_module.build_model(), str(tmp_path / "w.safetensors")).eval()
    x = _x(net)
    np.testing.assert_allclose(
        np.asarray(k(np.transpose(x, (0, 2, 3, 1)), training=False)), _logits(t, x), rtol=1e-4, atol=1e-5
    )
    drops = {k_module._path(layer): layer for layer in k.layers if type(layer).__name__ == "DropPath"}
    assert sorted(drops) == ["stages.0.blocks.1.drop_path", "stages.0.blocks.2.drop_path"]
    branch = np.ones((4000, 2, 2, 3), np.float32)
    out = np.asarray(drops["stages.0.blocks.1.drop_path"](branch, training=True))
    kept = out[:, 0, 0, 0] > 0
    assert 0.45 < kept.mean() < 0.55 and np.all(out[kept] == 2.0) and np.all(out[~kept] == 0.0)
    assert np.array_equal(np.asarray(drops["stages.0.blocks.1.drop_path"](branch, training=False)), branch)
    k.save(tmp_path / "dp.keras")
    assert [type(layer).__name__ for layer in keras.saving.load_model(tmp_path / "dp.keras").layers].count(
        "DropPath"
    ) == 2
