"""Resource bounds: the largest inputs archdsl accepts, so that no spec, weight file or argument
can make it hang or exhaust memory. Each is far beyond any published mobile network (the
largest of our specs, MNv4-Hybrid-L at 384, has 38 M params, 7.7 G MACs and 41 blocks), and each
is met by a located error that quotes it. `docs/language.md` lists them.
"""

from __future__ import annotations

# ---- files -------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1 << 18  # 256 KiB: specs are written by hand (our largest is under 2 KiB), and a
# megabyte of adversarial tokens takes Lark's pure-Python parser some 12 s and 600 MB
MAX_WEIGHT_FILE_BYTES = 1 << 32  # 4 GiB: twice the largest network's float32 weights (MAX_PARAMS)
MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors' own header bound
MAX_IMPORT_DEPTH = 64  # a chain of imports
MAX_IMPORTED_FILES = 1024

# ---- spec text ---------------------------------------------------------------------------
MAX_NESTING = 100  # syntax tree depth: nested braces, parentheses, operators in one expression
MAX_NUMBER_CHARS = 40  # a numeric literal's length; larger values are typos, not networks
MAX_VALUE = 10**30  # magnitude of any whole number an expression computes (floats: finite)
MAX_CHOICE_VALUES = 1024  # values of one choice, its ranges expanded: a search dimension, not a data set
MAX_METADATA_CHARS = 200  # one `metadata` text: it is copied into generated code and model files

# ---- the expanded network ----------------------------------------------------------------
MAX_BLOCKS = 4096  # blocks after every repeat, template and depth multiplier is expanded
MAX_KERNEL = 63  # a conv's kernel side
MAX_CHANNELS = 1 << 16  # channels of any tensor, after width scaling and rounding
MAX_ACTIVATION = 1 << 28  # elements of one activation tensor (1 GiB in float32)
MAX_PARAMS = 1 << 29  # learnable scalars in one network (2 GiB in float32)
MAX_MACS = 10**12  # multiply-accumulates of one forward pass
MAX_INPUT_SIDE = 16384  # input height or width, in a spec and on the command line
