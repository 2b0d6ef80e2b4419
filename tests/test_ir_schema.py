"""`archdsl schema` and `archdsl ir`: the JSON Schema of the resolved IR, generated from the
pydantic models, validates the IR that `archdsl ir` dumps for every spec (train and deploy
forms), refuses dumps that are not the IR, and the dump reads back as the same network."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from archdsl.cli.main import main
from archdsl.ir.network import Network
from archdsl.language.loader import load_file
from archdsl.language.lower import concrete_in

ROOT = Path(__file__).resolve().parent.parent
CONCRETE = sorted(p.name for p in (ROOT / "specs").glob("*.arch") if concrete_in(load_file(p)))  # not families


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["schema"]) == 0
    schema = json.loads(out.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
@pytest.mark.parametrize("spec", CONCRETE)
def test_the_schema_validates_every_specs_ir(capsys, validator, spec: str, deploy: bool):
    argv = ["ir", str(ROOT / "specs" / spec)] + (["--deploy"] if deploy else [])
    try:
        dump = run(capsys, *argv)
    except AssertionError:
        pytest.fail(capsys.readouterr().err)
    assert list(validator.iter_errors(dump)) == []
    assert Network.model_validate(dump).model_dump(mode="json") == dump  # it reads back as the same network


def test_the_schema_refuses_what_is_not_the_ir(capsys, validator):
    dump = run(capsys, "ir", str(ROOT / "specs" / "mnv4_hybrid_m.arch"))
    block = dump["stages"][0]["blocks"][0]
    for change in (
        lambda d: d["stages"][0]["blocks"][0].update(kind="no_such_kind"),
        lambda d: d["stages"][0]["blocks"][0].update(surprise=1),
        lambda d: d.update(classes="1000"),
        lambda d: d.pop("stem"),
        lambda d: d["stages"][0]["blocks"][0].update({next(k for k, v in block.items() if isinstance(v, int)): "x"}),
    ):
        broken = copy.deepcopy(dump)
        change(broken)
        assert list(validator.iter_errors(broken)) != []
