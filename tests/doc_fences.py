"""The fenced blocks of a Markdown document, for the tests that run a doc's worked example."""

from __future__ import annotations


def fences(doc: str) -> list[tuple[str, str]]:
    """Every fenced block of `doc`: (its language, its text)."""
    blocks, language, lines = [], None, []
    for line in doc.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, "\n".join(lines) + "\n"))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def fence(doc: str, language: str, holding: str) -> str:
    """The fenced block of `language` whose text holds `holding`."""
    found = [text for lang, text in fences(doc) if lang == language and holding in text]
    assert len(found) == 1, f"no single ```{language} block holding {holding!r}"
    return found[0]
