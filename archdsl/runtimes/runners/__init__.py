"""Run generated code: build a backend's model from its source, load canonical weights, and
return every block's output (NCHW) for a given input. Frameworks are imported only here, and
only for the backend asked for."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ...blocks import kind_of
from ...errors import ArchError, UsageError, did_you_mean
from ...extras import RUNTIME_MODULES, require
from ...ir.network import Block, Network

# runner name -> (module:function, the backend whose generated code it runs)
RUNNERS = {
    "torch": ("archdsl.runtimes.runners.torch_runner:run", "torch"),
    "keras": ("archdsl.runtimes.runners.keras_runner:run", "keras"),
    "tflite": ("archdsl.runtimes.runners.tflite_runner:run", "keras"),
    "coreml": ("archdsl.runtimes.runners.coreml_runner:run", "coreml"),
    "onnx": ("archdsl.runtimes.runners.onnx_runner:run", "onnx"),
}
LOGITS_ONLY = frozenset({"tflite"})  # the converter fuses layers: block outputs are not kept

Outputs = dict[str, np.ndarray]  # block path (or "logits") -> NCHW array
TRAINABLE = ("torch", "keras")  # the runners with a `train_step`


@dataclass(frozen=True)
class StepResult:
    """What one training step (forward in train mode, cross-entropy, backward, plain SGD) gives:
    tensors keyed by canonical name, in PyTorch layout."""

    loss: float
    outputs: Outputs  # each block's output in the training forward pass
    gradients: dict[str, np.ndarray]  # of every trainable tensor
    after: dict[str, np.ndarray]  # every weight and running statistic once the step is taken


def runner(name: str) -> tuple[Callable[[str, Network, str, np.ndarray], Outputs], str]:
    if name not in RUNNERS:
        raise ArchError(f"unknown backend '{name}' for running", None, did_you_mean(name, RUNNERS))
    require(RUNTIME_MODULES[name], f"the {name} runner")
    target, backend = RUNNERS[name]
    module, func = target.split(":")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
    # coremltools logs, as warnings, that this torch / TensorFlow is newer than it has tested and
    # (off macOS) that its prediction proxies are missing: notices, not problems. Errors still show.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return getattr(importlib.import_module(module), func), backend


def train_step(name: str) -> Callable[..., StepResult]:
    """Runner `name`'s `train_step(code, net, weights, x, labels, lr, dtype)`."""
    if name not in TRAINABLE:
        raise UsageError(f"backend '{name}' cannot train", None,
                        f"verify --train compares {' and '.join(TRAINABLE)}; {name} runs inference only")  # fmt: skip
    run, _ = runner(name)
    return importlib.import_module(run.__module__).train_step  # type: ignore[no-any-return]


def load_module(code: str, name: str) -> types.ModuleType:
    """Execute generated source as a fresh module (no file needed)."""
    module = types.ModuleType(name)
    exec(compile(code, f"<archdsl generated {name}>", "exec"), module.__dict__)
    return module


def block_paths(net: Network) -> list[str]:
    return [b.path for b in net.blocks()]


def second_key(block: Block) -> str | None:
    """The output key of the second tensor of a block that gives a pair: `<path>.low` for an
    octave pair's low part, `<path>.tokens` for a map's tokens; None for one tensor."""
    pair = kind_of(block).pair_maps(block)
    second = pair[1].pair if pair is not None else None
    return f"{block.path}.{'low' if second == 'octave' else second}" if second else None


def _block_outputs(block: Block) -> tuple[str, ...]:
    """A block's output keys: its path, then the second tensor's where it gives a pair."""
    second = second_key(block)
    return (block.path, second) if second else (block.path,)


def feature_key(name: str) -> str:
    """The output key of an endpoint as the feature extractor gives it (beside the block's own)."""
    return f"features.{name}"


def output_key(name: str) -> str:
    """The key of a dense head's output `name` (a classifier's logits are its block's output)."""
    return f"outputs.{name}"


def model_outputs(net: Network) -> list[str]:
    """The keys of what the model returns: the logits (the last block's), or a dense head's outputs."""
    return [output_key(name) for name, _ in net.outputs()] if net.dense_head else block_paths(net)[-1:]


def tensor_blocks(net: Network) -> list[str]:
    """The blocks whose own output is one tensor (a dense head's are the model's outputs)."""
    return block_paths(net)[:-1] if net.dense_head else block_paths(net)


def tensor_outputs(net: Network) -> list[str]:
    """The output keys of `tensor_blocks`, with each pair's second tensor after its block."""
    paths = set(tensor_blocks(net))
    return [p for b in net.blocks() if b.path in paths for p in _block_outputs(b)]


def reported_paths(name: str, net: Network) -> list[str]:
    """The outputs runner `name` reports: every block's, or only the model's own (the logits, or
    a dense head's outputs), and each endpoint's from the network built as a feature extractor;
    the model's outputs come last."""
    inner = [] if name in LOGITS_ONLY else [p for b in net.blocks()[:-1] for p in _block_outputs(b)]
    return [*inner, *(feature_key(e.name) for e in net.endpoints), *model_outputs(net)]


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """TensorFlow and coremltools print progress on stdout (from Python and from C++); while they
    run, stdout is stderr, so that stdout carries only what archdsl writes there (`export -o -`,
    `verify --json`)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
