"""The fenced blocks of a Markdown document, and its commands run, for the tests that run a
doc's worked example."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path


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


def run_commands(block: str, cwd: Path) -> list[tuple[list[str], subprocess.CompletedProcess]]:
    """Each line of a fenced block of commands (`archdsl ...` or `python ...`; `#` starts a
    comment), run in `cwd` as written, each checked to succeed: (the command, its result)."""
    done = []
    for line in block.splitlines():
        command = line.split("#")[0].split()
        tool = ["-m", "archdsl"] if command[0] == "archdsl" else []
        result = subprocess.run([sys.executable, *tool, *command[1:]], cwd=cwd, capture_output=True, text=True,
                                timeout=600)  # fmt: skip
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        done.append((command, result))
    return done
