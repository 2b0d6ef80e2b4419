"""Test-only plain-PyTorch references for two torchvision models on MobileNetV3-Large.

`ssdlite320_mobilenet_v3_large` (detection, as built without a pretrained backbone: reduced
tail) and `lraspp_mobilenet_v3_large` (segmentation, dilated backbone), rebuilt in torch alone
from the structure torchvision publishes in `models/mobilenetv3.py`, `models/detection/ssdlite.py`
and `models/segmentation/lraspp.py`; torchvision itself is not imported. Module paths follow
torchvision's module tree (its state_dict keys should load with `strict=True`; no real
checkpoint was at hand to confirm it). Only the networks are here: no anchors, image transform
or postprocessing. `ssdlite_to_archdsl_state` and
`lraspp_to_archdsl_state` rename a reference state_dict onto archdsl's canonical weight names
(specs/ssdlite320_mnv3_large.arch, specs/lraspp_mnv3_large.arch), so that a test can load one
set of weights into both and compare outputs.

`python tests/torchvision_heads_reference.py` checks params and MACs against torchvision's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

Norm = Callable[[int], nn.Module]


class Bneck(NamedTuple):
    """One MobileNetV3 bottleneck: input, kernel, expanded and output channels, SE, activation, stride."""

    cin: int
    kernel: int
    mid: int
    cout: int
    se: bool
    hard_swish: bool
    stride: int
    dilation: int = 1


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never below it nor more than 10% under `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def bneck_table(reduced_tail: bool = False, dilated: bool = False) -> list[Bneck]:
    """MobileNetV3-Large's 15 bottlenecks; the last three halved (`reduced_tail`) or dilated."""
    r, d = (2 if reduced_tail else 1), (2 if dilated else 1)
    return [
        Bneck(16, 3, 16, 16, False, False, 1),
        Bneck(16, 3, 64, 24, False, False, 2),
        Bneck(24, 3, 72, 24, False, False, 1),
        Bneck(24, 5, 72, 40, True, False, 2),
        Bneck(40, 5, 120, 40, True, False, 1),
        Bneck(40, 5, 120, 40, True, False, 1),
        Bneck(40, 3, 240, 80, False, True, 2),
        Bneck(80, 3, 200, 80, False, True, 1),
        Bneck(80, 3, 184, 80, False, True, 1),
        Bneck(80, 3, 184, 80, False, True, 1),
        Bneck(80, 3, 480, 112, True, True, 1),
        Bneck(112, 3, 672, 112, True, True, 1),
        Bneck(112, 5, 672, 160 // r, True, True, 2, d),
        Bneck(160 // r, 5, 960 // r, 160 // r, True, True, 1, d),
        Bneck(160 // r, 5, 960 // r, 160 // r, True, True, 1, d),
    ]


def conv_norm_act(
    cin: int,
    cout: int,
    kernel: int,
    norm: Norm,
    act: Callable[..., nn.Module] | None,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
) -> nn.Sequential:
    """Bias-free conv with 'same' padding -> norm [-> act], as children 0, 1 [, 2]."""
    padding = (kernel - 1) // 2 * dilation
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False)
    return nn.Sequential(conv, norm(cout), *([act(inplace=True)] if act is not None else []))


class SqueezeExcite(nn.Module):
    """x * hardsigmoid(fc2(relu(fc1(mean of x)))); fc1 squeezes to make_divisible(C // 4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = make_divisible(channels // 4, 8)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(scale))))


class InvertedResidual(nn.Module):
    """[1x1 expand] -> depthwise -> [SE] -> 1x1 project (no act) [+ input], in `block`."""

    def __init__(self, cfg: Bneck, norm: Norm) -> None:
        super().__init__()
        act = nn.Hardswish if cfg.hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if cfg.mid != cfg.cin:
            layers.append(conv_norm_act(cfg.cin, cfg.mid, 1, norm, act))
        stride = 1 if cfg.dilation > 1 else cfg.stride  # a dilated block keeps its resolution
        layers.append(conv_norm_act(cfg.mid, cfg.mid, cfg.kernel, norm, act, stride, cfg.mid, cfg.dilation))
        if cfg.se:
            layers.append(SqueezeExcite(cfg.mid))
        layers.append(conv_norm_act(cfg.mid, cfg.cout, 1, norm, None))
        self.block = nn.Sequential(*layers)
        self.residual = cfg.stride == 1 and cfg.cin == cfg.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


def mobilenet_v3_large_features(norm: Norm, reduced_tail: bool = False, dilated: bool = False) -> list[nn.Module]:
    """torchvision's `features`: stem, 15 bottlenecks, last 1x1 conv to 6x the last width (17 layers)."""
    table = bneck_table(reduced_tail, dilated)
    layers: list[nn.Module] = [conv_norm_act(3, 16, 3, norm, nn.Hardswish, stride=2)]
    layers += [InvertedResidual(cfg, norm) for cfg in table]
    layers.append(conv_norm_act(table[-1].cout, 6 * table[-1].cout, 1, norm, nn.Hardswish))
    return layers


# --- SSDLite320 ---------------------------------------------------------------------------------

C4 = 13  # the 13th bottleneck (features[13]): the first map is the output of its expansion conv
ANCHORS = 6  # per position on every map: aspect ratios [2, 3] give 2 + 2 * 2 boxes


def extra_block(cin: int, cout: int, norm: Norm) -> nn.Sequential:
    """1x1 to cout // 2, 3x3 depthwise at stride 2, 1x1 to cout; each with BN and ReLU6."""
    mid = cout // 2
    return nn.Sequential(
        conv_norm_act(cin, mid, 1, norm, nn.ReLU6),
        conv_norm_act(mid, mid, 3, norm, nn.ReLU6, stride=2, groups=mid),
        conv_norm_act(mid, cout, 1, norm, nn.ReLU6),
    )


class SSDLiteBackbone(nn.Module):
    """The backbone split at C4's expansion (features.0 | features.1), then four extra blocks: 6 maps."""

    def __init__(self, norm: Norm) -> None:
        super().__init__()
        layers = mobilenet_v3_large_features(norm, reduced_tail=True)
        c4 = layers[C4].block
        self.features = nn.Sequential(nn.Sequential(*layers[:C4], c4[0]), nn.Sequential(c4[1:], *layers[C4 + 1 :]))
        widths = [layers[-1][0].out_channels, 512, 256, 256, 128]
        self.extra = nn.ModuleList(extra_block(a, b, norm) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for block in [*self.features, *self.extra]:
            x = block(x)
            maps.append(x)
        return maps


class ScoringHead(nn.Module):
    """A prediction block per map; (N, A*K, H, W) -> (N, H*W*A, K), concatenated over the maps."""

    def __init__(self, channels: list[int], columns: int, norm: Norm) -> None:
        super().__init__()
        self.columns = columns
        self.module_list = nn.ModuleList(
            nn.Sequential(conv_norm_act(c, c, 3, norm, nn.ReLU6, groups=c), nn.Conv2d(c, ANCHORS * columns, 1))
            for c in channels
        )

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        results = []
        for block, x in zip(self.module_list, maps, strict=True):
            y = block(x)
            n, _, h, w = y.shape
            y = y.view(n, -1, self.columns, h, w).permute(0, 3, 4, 1, 2)
            results.append(y.reshape(n, -1, self.columns))
        return torch.cat(results, dim=1)


class SSDLiteHead(nn.Module):
    def __init__(self, channels: list[int], num_classes: int, norm: Norm) -> None:
        super().__init__()
        self.classification_head = ScoringHead(channels, num_classes, norm)
        self.regression_head = ScoringHead(channels, 4, norm)

    def forward(self, maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"bbox_regression": self.regression_head(maps), "cls_logits": self.classification_head(maps)}


class SSDLite320(nn.Module):
    """The network of torchvision's SSD wrapper: image tensor in, the raw head outputs out."""

    def __init__(self, num_classes: int = 91) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        self.backbone = SSDLiteBackbone(norm)
        self.head = SSDLiteHead([672, 480, 512, 256, 256, 128], num_classes, norm)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(x))


def ssdlite320_mobilenet_v3_large(num_classes: int = 91) -> SSDLite320:
    return SSDLite320(num_classes)


# --- LR-ASPP ------------------------------------------------------------------------------------

LOW, HIGH = 4, 16  # features[4]: the first 40-channel block (1/8); features[16]: the last conv (1/16)


class LRASPPHead(nn.Module):
    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter: int = 128) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, inter, 1, bias=False), nn.BatchNorm2d(inter), nn.ReLU())
        squeeze = nn.Conv2d(high_channels, inter, 1, bias=False)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), squeeze, nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPP(nn.Module):
    """Dilated MobileNetV3-Large features (`backbone.0` .. `backbone.16`) and the LR-ASPP head."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        self.backbone = nn.Sequential(*mobilenet_v3_large_features(norm, dilated=True))
        self.classifier = LRASPPHead(40, 960, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, low = x, x
        for i, layer in enumerate(self.backbone):
            y = layer(y)
            if i == LOW:
                low = y
        out = self.classifier(low, y)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def lraspp_mobilenet_v3_large(num_classes: int = 21) -> LRASPP:
    return LRASPP(num_classes)


# --- renaming onto archdsl's canonical weights --------------------------------------------------

# (stage, block) of bottlenecks 1..15 in the specs; SSDLite's 13th is two blocks, 5.0 and 5.1.
BNECK_PLACES = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2), (3, 3), (4, 0), (4, 1)]
BNECK_PLACES += [(5, 0), (5, 1), (5, 2)]


def _conv_bn(ref: str, arch: str) -> dict[str, str]:
    return {f"{ref}.0": f"{arch}.conv", f"{ref}.1": f"{arch}.bn"}


def _layers(ref: str, arch: str, names: list[str], first: int = 0) -> dict[str, str]:
    """Children `first`, `first + 1`, ... of `ref` onto `arch`'s named parts (a ds or ib block)."""
    modules: dict[str, str] = {}
    for j, name in enumerate(names, first):
        if name == "se":
            modules |= {f"{ref}.{j}.fc1": f"{arch}.se.reduce", f"{ref}.{j}.fc2": f"{arch}.se.expand"}
        else:
            modules |= _conv_bn(f"{ref}.{j}", f"{arch}.{name}")
    return modules


