"""Channel and depth rounding rules, exactly as the MobileNet/EfficientNet reference code does them."""

from __future__ import annotations

import math


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9, min_value: int | None = None) -> int:
    """Round `v` to the nearest multiple of `divisor`, never below `min_value` (default `divisor`)
    and never more than (1 - round_limit) below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def scale_depth(repeats: list[int], multiplier: float) -> list[int]:
    """Scale a stage's repeats: ceil the total, then hand it back to the rows in reverse order,
    so the first row is the least likely to grow."""
    total = sum(repeats)
    target = int(math.ceil(total * multiplier))
    scaled: list[int] = []
    for r in reversed(repeats):
        rs = 0 if r == 0 else max(1, round(r / total * target))  # an absent row (x0) stays absent
        scaled.append(rs)
        total -= r
        target -= rs
    return scaled[::-1]
