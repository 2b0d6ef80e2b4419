"""The docs say what the code does, checked in both directions where a list is closed.

- Every command of the argparse parser, each of its option strings and each value it accepts
  from a fixed set, appears in that command's synopsis (a code span `archdsl NAME ...` in the
  first cell of a table row) of docs/language.md, section 13, and of README's commands table.
  README may name the options every SPEC-reading command shares once, in the paragraph that
  starts "Every command that reads a SPEC also takes", instead of in each row.
- Every block kind of the language has a row in docs/language.md's table of block kinds
  (section 5), and its row in "Options each kind accepts" lists exactly the options it accepts;
  every option word (compact, keyword, flag) is in the tables of section 6, and each flag's row
  names exactly the kinds that accept it; README lists every kind.

Each check is a function of the doc's text, so the tests below also hand them docs with one
row or word taken out and see the omission named."""

from __future__ import annotations

import argparse
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from archdsl.cli.main import _parser
from conftest import ROOT

LANGUAGE = ROOT / "docs" / "language.md"
README = ROOT / "README.md"
SHARED_LEAD = "Every command that reads a SPEC also takes"


@dataclass(frozen=True)
class Words:
    kinds: dict[str, frozenset[str]]  # block kind -> the options it accepts
    compact: frozenset[str]  # written as letters + number: k3, se0.25
    keywords: frozenset[str]  # written key=value
    flags: frozenset[str]  # bare words: skip, dw

    @property
    def options(self) -> frozenset[str]:
        return self.compact | self.keywords | self.flags


@functools.cache
def language_words() -> Words:
    """The language's words: the block registry's kinds and options, and the option spellings."""
    from archdsl.language import vocabulary

    kinds = {name: frozenset(word.options) for name, (_, word) in vocabulary.WORDS.items()}
    flags = frozenset(vocabulary.FLAGS)
    return Words(kinds, frozenset(vocabulary.COMPACT), frozenset(vocabulary.KWARGS), flags)


# Reading Markdown: sections, tables, code spans.


def section(text: str, heading: str) -> str:
    """The body under the heading that starts with `heading` ("## 13." or "### Flags"), up to the
    next heading of the same or a higher level."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # `# comments` in examples are no headings
    level = heading.split()[0]
    match = re.search(rf"^{re.escape(heading)}.*$", text, re.M)
    assert match, f"no heading {heading!r}"
    end = re.search(rf"^#{{1,{len(level)}}} ", text[match.end() :], re.M)
    return text[match.end() : match.end() + end.start() if end else len(text)]


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table in `text`: (header cells, body rows of cells); `\\|` stays in a cell."""
    found: list[tuple[list[str], list[list[str]]]] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif block:
            found.append((block[0], block[2:]))
            block = []
    return found


def table(text: str, *header: str) -> list[list[str]]:
    """The rows of the one table in `text` whose header starts with the cells `header`."""
    (rows,) = [rows for head, rows in tables(text) if tuple(head[: len(header)]) == header]
    return rows


