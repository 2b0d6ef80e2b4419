"""The generated models' interface for training code: timm's (`build_model(num_classes=...,
drop_rate=..., drop_path_rate=..., global_pool=...)`, `forward_features`, `forward_head`,
`reset_classifier`, `num_features`, `pretrained_cfg` from the spec's `preprocess`) in PyTorch, and
keras.applications' (`include_top`, `pooling`) in Keras, each checked against the model's own
forward pass and the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import SPECS, import_code

# The MobileNetV3 head: pool first, then a 1x1 conv on the pooled map, then the classifier.
POOL_FIRST = """\
network pf {
  input 64x64x3
  classes 10
  preprocess {
    mean inception
    std 0.5 0.5 0.5
    interpolation bilinear
    crop_pct 0.95
  }
  stem conv k3 s2 c16
  stage a {
    ib k3 s2 e4 c24
    ib k3 e4 c24
    ib k5 e4 c24
  }
  head {
    pool avg
    conv k1 c64 bias norm=none act=hard_swish
    classifier dropout=0.2
  }
}
"""
# The MobileNetV2 head: the 1x1 conv before the pool belongs to forward_features.
CONV_FIRST = POOL_FIRST.replace(
    "    pool avg\n    conv k1 c64 bias norm=none act=hard_swish\n", "    conv k1 c64\n    pool avg\n"
)


def _torch(text: str, tmp_path, name: str):
    from archdsl.codegen.registry import get_backend

    net = compile_text(text, f"{name}.arch")
    save_weights(init_weights(net, 0), tmp_path / f"{name}.safetensors")
    module = import_code(get_backend("torch").emit(net), f"{name}_torch", tmp_path)
    return net, module, str(tmp_path / f"{name}.safetensors")


@pytest.mark.parametrize(("text", "features", "hidden"), [(POOL_FIRST, 24, 64), (CONV_FIRST, 64, 64)])
def test_forward_is_forward_head_of_forward_features(text, features, hidden, tmp_path):
    net, module, weights = _torch(text, tmp_path, "n")
    model = module.load_weights(module.build_model(), weights).eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        f = model.forward_features(x)
        pre = model.forward_head(f, pre_logits=True)
        logits = model(x)
        by_modules = model.head(model.stages(model.stem(x)))  # the modules in order, as before
    assert f.shape == (2, features, 16, 16) and model.num_features == features
    assert pre.shape == (2, hidden) and model.head_hidden_size == hidden
    assert torch.equal(logits, by_modules) and torch.equal(model.head[-1].fc(pre), logits)


def test_build_model_takes_timms_arguments(tmp_path):
    net, module, weights = _torch(POOL_FIRST, tmp_path, "n")
    x = torch.randn(2, *net.input_shape)
    plain = module.load_weights(module.build_model(), weights).eval()
    # another class count: the rest of the weights load, the classifier is new
    seven = module.load_weights(module.build_model(num_classes=7), weights, skip_classifier=True).eval()
    none = module.load_weights(module.build_model(num_classes=0), weights, skip_classifier=True).eval()
    with torch.no_grad():
        assert seven(x).shape == (2, 7)
        assert torch.equal(none(x), plain.forward_head(plain.forward_features(x), pre_logits=True))
        maxed = module.load_weights(module.build_model(global_pool="max"), weights).eval()
        pooled = maxed.forward_features(x).amax((2, 3), keepdim=True)
        assert torch.allclose(maxed(x), maxed.head[-1](maxed.head[1](pooled)))
    assert sum(p.numel() for p in none.parameters()) == sum(p.numel() for p in plain.parameters()) - (64 * 10 + 10)
    assert (
        module.build_model(drop_rate=0.5).head[-1].dropout.p == 0.5
        and module.build_model(drop_rate=0.0).head[-1].dropout is None
    )
    with pytest.raises(ValueError, match="'avg' or 'max'"):
        module.build_model(global_pool="avgmax")


def test_drop_path_rate_follows_timms_schedule_and_acts_in_training(tmp_path):
    net, module, weights = _torch(POOL_FIRST, tmp_path, "n")
    model = module.load_weights(module.build_model(drop_path_rate=0.3), weights)
    rates = [getattr(b, "drop_path", None) for b in model.stages[0].blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2])  # stage block i of 3: 0.3 x i / 3
    x = torch.randn(4, *net.input_shape)
    with torch.no_grad():  # inert in eval
        plain = module.load_weights(module.build_model(), weights).eval()
        assert torch.equal(model.eval().forward_features(x), plain.forward_features(x))
    model.train()
    torch.manual_seed(0)
    a = model.forward_features(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model.forward_features(x))  # a different branch drops per seed


def test_drop_path_rate_on_a_network_without_residual_branches_is_refused(tmp_path):
    _, module, _ = _torch(
        POOL_FIRST.replace("    ib k3 s2 e4 c24\n    ib k3 e4 c24\n    ib k5 e4 c24\n", "    conv k3 s2 c24\n"),
        tmp_path,
        "plain",
    )
    with pytest.raises(ValueError, match="no block with a residual branch"):
        module.build_model(drop_path_rate=0.1)


def test_pretrained_cfg_says_the_input_and_the_specs_preprocessing(tmp_path):
    _, module, _ = _torch(POOL_FIRST, tmp_path, "n")
    cfg = module.build_model().pretrained_cfg
    assert cfg == {"input_size": (3, 64, 64), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
                   "std": (0.5, 0.5, 0.5), "crop_pct": 0.95, "num_classes": 10, "first_conv": "stem.0.conv",
                   "classifier": "head.2.fc"}  # fmt: skip
    model = module.build_model()
    assert model.get_submodule(cfg["classifier"]).out_features == 10
    assert model.get_submodule(cfg["first_conv"]).in_channels == 3
    plain = compile_text(POOL_FIRST.replace("    mean inception\n    std 0.5 0.5 0.5\n", ""))
    assert (plain.preprocess.mean, plain.preprocess.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    mean inception\n", "    mean 0.5 0.5\n", "mean has 2 values for 3 input channels"),
        ("    std 0.5 0.5 0.5\n", "    std 0.5 0 0.5\n", "std value must be"),
        ("    mean inception\n", "    mean imagenett\n", "unknown mean preset"),
        ("    crop_pct 0.95\n", "    crop_pct 1.5\n", "crop share must be"),
        ("    crop_pct 0.95\n", "    crop 0.95\n", "unknown preprocess setting 'crop'"),
        ("    interpolation bilinear\n", "    interpolation lanczos\n", "unknown interpolation"),
        ("  input 64x64x3\n", "  input 64x64x1\n", "mean has 3 values for 1 input channels"),
    ],
)
def test_preprocess_mistakes_are_located_errors(old, new, message):
    text = POOL_FIRST.replace(old, new)
    assert text != POOL_FIRST
    with pytest.raises(ArchError) as exc:
        compile_text(text, "t.arch")
    assert message in exc.value.message and exc.value.span is not None


def test_a_one_channel_input_needs_its_own_statistics():
    text = POOL_FIRST.replace("  input 64x64x3\n", "  input 64x64x1\n").replace(
        "    mean inception\n    std 0.5 0.5 0.5\n", "    mean 0.5\n"
    )
    with pytest.raises(ArchError, match="needs its std given"):
        compile_text(text, "t.arch")
    assert compile_text(text.replace("    mean 0.5\n", "    mean 0.5\n    std 0.25\n")).preprocess.std == (0.25,)


@pytest.mark.parametrize("text", [POOL_FIRST, CONV_FIRST])
def test_keras_include_top_false_is_torchs_forward_features(text, tmp_path):
    from archdsl.codegen.registry import get_backend

    net, tmodule, weights = _torch(text, tmp_path, "n")
    kmodule = import_code(get_backend("keras").emit(net), "n_keras", tmp_path)
    x = np.random.default_rng(0).standard_normal((2, *net.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = (
            tmodule.load_weights(tmodule.build_model(), weights).eval().forward_features(torch.from_numpy(x)).numpy()
        )
    nhwc = np.transpose(x, (0, 2, 3, 1))
    notop = kmodule.load_weights(kmodule.build_model(include_top=False), weights)
    np.testing.assert_allclose(np.transpose(np.asarray(notop(nhwc)), (0, 3, 1, 2)), expected, rtol=1e-5, atol=1e-5)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = kmodule.load_weights(kmodule.build_model(include_top=False, pooling=pooling), weights)
        np.testing.assert_allclose(np.asarray(pooled(nhwc)), reduce(expected, axis=(2, 3)), rtol=1e-5, atol=1e-5)
    assert not any(layer.name.startswith("head-2") for layer in notop.layers)  # no classifier


def test_every_spec_gives_forward_features_its_num_features():
    """The split is right on every family's head (pool first, conv first, MobileOne, ShuffleNet...)."""
    from archdsl.codegen.model_interface import head_split
    from archdsl.compiler import compile_file

    for path in sorted(SPECS.glob("*.arch")):
        if path.stem in ("efficientnet_lite", "mobileone", "mnv4_hybrid_medium", "mobile_former"):
            continue  # families
        net = compile_file(path)
        if net.dense_head is not None:
            continue  # its forward_features gives the endpoints (tests/test_dense_heads.py)
        split = head_split(net)
        # a global pool begins forward_head; Mobile-Former's merge pools inside itself (it reads the tokens too)
        merge = path.stem.startswith("mobile_former")
        assert net.head.blocks[split.pool].path in (f"head.{i}" for i in range(2)), path.stem
        assert split.global_pool != merge and (not merge or split.pool == 0), path.stem
        assert split.hidden == net.head.blocks[-1].cin, path.stem


def test_a_head_of_only_a_classifier_runs_it_once(tmp_path):
    """The stages already end in a global pool: forward_head is the classifier alone."""
    text = POOL_FIRST.replace("    ib k5 e4 c24\n", "    ib k5 e4 c24\n    pool avg\n").replace(
        "    pool avg\n    conv k1 c64 bias norm=none act=hard_swish\n    classifier", "    classifier"
    )
    net, module, weights = _torch(text, tmp_path, "n")
    assert [b.kind for b in net.head.blocks] == ["classifier"]
    model = module.load_weights(module.build_model(), weights).eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), model.head(model.stages(model.stem(x))))
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 24)