def _bneck_names(cfg: Bneck) -> list[str]:
    """archdsl's parts: a ds block (dw, pw) without an expansion, else an ib (expand, dw_mid, project)."""
    if cfg.mid == cfg.cin:
        return ["dw", *(["se"] if cfg.se else []), "pw"]
    return ["expand", "dw_mid", *(["se"] if cfg.se else []), "project"]


def _rename(state: dict[str, torch.Tensor], modules: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        module, leaf = key.rsplit(".", 1)
        if module not in modules:
            raise KeyError(f"{key}: no archdsl name for module {module}")
        out[f"{modules[module]}.{leaf}"] = value
    return out


def ssdlite_module_map() -> dict[str, str]:
    """Reference module path -> archdsl module path, for SSDLite320."""
    modules = _conv_bn("backbone.features.0.0", "stem.0")
    for b, (cfg, (stage, block)) in enumerate(zip(bneck_table(reduced_tail=True), BNECK_PLACES, strict=True), 1):
        if b < C4:
            modules |= _layers(f"backbone.features.0.{b}.block", f"stages.{stage}.blocks.{block}", _bneck_names(cfg))
        elif b > C4:  # after C4, a block further on in the spec (C4 is two blocks there)
            modules |= _layers(f"backbone.features.1.{b - C4}.block", f"stages.5.blocks.{block + 1}", _bneck_names(cfg))
    modules |= _conv_bn(f"backbone.features.0.{C4}", "stages.5.blocks.0")  # C4's expansion: a conv block
    modules |= _layers("backbone.features.1.0", "stages.5.blocks.1", ["dw", "se", "pw"], first=1)  # the rest: a ds
    modules |= _conv_bn("backbone.features.1.3", "stages.6.blocks.0")
    for j in range(4):
        for k in range(3):
            modules |= _conv_bn(f"backbone.extra.{j}.{k}", f"stages.{7 + j}.blocks.{k}")
    for ref, arch in (("regression_head", "boxes"), ("classification_head", "scores")):
        for i in range(6):
            modules |= _conv_bn(f"head.{ref}.module_list.{i}.0", f"head.0.{arch}.{i}.dw")
            modules[f"head.{ref}.module_list.{i}.1"] = f"head.0.{arch}.{i}.pw.conv"
    return modules


def lraspp_module_map() -> dict[str, str]:
    """Reference module path -> archdsl module path, for LR-ASPP."""
    modules = _conv_bn("backbone.0", "stem.0")
    for b, (cfg, (stage, block)) in enumerate(zip(bneck_table(dilated=True), BNECK_PLACES, strict=True), 1):
        modules |= _layers(f"backbone.{b}.block", f"stages.{stage}.blocks.{block}", _bneck_names(cfg))
    modules |= _conv_bn(f"backbone.{HIGH}", "stages.6.blocks.0")
    modules |= _conv_bn("classifier.cbr", "head.0.cbr")
    modules["classifier.scale.1"] = "head.0.scale.conv"
    modules["classifier.low_classifier"] = "head.0.low_classifier.conv"
    modules["classifier.high_classifier"] = "head.0.high_classifier.conv"
    return modules


def ssdlite_to_archdsl_state(reference_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An SSDLite320 reference (or torchvision) state_dict under archdsl's names."""
    return _rename(reference_state_dict, ssdlite_module_map())


def lraspp_to_archdsl_state(reference_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An LR-ASPP reference (or torchvision) state_dict under archdsl's names."""
    return _rename(reference_state_dict, lraspp_module_map())


# --- figures ------------------------------------------------------------------------------------

# torchvision's own: params, and MACs on a 1x3xHxW input.
EXPECTED = {"ssdlite320": (320, 3_440_060, 583_171_904), "lraspp": (520, 3_221_538, 2_086_219_688)}


def figures(model: nn.Module, hw: int) -> tuple[int, int]:
    """(params, MACs): parameter count, and FlopCounterMode's flops / 2 on a 1x3xhwxhw input in eval mode."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, hw, hw))
    model.train(was_training)
    return params, counter.get_total_flops() // 2


if __name__ == "__main__":
    failed = False
    for name, build in (("ssdlite320", ssdlite320_mobilenet_v3_large), ("lraspp", lraspp_mobilenet_v3_large)):
        hw, want_params, want_macs = EXPECTED[name]
        params, macs = figures(build(), hw)
        ok = (params, macs) == (want_params, want_macs)
        failed |= not ok
        verdict = "matches torchvision" if ok else f"torchvision: {want_params:,} params, {want_macs:,} MACs"
        print(f"{name} at {hw}x{hw}: {params:,} params, {macs:,} MACs ({verdict})")
    raise SystemExit(1 if failed else 0)