def spans(text: str) -> list[str]:
    """The code spans of `text`, with Markdown's `\\|` read as `|`."""
    return [span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", text)]


def mentions(text: str, word: str) -> bool:
    """`word` in `text` as a whole word (`--input` is not in `--input-size`, nor `-o` in `--output`)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# The command line.


@dataclass(frozen=True)
class Option:
    strings: tuple[str, ...]  # -o, --output
    values: tuple[str, ...]  # the fixed set it accepts, if any


@functools.cache
def command_line() -> dict[str, list[Option]]:
    """Command -> its options (without -h/--help); "" holds the options of `archdsl` itself."""
    top = _parser()

    def options(parser: argparse.ArgumentParser) -> list[Option]:
        return [
            Option(tuple(a.option_strings), _values(a))
            for a in parser._actions
            if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]

    (sub,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"": options(top), **{name: options(p) for name, p in sub.choices.items()}}


def _values(action: argparse.Action) -> tuple[str, ...]:
    """`choices`, or the names a value type lists when it refuses a value ("choose from a, b")."""
    if action.choices is not None:
        return tuple(map(str, action.choices))
    if callable(action.type):
        try:
            action.type("\0")
        except argparse.ArgumentTypeError as refusal:
            listed = re.search(r"choose from ([\w-]+(?:, [\w-]+)*)", str(refusal))
            return tuple(listed[1].split(", ")) if listed else ()
        except (TypeError, ValueError):
            pass
    return ()


@functools.cache
def spec_commands() -> frozenset[str]:
    (sub,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return frozenset(name for name, p in sub.choices.items() if any(a.dest == "spec" for a in p._actions))


def synopses(doc: str) -> dict[str, list[str]]:
    """Command -> its synopses in `doc`: code spans `archdsl NAME ...` in a table row's first
    cell (`archdsl --version` counts for "")."""
    found: dict[str, list[str]] = {}
    for _, rows in tables(doc):
        for row in rows:
            for span in spans(row[0]) if row else []:
                words = span.split()
                if len(words) >= 2 and words[0] == "archdsl":
                    found.setdefault("" if words[1].startswith("-") else words[1], []).append(span)
    return found


def cli_omissions(doc: str, shared_lead: str | None = None) -> list[str]:
    """What `doc` leaves out of the command line. With `shared_lead`, the options that every
    SPEC-reading command has may be named once, in the paragraph that starts with it."""
    cli = command_line()
    shared_text = ""
    if shared_lead is not None:
        match = re.search(rf"^{re.escape(shared_lead)}.*?(?:\n\n|\Z)", doc, re.M | re.S)
        shared_text = match[0] if match else ""
    common = set.intersection(*({s for o in cli[c] for s in o.strings} for c in spec_commands()))
    shown = synopses(doc)
    problems = []
    for command, options in cli.items():
        name = f"archdsl {command}".strip()
        if command and command not in shown:
            problems.append(f"`{name}` has no synopsis")
            continue
        text = " ".join(shown.get(command, []))
        for option in options:
            for string in option.strings:
                shared = command in spec_commands() and string in common and mentions(shared_text, string)
                if not (mentions(text, string) or shared):
                    problems.append(f"`{name}` synopsis lacks {string}")
            problems += [f"`{name}` synopsis lacks {option.strings[-1]}'s value {value!r}"
                         for value in option.values if not mentions(text, value)]  # fmt: skip
        takes = {s for o in options for s in o.strings}
        problems += [f"`{name}` synopsis has {s}, which it does not take"
                     for s in sorted(set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", text)) - takes)]  # fmt: skip
    return problems


def language_cli(text: str) -> list[str]:
    return cli_omissions(section(text, "## 13."))


def readme_cli(text: str) -> list[str]:
    return cli_omissions(section(text, "## Commands"), SHARED_LEAD)


# The block vocabulary.


def kind_omissions(text: str) -> list[str]:
    """What docs/language.md leaves out of (or adds to) the block kinds and their options."""
    words = language_words()
    kinds_section = section(text, "## 5.")
    problems = []
    listed = {s for row in table(kinds_section, "kind", "computes (layer names in brackets)") for s in spans(row[0])}
    problems += [f"kind `{k}` has no row in the table of block kinds" for k in words.kinds if k not in listed]
    problems += [f"the table of block kinds has `{k}`, which is no kind" for k in sorted(listed - words.kinds.keys())]
    options_table = table(section(kinds_section, "### Options each kind accepts"), "kind", "required", "optional")
    documented = documented_options(options_table, words)
    for kind, accepted in words.kinds.items():
        if kind not in documented:
            problems.append(f"kind `{kind}` has no row in 'Options each kind accepts'")
            continue
        problems += [f"`{kind}`'s options row lacks `{o}`" for o in sorted(accepted - documented[kind])]
        problems += [f"`{kind}`'s options row has `{o}`, which it does not accept" for o in sorted(documented[kind] - accepted)]  # fmt: skip
    return problems


def documented_options(rows: list[list[str]], words: Words) -> dict[str, frozenset[str]]:
    """Kind -> the options its row names: the option words in its code spans, where the optional
    cell may start from another row ("as `ds`, without `skip`/`noskip`")."""
    documented: dict[str, frozenset[str]] = {}
    for row in rows:
        kinds, required = spans(row[0]), spans(row[1])
        base: frozenset[str] = frozenset()
        like = re.match(r"as `(\w+)`", row[2])
        if like:
            base = documented[like[1]]
        keep, _, drop = row[2].partition("without")
        named = {s for s in required + spans(keep)[1 if like else 0 :] if s in words.options}
        options = (base | named) - {s for s in spans(drop) if s in words.options}
        documented.update(dict.fromkeys(kinds, options))
    return documented


def option_omissions(text: str) -> list[str]:
    """What section 6 of docs/language.md leaves out of (or adds to) the option words, and the
    kinds each flag's row names."""
    words = language_words()
    problems = []
    found: dict[str, set[str]] = {"compact": set(), "keyword": set(), "flag": set()}
    flag_kinds: dict[str, set[str]] = {}
    for header, rows in tables(section(text, "## 6.")):
        for column, form in ((header.index(h), h) for h in header if h in found):
            for row in rows:
                cell = spans(row[column])
                if form == "compact":
                    found[form] |= {m[1] for s in cell if (m := re.match(r"([a-z_]+)\d", s))}
                elif form == "keyword":
                    found[form] |= {s.split("=")[0] for s in cell if "=" in s}
                else:
                    found[form] |= set(cell)
                    for flag in cell:
                        flag_kinds[flag] = _kinds_named(row[header.index("kinds")], words)
    for form, expected in (("compact", words.compact), ("keyword", words.keywords), ("flag", words.flags)):
        problems += [f"option `{o}` has no {form} form in section 6" for o in sorted(expected - found[form])]
        problems += [f"section 6 has the {form} option `{o}`, which the language lacks" for o in sorted(found[form] - expected)]  # fmt: skip
    accepted = set().union(*words.kinds.values())
    problems += [f"`{o}` (accepted by a kind) is not in section 6" for o in sorted(accepted - set().union(*found.values()))]  # fmt: skip
    for flag, kinds in flag_kinds.items():
        takes = {k for k, options in words.kinds.items() if flag in options}
        problems += [f"flag `{flag}`'s row lacks kind `{k}`" for k in sorted(takes - kinds)]
        problems += [f"flag `{flag}`'s row names kind `{k}`, which does not take it" for k in sorted(kinds - takes)]
    return problems


def _kinds_named(cell: str, words: Words) -> set[str]:
    """The kinds a cell names: its code spans that are kinds, or all but them after "every kind but"."""
    named = {s for s in spans(cell) if s in words.kinds}
    return set(words.kinds) - named if cell.startswith("every kind but") else named


def readme_kinds(text: str) -> list[str]:
    match = re.search(r"^Block kinds: (.*?)\.\s", text, re.M | re.S)
    listed = set(spans(match[1])) if match else set()
    return [f"README's 'Block kinds:' lacks `{k}`" for k in language_words().kinds if k not in listed]


# The checks on the docs as they are.

CHECKS = {
    "language.md section 13": (LANGUAGE, language_cli),
    "README commands": (README, readme_cli),
    "language.md block kinds": (LANGUAGE, kind_omissions),
    "language.md options": (LANGUAGE, option_omissions),
    "README block kinds": (README, readme_kinds),
}


@pytest.mark.parametrize("check", CHECKS)
def test_the_docs_cover_the_code(check):
    path, omissions = CHECKS[check]
    assert omissions(path.read_text(encoding="utf-8")) == []


def test_the_walks_see_what_they_check():
    """Guards against a check that passes because it reads nothing."""
    text = LANGUAGE.read_text(encoding="utf-8")
    assert set(synopses(section(text, "## 13."))) == set(command_line()) >= {"compile", "verify", "fmt", ""}
    assert {"compile", "cost", "verify", "export", "import-weights", "init-weights"} <= spec_commands()
    values = {o.strings[-1]: o.values for o in command_line()["compile"]}
    assert values["--backend"] == ("torch", "keras", "coreml", "onnx")  # the registry's names, read from the parser
    options_table = table(section(text, "### Options each kind accepts"), "kind", "required", "optional")
    documented = documented_options(options_table, language_words())
    assert documented["dsa"] == language_words().kinds["dsa"] and "skip" not in documented["dsa"]
    assert len(documented) == len(language_words().kinds) >= 17


# Docs with one thing taken out: each omission is named.


def altered(path: Path, old: str, new: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not once in {path.name}: update this test's alteration"
    return text.replace(old, new)


ALTERATIONS = [  # (check, text in the doc, what replaces it, the problem the check must name)
    # a whole command's row
    (language_cli, "| `archdsl verify SPEC", "| verify SPEC", "`archdsl verify` has no synopsis"),
    (readme_cli, "| `archdsl fmt FILE...", "| fmt FILE...", "`archdsl fmt` has no synopsis"),
    # an option, even where the section names it elsewhere (`--deploy` is in a bullet below)
    (language_cli, "[-o/--output FILE] [--network N] [--import-root DIR] [--deploy]` | generate code",
     "[-o/--output FILE] [--network N] [--import-root DIR]` | generate code", "`archdsl compile` synopsis lacks --deploy"),
    (language_cli, "[--check\\|--write\\|--diff]` | canonical", "[--check\\|--write]` | canonical",
     "`archdsl fmt` synopsis lacks --diff"),
    (language_cli, "`archdsl --version`", "`archdsl`", "`archdsl` synopsis lacks --version"),
    (language_cli, "[--tolerance T] [--train", "[--train", "`archdsl verify` synopsis lacks --tolerance"),
    # an option the command does not take (a stale synopsis)
    (language_cli, "`archdsl cost SPEC [--json]", "`archdsl cost SPEC [--json] [--format F]",
     "`archdsl cost` synopsis has --format, which it does not take"),
    # the short form is checked too: `-o` without `--output`
    (readme_cli, "[--backend torch\\|keras\\|coreml\\|onnx] [-o/--output FILE] [--deploy]` | generate", "[--backend torch\\|keras\\|coreml\\|onnx] [-o FILE] [--deploy]` | generate",
     "`archdsl compile` synopsis lacks --output"),
    # a value of a fixed set, including those a value type announces (the code backends)
    (language_cli, "[--backend torch\\|keras\\|coreml\\|onnx]", "[--backend torch\\|keras\\|onnx]",
     "`archdsl compile` synopsis lacks --backend's value 'coreml'"),
    (readme_cli, "[--json] [--dtype float32\\|float16\\|bfloat16\\|int8] [--profile", "[--json] [--dtype float32\\|float16] [--profile",
     "`archdsl cost` synopsis lacks --dtype's value 'int8'"),
    (language_cli, "[--backends torch,keras,tflite,coreml,onnx] [--seed N] [--weights FILE]",
     "[--backends torch,keras,coreml,onnx] [--seed N] [--weights FILE]", "`archdsl verify` synopsis lacks --backends's value 'tflite'"),
    # README's shared options: once in their paragraph, not in every row
    (readme_cli, "`--import-root DIR` (the directory", "`DIR` (the directory", "`archdsl cost` synopsis lacks --import-root"),
    # block kinds and their options
    (kind_omissions, "| `ghost` | GhostNet", "| ghost | GhostNet", "kind `ghost` has no row in the table of block kinds"),
    (kind_omissions, "| `shuffle_v2` | `c` (even)", "| shuffle_v2 | `c` (even)", "kind `shuffle_v2` has no row in 'Options each kind accepts'"),
    (kind_omissions, "`eps`, `fixed`, `drop_path` |", "`eps`, `fixed` |", "`ghost`'s options row lacks `drop_path`"),
    (kind_omissions, "| as `ib`, without `layer_scale`, `gs`, `stride_at`, `alpha`, `alpha_mid` |", "| as `ib`, without `gs`, `stride_at`, `alpha`, `alpha_mid` |", "`fused_ib`'s options row has `layer_scale`, which it does not accept"),
    (kind_omissions, "`reduce_groups` (of the first 1x1 conv), ", "", "`shuffle_v1`'s options row lacks `reduce_groups`"),
    (readme_kinds, "`shuffle_v1`, `shuffle_v2`, `pool`", "`shuffle_v2`, `pool`", "README's 'Block kinds:' lacks `shuffle_v1`"),
    # option words and flags
    (option_omissions, "| `reduce_groups=N` |", "| reduce_groups |", "option `reduce_groups` has no keyword form in section 6"),
    (option_omissions, "| `count_pad` |", "| count_pad |", "option `count_pad` has no flag form in section 6"),
    (option_omissions, "| `h4` | `h=4` |", "| h4 | h=4 |", "option `h` has no compact form in section 6"),
    (option_omissions, "`fused_ib`, `mqa`, `mhsa`, `mf`, `mf_down` | require", "`fused_ib`, `mf`, `mf_down` | require",
     "flag `skip`'s row lacks kind `mqa`"),
    (option_omissions, "every kind but `pool`, `classifier`, `ssdlite` and `tokens`",
     "every kind but `pool`, `ssdlite` and `tokens`",
     "flag `fixed`'s row names kind `classifier`, which does not take it"),
]  # fmt: skip


@pytest.mark.parametrize("check, old, new, named", ALTERATIONS, ids=[named for *_, named in ALTERATIONS])
def test_an_omission_in_the_docs_is_named(check, old, new, named):
    path = README if check in (readme_cli, readme_kinds) else LANGUAGE
    assert named in check(altered(path, old, new))
