"""The CoreML backend: a Python module that builds the network directly as a MIL program with
coremltools' Builder, from canonical weights. Not a trace of the PyTorch model: the generated
code is the CoreML definition. Padding is explicit (`pad_type="custom"`), BN epsilon explicit,
activations written as the same formulas as the other backends, op names are IR paths, and
each block ends in an `identity` op named by its path, so its output can be compared."""

from __future__ import annotations

from ..ir.nodes import ConvBnAct, MobileAttention, Network, Pool, SqueezeExcite, Stage
from .base import Backend, Call, Header, block_comment, environment, stage_comment
from .steps import (
    ActivationStep,
    AddShortcut,
    Branch,
    ConcatStep,
    Dense,
    Flatten,
    KeepShortcut,
    LayerScaleStep,
    Line,
    ShuffleStep,
    SplitStep,
    Step,
    SumBranches,
    attention_args,
    quoted,
    steps,
)


def _call(name: str, *args: tuple[str, str], target: str = "x") -> Line:
    return Line(Call(name, tuple(args), trailing_comma=False), target)


def conv_line(c: ConvBnAct, target: str = "x", source: str = "x") -> Line:
    args: list[tuple[str, str]] = [("", source), ("", "w"), ("", quoted(c.path))]
    if c.stride != 1:
        args.append(("stride", str(c.stride)))
    if any(c.padding):
        args.append(("padding", str(c.padding)))
    if c.groups != 1:
        args.append(("groups", str(c.groups)))
    if c.bias:
        args.append(("bias", "True"))
    if c.norm is not None:
        args.append(("eps", repr(c.norm.eps)))
    if c.act != "identity":
        args.append(("act", quoted(c.act)))
    return _call("conv_bn_act", *args, target=target)


def step_line(step: Step) -> list[Line]:
    if isinstance(step, KeepShortcut):
        return [Line("x", "shortcut")]
    if isinstance(step, ConvBnAct):
        return [conv_line(step)]
    if isinstance(step, Branch):
        if isinstance(step.layer, ConvBnAct):
            return [conv_line(step.layer, step.target, step.source)]
        if isinstance(step.layer, Pool):
            return [pool_line(step.layer, step.source, step.target)]
        eps = repr(step.layer.norm.eps)
        path = quoted(step.layer.path)
        return [_call("batch_norm", ("", step.source), ("", "w"), ("", path), ("", eps), target=step.target)]
    if isinstance(step, ConcatStep):
        values = f"[{', '.join(step.sources)}]"
        lines = [_call("mb.concat", ("values", values), ("axis", "1"), ("name", quoted(step.path)))]
        if step.cut:
            lines.append(_slice("x", 0, step.channels, f"{step.path}.cut"))
        return lines
    if isinstance(step, SplitStep):
        kept = _slice("x", 0, step.half, f"{step.path}.kept", target="kept")
        return [kept, _slice("x", step.half, step.half, f"{step.path}.rest")]
    if isinstance(step, ShuffleStep):
        return [_call("channel_shuffle", ("", "x"), ("", str(step.groups)), ("", quoted(step.path)))]
    if isinstance(step, SumBranches):
        return [_call("sum_branches", ("", f"[{', '.join(step.sources)}]"), ("", quoted(step.path)))]
    if isinstance(step, ActivationStep):
        return [_call("activation", ("", "x"), ("", quoted(step.act)), ("", quoted(step.path)))]
    if isinstance(step, SqueezeExcite):
        return [
            _call(
                "squeeze_excite",
                ("", "x"),
                ("", "w"),
                ("", quoted(step.path)),
                ("act", quoted(step.act)),
                ("gate", quoted(step.gate)),
            )
        ]
    if isinstance(step, MobileAttention):
        return [attention_line(step)]
    if isinstance(step, LayerScaleStep):
        return [_call("layer_scale", ("", "x"), ("", "w"), ("", quoted(step.path)))]
    if isinstance(step, AddShortcut):
        return [_call("mb.add", ("x", "shortcut"), ("y", "x"), ("name", quoted(step.path)))]
    if isinstance(step, Pool):
        return [pool_line(step)]
    if isinstance(step, Flatten):
        return [_call("mb.reshape", ("x", "x"), ("shape", "[1, -1]"), ("name", quoted(f"{step.path}.flatten")))]
    if isinstance(step, Dense):  # dropout is inert at inference
        name = f"{step.path}.fc"
        weight, bias = f'w["{name}.weight"]', f'w["{name}.bias"]'
        return [_call("mb.linear", ("x", "x"), ("weight", weight), ("bias", bias), ("name", quoted(name)))]
    return [_call("mb.identity", ("x", "x"), ("name", quoted(step.path)))]


def attention_line(a: MobileAttention) -> Line:
    args = [("", "x"), ("", "w"), ("", quoted(a.path)), *attention_args(a)]
    if a.key_down is not None:
        args.append(("kv_padding", str(a.key_down.padding)))
    return _call("mobile_attention", *args)


def _slice(source: str, start: int, size: int, name: str, target: str = "x") -> Line:
    """`size` channels from `start`."""
    args = (("x", source), ("begin", f"[0, {start}, 0, 0]"), ("size", f"[-1, {size}, -1, -1]"), ("name", quoted(name)))
    return _call("mb.slice_by_size", *args, target=target)


def pool_line(p: Pool, source: str = "x", target: str = "x") -> Line:
    name = ("name", quoted(f"{p.path}.pool"))
    op = "mb.reduce_mean" if p.mode == "avg" else "mb.reduce_max"
    if p.is_global:
        return _call(op, ("x", source), ("axes", "[2, 3]"), ("keep_dims", "True"), name, target=target)
    args = [("x", source), ("kernel_sizes", f"[{p.kernel}, {p.kernel}]"), ("strides", f"[{p.stride}, {p.stride}]"),
            ("pad_type", '"custom"'), ("pad", f"[{', '.join(map(str, p.padding))}]")]  # fmt: skip
    if p.mode == "avg":
        args.append(("exclude_padding_from_average", str(not p.include_pad)))
    return _call("mb.avg_pool" if p.mode == "avg" else "mb.max_pool", *args, name, target=target)


class CoreMLBackend(Backend):
    name = "coreml"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)

        def stage_ctx(stage: Stage) -> dict:
            blocks = [
                {"comment": block_comment(b, header.block_costs[b.path]), "lines": [ln for s in steps(b) for ln in step_line(s)]}
                for b in stage.blocks
            ]  # fmt: skip
            return {"comment": stage_comment(stage, header.stage_costs[stage.path]), "blocks": blocks}

        return (
            environment(self.name)
            .get_template("module.py.j2")
            .render(
                header=header,
                stages=[stage_ctx(s) for s in net.all_stages()],
                uses_branches=any(isinstance(s, SumBranches) for b in net.blocks() for s in steps(b)),
                uses_attention=any(isinstance(b, MobileAttention) for b in net.blocks()),
                uses_shuffle=any(isinstance(s, ShuffleStep) for b in net.blocks() for s in steps(b)),
                input_shape=f"(1, {', '.join(map(str, net.input_shape))})",
            )
        )
