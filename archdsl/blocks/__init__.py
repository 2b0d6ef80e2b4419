"""The block registry: every block kind, one module each, in the order generated files define
their classes. Everything outside this folder reaches a kind through `KINDS` / `kind_of`."""

from __future__ import annotations

from typing import Any

from . import (
    attention,
    classifier,
    conv,
    ds,
    fused_ib,
    ghost,
    lraspp,
    mf_merge,
    mobile_former,
    mobileone,
    octave,
    pool,
    shuffle_v1,
    shuffle_v2,
    ssdlite,
    tokens,
    uib,
)
from .kind import BlockKind, Word

_MODULES = (
    conv,
    ds,
    uib,
    fused_ib,
    mobileone,
    attention,
    ghost,
    shuffle_v2,
    shuffle_v1,
    pool,
    classifier,
    ssdlite,
    lraspp,
    octave,
    tokens,
    mobile_former,
    mf_merge,
)
KINDS: dict[str, BlockKind] = {m.KIND.name: m.KIND for m in _MODULES}

# Every kind as written -> (its kind, the word): `ib` -> uib, `dsa` -> ds, `mhsa` -> mqa, ...
WORDS: dict[str, tuple[BlockKind, Word]] = {w: (k, word) for k in KINDS.values() for w, word in k.words.items()}


def kind_of(block: Any) -> BlockKind:
    """The kind of a resolved block (its node's `kind`) or of a BlockSpec."""
    return KINDS[block.kind]
