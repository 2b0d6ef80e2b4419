"""archdsl: a declarative architecture compiler for efficient (mobile) vision networks.

A spec (`*.arch`) is parsed to a syntax tree, lowered to a frozen pydantic IR, resolved by pure
passes (defaults, repeats, multipliers, shapes) and emitted by Jinja2 backends with exact cost
annotations. Importing this package imports no deep-learning framework.
"""

__version__ = "0.1.0"
