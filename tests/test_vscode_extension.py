"""The VS Code extension (editors/vscode/): its TextMate grammar, checked by vscode-tmgrammar-test
(token assertions, and snapshots of every spec in specs/), its words checked against the
vocabulary, and the .vsix that @vscode/vsce builds from it.

The npm packages come from the extension's lockfile (`make setup` runs `npm ci`); without them
these tests are skipped and say so."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from archdsl.ir.nodes import ACTIVATIONS
from archdsl.language.vocabulary import COMPACT, FLAGS, NETWORK_SETTINGS, WORDS

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
BIN = VSCODE / "node_modules" / ".bin"


@functools.cache
def textmate() -> dict:
    """The TextMate grammar (read when a test asks: collecting this file needs no editors/ tree)."""
    return json.loads((VSCODE / "syntaxes" / "archdsl.tmLanguage.json").read_text())


needs_npm = pytest.mark.skipif(
    not (BIN / "vscode-tmgrammar-test").exists() or shutil.which("node") is None,
    reason="the extension's npm packages are not installed (make setup runs npm ci in editors/vscode)",
)


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=VSCODE, capture_output=True, text=True, timeout=300)


@needs_npm
def test_grammar_token_assertions():
    result = run("vscode-tmgrammar-test", "test/highlight.arch")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_npm
def test_grammar_snapshots_of_every_spec(tmp_path: Path):
    specs = sorted(p.name for p in (ROOT / "specs").glob("*.arch"))
    snapshots = sorted(p.name.removesuffix(".snap") for p in (VSCODE / "test" / "snapshots").glob("*.snap"))
    assert snapshots == specs, "make grammar-snapshots writes a snapshot for every spec"
    for name in specs:
        shutil.copy(ROOT / "specs" / name, tmp_path / name)
        shutil.copy(VSCODE / "test" / "snapshots" / f"{name}.snap", tmp_path / f"{name}.snap")
    result = run("vscode-tmgrammar-snap", f"{tmp_path}/*.arch")
    assert result.returncode == 0, result.stdout + result.stderr
    # and a changed spec is caught: the snapshot test is not vacuous
    spec = tmp_path / specs[0]
    spec.write_text(spec.read_text().replace("network", "netwrk", 1))
    assert run("vscode-tmgrammar-snap", f"{spec}").returncode != 0


def _words(rule: str) -> set[str]:
    match = re.search(r"\(([a-z_0-9|]+)\)", textmate()["repository"][rule]["match"])
    assert match is not None
    return set(match.group(1).split("|"))


def test_grammar_words_are_the_vocabulary():
    sections = {"stage", "stem", "head", "defaults"}
    assert _words("block-kind") == set(WORDS)
    assert _words("flag") == set(FLAGS)
    assert _words("activation") == set(ACTIVATIONS)
    assert _words("compact-option") == _words("compact-choice") == set(COMPACT)
    assert _words("section") == sections
    assert _words("setting") == set(NETWORK_SETTINGS) - sections


def test_manifest_declares_the_language_and_starts_the_server():
    manifest = json.loads((VSCODE / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "archdsl" and language["extensions"] == [".arch"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["scopeName"] == textmate()["scopeName"] and (VSCODE / grammar["path"]).exists()
    assert manifest["contributes"]["configuration"]["properties"]["archdsl.server.path"]["default"] == "archdsl"
    client = (VSCODE / manifest["main"]).read_text()
    assert 'args: ["lsp"]' in client and 'settings.get("server.path", "archdsl")' in client
    config = json.loads((VSCODE / "language-configuration.json").read_text())
    assert config["comments"]["lineComment"] == "#" and ["{", "}"] in config["brackets"]
    lock = json.loads((VSCODE / "package-lock.json").read_text())
    pinned = lock["packages"][""]
    assert (
        pinned["dependencies"] == manifest["dependencies"] and pinned["devDependencies"] == manifest["devDependencies"]
    )


@needs_npm
def test_vsix_packs_the_extension_and_its_client(tmp_path: Path):
    out = tmp_path / "archdsl.vsix"
    result = run("vsce", "package", "--allow-missing-repository", "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
        packed = json.loads(vsix.read("extension/package.json"))
    assert {"extension/extension.js", "extension/syntaxes/archdsl.tmLanguage.json",
            "extension/language-configuration.json"} <= names  # fmt: skip
    assert "extension/node_modules/vscode-languageclient/node.js" in names
    assert not any(n.startswith("extension/test/") for n in names)
    assert packed["contributes"]["languages"][0]["id"] == "archdsl"
