"""CoreML models ready for an app: an image input, class labels, enumerated input sizes, and the
check that the converted program (what ships, fp16 included) computes the network.

The check runs the converted ML Program through archdsl's MIL evaluator (`mil_eval`; CoreML's
own prediction needs macOS) and compares it with the fp32 program built at each input size.
fp32 must agree within 1e-4 of the output's largest magnitude, as every backend does. fp16 is
held to 1e-2: a float16 rounding costs up to 2^-11 (4.9e-4) of a value, and over some fifty
layers the measured drift of every spec here is 1-3 such units (5e-4 to 1.4e-3, random
weights); 1e-2, some twenty units, passes honest rounding and fails what fp16 really breaks:
overflow past 65504, underflow of small activations, a saturated softmax."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ArchError, Span, UsageError
from ..input_files import read_text
from ..ir.network import Network
from .mil_eval import run_program

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
MAX_LABEL = 200  # characters; class names are words or short phrases
MAX_SIZE = 4096  # pixels a side, as the spec's own input
MAX_LABELS_BYTES = 4 * 1024 * 1024  # ImageNet-21k's 21,843 names take under 1 MB


@dataclass(frozen=True)
class CoreMLOptions:
    """`export --backend coreml`'s deployment options: `image` (ImageType input), `labels` (a
    classifier), `sizes` ((height, width) pairs the input may take; empty: the spec's only)."""

    image: bool = False
    labels: tuple[str, ...] | None = None
    sizes: tuple[tuple[int, int], ...] = ()

    def described(self) -> list[str]:
        """What the closing line says of the options."""
        return [*(["image input"] if self.image else []), *([f"{len(self.labels)} labels"] if self.labels else []),
                *([f"sizes {', '.join(f'{h}x{w}' for h, w in self.sizes)}"] if self.sizes else [])]  # fmt: skip

    def convert_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"image": self.image, "sizes": list(self.sizes) or None}
        return args | ({"labels": list(self.labels)} if self.labels else {})


NO_DEPLOY_OPTIONS = CoreMLOptions()


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """`224,256` (square) or `224x320` (height x width) items, comma-separated, each once."""
    sizes: list[tuple[int, int]] = []
    for item in text.split(","):
        parts = item.strip().split("x")
        if not 1 <= len(parts) <= 2 or not all(p.isdigit() and 0 < int(p) <= MAX_SIZE for p in parts):
            raise UsageError(f"--sizes: {item.strip()!r} is not a size",
                             hint=f"give sizes as 224,256 (square) or 224x320 (height x width), up to {MAX_SIZE}")  # fmt: skip
        size = (int(parts[0]), int(parts[-1]))
        if size in sizes:
            raise UsageError(f"--sizes: {item.strip()} is given twice", hint="list each size once")
        sizes.append(size)
    return tuple(sizes)


def read_labels(path: str, classes: int) -> tuple[str, ...]:
    """One class label per line, as many as the network has classes, each once; blank lines at
    the end are allowed (an editor's last newline)."""
    text = read_text(path, MAX_LABELS_BYTES, "labels file")
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        label = raw.strip()
        problem = ("is empty" if not label else f"is longer than {MAX_LABEL} characters" if len(label) > MAX_LABEL
                   else "has a control character" if not label.isprintable()
                   else f"repeats line {seen[label]}" if label in seen else None)  # fmt: skip
        if problem:
            span = Span(path, number, 1, number, max(len(raw), 1) + 1)
            raise ArchError(f"label on line {number} {problem}", span, "one distinct class name per line")
        seen[label] = number
    if len(lines) != classes:
        raise ArchError(f"{path} has {len(lines)} labels for {classes} classes", None,
                        "give one label per line, in the order of the classifier's outputs")  # fmt: skip
    return tuple(seen)


def check_sizes(codes: dict[tuple[int, int], str], spec_size: tuple[int, int]) -> None:
    """Every size's program must be the spec size's one but for its input: the generated code,
    shapes in comments aside, is the same (each strided layer's padding, each resize's target)."""
    reference = _program_lines(codes[spec_size])
    for size, code in codes.items():
        lines = _program_lines(code)
        if lines == reference:
            continue
        diff = [d for d in difflib.ndiff(reference, lines) if d[:1] in "-+"]
        was, now = (next(d[2:].strip() for d in diff if d[0] == sign) for sign in "-+")
        raise ArchError(f"at {size[0]}x{size[1]} the network is not the one it is at {spec_size[0]}x{spec_size[1]}:"
                        f" `{was}` becomes `{now}`", None,
                        "choose sizes the network's total stride divides (multiples of 32 for most MobileNets), "
                        "or export one model per size")  # fmt: skip


def _program_lines(code: str) -> list[str]:
    """The generated functions' lines, comments (which state shapes) left out."""
    lines = code.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    return [line for line in lines[start:] if line.strip() and not line.lstrip().startswith("#")]


def check_model(model: Any, programs: Mapping[tuple[int, int], Callable[[], Any]], net: Network, precision: str,
                options: CoreMLOptions, features: bool) -> str:  # fmt: skip
    """Run the converted model's program at every size against `programs[size]()`, the fp32
    program built for that size; raise if it is beyond TOLERANCE[precision]. Returns the line
    that says what was checked."""
    tolerance = TOLERANCE[precision]
    names = [e.name for e in net.endpoints] if features else [n for n, _ in net.outputs()]
    worst = 0.0
    for (h, w), build in programs.items():
        pixels = np.random.default_rng(0).uniform(0, 255, (1, net.input_shape[0], h, w)).astype(np.float32)
        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (net.preprocess.mean, net.preprocess.std))
        x = (pixels / 255 - mean) / std  # a tensor input takes the normalized image
        expected = run_program(build(), {"image": x})
        got = run_program(model._mil_program, {"image": pixels if options.image else x})
        for name in names:
            want, have = expected[name], got.get(name)  # a classifier has no tensor output: below
            if options.labels:  # the classifier's outputs: the top label and every label's probability
                want = np.exp(want - want.max())
                want, top = want / want.sum(), options.labels[int(np.argmax(want))]
                have = np.array([got["classLabel_probs"][label] for label in options.labels])
                if got["classLabel"] != top:
                    raise ArchError(f"the converted model's top label at {h}x{w} is {got['classLabel']!r}, "
                                    f"the network's is {top!r}")  # fmt: skip
            error = float(
                np.max(np.abs(np.reshape(np.asarray(have), want.shape) - want))
                / max(float(np.max(np.abs(want))), 1e-30)
            )
            if not error <= tolerance:  # NaN fails too
                raise ArchError(f"the converted {precision} model's {name!r} at {h}x{w} is {error:.1e} (relative to "
                                f"its largest value) from the network's: beyond {tolerance:.0e}", None,
                                "fp16 overflows past 65504: export --precision fp32, or look for an activation "
                                "that grows without bound" if precision == "fp16" else None)  # fmt: skip
            worst = max(worst, error)
    sizes = ", ".join(f"{h}x{w}" for h, w in programs)
    return (
        f"checked by the MIL evaluator: the converted {precision} program is within {worst:.1e} of the network"
        f" (fp32) at {sizes}; tolerance {tolerance:.0e}"
    )
