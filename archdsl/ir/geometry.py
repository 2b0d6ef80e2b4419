"""What flows between blocks (channels and spatial size) and the arithmetic of windows over it:
explicit paddings and output sizes, shared by every block kind's elaboration."""

from __future__ import annotations

from dataclasses import dataclass

from .nodes import HW, Padding


@dataclass(frozen=True)
class FeatureMap:
    """A block's input or output: channels and spatial size; or a pair of tensors. With `low`
    channels, an octave pair (Octave convolution): `c` high-frequency channels at `hw`, and `low`
    low-frequency ones at half that size (`low_hw`). With `tokens` (count, dim), a map and its
    tokens (Mobile-Former): `count` global tokens of `dim` values beside the map."""

    c: int
    hw: HW
    low: int = 0
    tokens: tuple[int, int] | None = None

    @property
    def pair(self) -> str | None:
        """The pair this is ("octave" or "tokens"), None for one tensor."""
        return "octave" if self.low else "tokens" if self.tokens else None

    @property
    def low_hw(self) -> HW:
        return half(self.hw)

    def show(self) -> str:
        high = f"{self.c}x{self.hw[0]}x{self.hw[1]}"
        if self.tokens:
            return f"{high} + {self.tokens[0]}x{self.tokens[1]} tokens"
        return f"{high} + {self.low}x{self.low_hw[0]}x{self.low_hw[1]}" if self.low else high


def half(hw: HW) -> HW:
    """An octave pair's low-frequency size: 2x2 average pooling with a partial last window."""
    return (-(-hw[0] // 2), -(-hw[1] // 2))


# The blur of `aa=blur` (timm's BlurPool2d, 'blurpc'): a 3x3 binomial filter, zero-padded by 1;
# its taps, (1, 2, 1) / 4 in each direction, are spelled in each backend's BlurPool.
BLUR_KERNEL = 3
BLUR_PADDING: Padding = (1, 1, 1, 1)


def padding_for(k: int, s: int, hw: HW, mode: str, d: int = 1) -> Padding:
    """Explicit (top, bottom, left, right) padding: symmetric k//2, or TensorFlow 'same'; a
    dilation d spreads the window over d x (k - 1) + 1 pixels."""
    k = d * (k - 1) + 1
    if mode == "symmetric":
        return (k // 2,) * 4  # type: ignore[return-value]
    pads = []
    for size in hw:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return (pads[0], pads[1], pads[2], pads[3])


def out_size(hw: HW, k: int, s: int, pad: Padding, d: int = 1) -> HW:
    k = d * (k - 1) + 1
    return ((hw[0] + pad[0] + pad[1] - k) // s + 1, (hw[1] + pad[2] + pad[3] - k) // s + 1)
