"""Completion from the text before the cursor (a buffer being typed rarely parses): which section
the cursor is in comes from the braces above it, what to offer from the words on its line. Block
kinds, options and values come from the vocabulary's tables; templates and families from the
last analysis that loaded (imports included)."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from ..ir.nodes import ACTIVATIONS
from ..language.fmt import params_text
from ..language.loader import Definitions
from ..language.syntax import NetworkDef
from ..language.vocabulary import COMPACT, DEFAULT_SETTINGS, ENDPOINT, FLAGS, KWARGS, NETWORK_SETTINGS, WORDS

_BLOCK_BODIES = ("stage", "stem", "head", "block")  # sections whose statements are blocks
_VALUES = {"act": ACTIVATIONS, "gate": ACTIVATIONS, "norm": ("batchnorm", "none"), "padding": ("symmetric", "same"),
           "aa": ("blur",), "stride_at": ("start", "mid", "end")}  # fmt: skip
_STRINGS_AND_COMMENTS = re.compile(r'"[^"\n]*"?|#.*')

Kind = lsp.CompletionItemKind
_SNIPPETS = {
    "network": ("a network", "network ${1:name} {\n  input ${2:224x224x3}\n  classes ${3:1000}\n"
                "  stem conv k3 s2 c${4:16}\n  stage s0 {\n    $0\n  }\n  head {\n    pool avg\n    classifier\n  }\n}"),
    "block": ("a block template", "block ${1:name}(${2:c}, ${3:s=1}) {\n  $0\n}"),
    "import": ("import the templates and networks of another spec", 'import "${1:base.arch}"'),
    "stage": ("a stage", "stage ${1:s0} {\n  $0\n}"),
}  # fmt: skip


def section_at(text: str) -> str | None:
    """The innermost section open at the end of `text`: the first word before its `{`."""
    stack: list[str] = []
    for line in text.split("\n"):
        line = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group()), line)
        start = 0
        for i, ch in enumerate(line):
            if ch == "{":
                words = line[start:i].replace("(", " ").split()
                stack.append(words[0] if words else "")
                start = i + 1
            elif ch == "}":
                if stack:
                    stack.pop()
                start = i + 1
    return stack[-1] if stack else None


def complete(before: str, defs: Definitions | None) -> list[lsp.CompletionItem]:
    """Items for a cursor after `before` (the buffer's text up to the cursor)."""
    line = before.rsplit("\n", 1)[-1]
    if _STRINGS_AND_COMMENTS.sub("", line) != line:
        return []  # in a comment or a string
    words = line[line.rfind("{") + 1 :].split()  # a one-line `stage s0 { ib ...`: after the brace
    typing = words.pop() if words and not line[-1:].isspace() else ""
    section = section_at(before)
    if not words:
        return _first_words(section, defs)
    inline = words[0] in ("stem", "head")  # `stem conv ...`, `head ssdlite ...`: one block on the line
    head = words[1] if inline and len(words) > 1 else words[0]
    if section is None and head == "network" and words[-1:] == ["="]:
        return [_item(n, Kind.Function, "network family") for n in _families(defs)]
    if "=" in typing:
        return _values(typing.split("=", 1)[0])
    if section == "defaults" and len(words) == 1:
        return _values(head)
    if inline and len(words) == 1:
        return _block_words(defs)
    if head in WORDS:
        return _options(head)
    if defs is not None and head in defs.blocks:
        return [_item(f"{p.name}=", Kind.Variable, "template parameter") for p in defs.blocks[head].params]
    return []


def _first_words(section: str | None, defs: Definitions | None) -> list[lsp.CompletionItem]:
    if section is None:
        return [_snippet(name) for name in ("network", "block", "import")]
    if section == "network":
        return [_item(s, Kind.Keyword, "network setting") for s in NETWORK_SETTINGS] + [_snippet("stage")]
    if section == "defaults":
        return [_item(s, Kind.Property, "default for every block") for s in DEFAULT_SETTINGS]
    if section in _BLOCK_BODIES:
        return _block_words(defs)
    return []


def _block_words(defs: Definitions | None) -> list[lsp.CompletionItem]:
    items = [_item(w, Kind.Class, word.summary) for w, (_, word) in WORDS.items()]
    for name, node in (defs.blocks if defs else {}).items():
        items.append(_item(name, Kind.Function, f"block {name}{params_text(node.params)}"))
    return items


def _options(head: str) -> list[lsp.CompletionItem]:
    items = []
    for option in sorted(WORDS[head][1].options):
        if option in FLAGS:
            items.append(_item(option, Kind.EnumMember, FLAGS[option][1]))
        elif option in KWARGS:
            meaning = KWARGS[option].meaning
            compact = option in COMPACT
            label = option if compact else f"{option}="
            items.append(_item(label, Kind.Property, meaning + (f" (compact: {option}<value>)" if compact else "")))
    kind = WORDS[head][0]
    if not kind.flat_output and kind.predictions is None:  # any stem or stage block may be an endpoint
        items.append(_item(ENDPOINT, Kind.EnumMember, "its output is a feature endpoint"))
    return items


def _values(key: str) -> list[lsp.CompletionItem]:
    return [_item(v, Kind.Value, key) for v in _VALUES.get(key, ())]


def _item(label: str, kind: lsp.CompletionItemKind, detail: str) -> lsp.CompletionItem:
    return lsp.CompletionItem(label, kind=kind, detail=detail)


def _snippet(name: str) -> lsp.CompletionItem:
    detail, body = _SNIPPETS[name]
    return lsp.CompletionItem(
        name, kind=Kind.Snippet, detail=detail, insert_text=body, insert_text_format=lsp.InsertTextFormat.Snippet
    )


def _families(defs: Definitions | None) -> list[str]:
    """Family names visible from the file: what `network x = <family>(...)` may name."""
    return [n for n, d in (defs.networks if defs else {}).items() if isinstance(d, NetworkDef) and d.params]
