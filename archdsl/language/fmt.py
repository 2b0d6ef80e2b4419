"""The canonical layout of a spec (`archdsl fmt`): one statement per line, two-space indents,
`key=value` without spaces, one blank line between top-level definitions, at most one blank
line kept inside bodies. Comments stay where they were: on their own line or trailing.

Formatting changes layout only: `parse(format_module(m)) == m`, and formatting is idempotent.
"""

from __future__ import annotations

from .syntax import (
    BinOp,
    BlockDef,
    Choice,
    ChoiceWord,
    Expr,
    Flag,
    Import,
    KwArg,
    Literal,
    Module,
    Name,
    Neg,
    NetworkDef,
    NetworkInst,
    Num,
    Param,
    Range,
    Shape,
    Stmt,
    Str,
    TopItem,
)  # fmt: skip

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
INDENT = "  "


def expr_text(e: Expr, parent: int = 0, right: bool = False) -> str:
    if isinstance(e, Num):
        return e.text
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Shape):
        return "x".join(map(str, e.dims))
    if isinstance(e, Choice):
        return choice_text(e)
    if isinstance(e, Neg):
        inner = expr_text(e.operand, 3)
        return f"-({inner})" if isinstance(e.operand, Neg) else "-" + inner
    assert isinstance(e, BinOp)
    prec = _PRECEDENCE[e.op]
    left, right_text = expr_text(e.left, prec), expr_text(e.right, prec, right=True)
    # `c1/2` would lex as one compact word (like k5/3); spaces keep it a division
    sep = " " if e.op == "/" and left[-1:].isdigit() and not left.replace(".", "").isdigit() else ""
    text = f"{left}{sep}{e.op}{sep}{right_text}"
    # parenthesise where precedence or left-associativity would otherwise change the meaning
    return f"({text})" if prec < parent or (right and prec == parent) else text


def choice_text(c: Choice) -> str:
    return (
        "{" + ",".join(f"{v.low.text}..{v.high.text}" if isinstance(v, Range) else expr_text(v) for v in c.values) + "}"
    )


def item_text(item: Flag | KwArg | Literal | Str | ChoiceWord) -> str:
    if isinstance(item, Flag):
        return item.word
    if isinstance(item, ChoiceWord):
        return item.prefix + "/".join(p if isinstance(p, str) else choice_text(p) for p in item.parts)
    if isinstance(item, Str):
        return f'"{item.text}"'  # as written: the language has no escapes
    if isinstance(item, KwArg):
        return f"{item.key}={expr_text(item.value)}"
    text = expr_text(item.value)
    return text if isinstance(item.value, (Num, Shape, Choice)) else f"({text})"


def params_text(params: tuple[Param, ...]) -> str:
    return "(" + ", ".join(p.name + (f"={expr_text(p.default)}" if p.default is not None else "") for p in params) + ")"


class _Printer:
    def __init__(self, module: Module, blank_lines: bool = True):
        self.blank_lines = blank_lines
        self.comments = sorted(module.comments, key=lambda c: (c.line, c.col))
        self.used: set[int] = set()
        self.start = 0  # every comment before this index is used
        self.lines: list[str] = []
        self.last_line = 0  # last source line accounted for, to keep intended blank lines

    def _gap(self, line: int) -> None:
        if (
            self.blank_lines
            and self.lines
            and self.lines[-1] != ""
            and line - self.last_line > 1
            and not self.lines[-1].endswith("{")
        ):
            self.lines.append("")

    # Comments are sorted and consumed in line order, so both scans start at the first unused one
    # and stop at `line`: formatting stays linear in the file's size.
    def comments_before(self, line: int, indent: str) -> None:
        i = self.start
        while i < len(self.comments) and self.comments[i].line < line:
            if i not in self.used:
                c = self.comments[i]
                self.used.add(i)
                self._gap(c.line)
                self.lines.append(indent + c.text)
                self.last_line = c.line
            i += 1
        self._advance()

    def trailing(self, line: int) -> str:
        i = self.start
        while i < len(self.comments) and self.comments[i].line <= line:
            if i not in self.used and self.comments[i].line == line:
                self.used.add(i)
                self._advance()
                return "  " + self.comments[i].text
            i += 1
        return ""

    def _advance(self) -> None:
        while self.start < len(self.comments) and self.start in self.used:
            self.start += 1

    def emit(self, text: str, line: int, end_line: int, indent: str, take_trailing: bool = True) -> None:
        self.comments_before(line, indent)
        self._gap(line)
        self.lines.append(indent + text + (self.trailing(end_line) if take_trailing else ""))
        self.last_line = end_line

    def body(self, stmts: tuple[Stmt, ...], indent: str, close_line: int) -> None:
        for i, s in enumerate(stmts):
            # a comment after `a; b  # note` belongs to the last statement on the line
            shares_line = i + 1 < len(stmts) and stmts[i + 1].span.line == s.span.end_line
            self.stmt(s, indent, shares_line)
        self.comments_before(close_line, indent)

    def stmt(self, s: Stmt, indent: str, shares_line: bool = False) -> None:
        text = " ".join([s.head, *map(item_text, s.items)])
        if s.head == "let" and len(s.items) == 1 and isinstance(s.items[0], KwArg):  # a named choice
            text = f"let {s.items[0].key} = {expr_text(s.items[0].value)}"
        if s.body is None:
            self.emit(text, s.span.line, s.span.end_line, indent, not shares_line)
            return
        first = s.body[0].span.line if s.body else s.span.end_line
        self.emit(text + " {", s.span.line, s.span.line, indent, first > s.span.line)
        self.body(s.body, indent + INDENT, s.span.end_line)
        self.lines.append(indent + "}" + self.trailing(s.span.end_line))
        self.last_line = s.span.end_line

    def top(self, item: TopItem, previous: TopItem | None) -> None:
        if previous is not None and not (isinstance(item, Import) and isinstance(previous, Import)):
            self.lines.append("")
        span = item.span
        if isinstance(item, Import):
            self.emit(f'import "{item.path}"', span.line, span.end_line, "")
            return
        if isinstance(item, NetworkInst):
            args = ", ".join(f"{a.key}={expr_text(a.value)}" for a in item.args)
            self.emit(f"network {item.name} = {item.base}({args})", span.line, span.end_line, "")
            return
        keyword = "network" if isinstance(item, NetworkDef) else "block"
        params = (
            "" if item.params is None or (isinstance(item, BlockDef) and not item.params) else params_text(item.params)
        )
        first = item.body[0].span.line if item.body else span.end_line
        self.emit(f"{keyword} {item.name}{params} {{", span.line, span.line, "", first > span.line)
        self.body(item.body, INDENT, span.end_line)
        self.lines.append("}" + self.trailing(span.end_line))
        self.last_line = span.end_line


def format_module(module: Module, blank_lines: bool = True) -> str:
    """The module's canonical text; without `blank_lines`, none inside bodies (a module put
    together from parts of several files, whose lines say nothing about layout)."""
    p = _Printer(module, blank_lines)
    previous = None
    for item in module.items:
        p.top(item, previous)
        previous = item
    p.comments_before(10**9, "")
    while p.lines and p.lines[0] == "":
        p.lines.pop(0)
    return "\n".join(p.lines).rstrip("\n") + "\n"
