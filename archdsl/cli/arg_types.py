"""Argument types of the command line: a bad value is a usage error (exit 2) before any work is
done."""

from __future__ import annotations

import argparse
import math

from ..limits import MAX_INPUT_SIDE


def hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 224x224, got {text!r}") from None
    if not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise argparse.ArgumentTypeError(f"sizes must be between 1 and {MAX_INPUT_SIDE}, got {text!r}")
    return h, w


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def count(low: int, high: int):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low} to {high}, got {value}")
        return value

    return parse


def ridges(text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers such as 0,5,50,500, got {part.strip()!r}") from None
        if not (math.isfinite(value) and 0 <= value <= 1e6):
            raise argparse.ArgumentTypeError(f"a ridge point is from 0 to 1e6 MACs/byte, got {part.strip()}")
        values.append(value)
    if len(values) > 100:
        raise argparse.ArgumentTypeError("at most 100 ridge points")
    return values


def seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= seed < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 2**63 - 1, got {text}")
    return seed
