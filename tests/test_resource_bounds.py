"""Resource bounds: no spec or argument can make archdsl allocate without limit. Each case is a
located error quoting the limit; on the command line it is reached in a child process capped at
3 GiB of address space and 60 s, so a regression fails instead of taking the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl import limits
from conftest import ROOT


def spec(block: str = "ib k3 e4 c16", *, input: str = "224x224x3", settings: str = "", stem: str = "conv k3 s2 c16",
         head: str = "pool avg; classifier", classes: int = 10, before: str = "") -> str:  # fmt: skip
    """A network whose stage block is on line 7 + the lines of `before` (column 5)."""
    return (
        f"{before}network n {{\n  input {input}\n  classes {classes}\n  {settings}\n  stem {stem}\n  stage s {{\n"
        f"    {block}\n  }}\n  head {{\n    {head}\n  }}\n}}\n"
    )


NEST = "block a(c) {\n  ib k3 e4 c=c x256\n}\nblock b(c) {\n  a c=c x256\n}\n"  # 6 lines

CASES = [
    pytest.param(spec("b c=16 x256", before=NEST), "2:16", "would expand to 65,536 blocks", id="nested-x256"),
    pytest.param(
        spec("ib k3 e4 c16 x256\n    ib k3 e4 c16 x256\n" * 8), "7:18", "would expand to 4,097 blocks", id="many-rows"
    ),  # fmt: skip
    pytest.param(spec("conv k1048575 c8"), "7:10", "kernel size 1,048,575 is over the limit of 63", id="kernel"),
    pytest.param(spec("conv k1 c4096\n    ib k3 e64 c16"), "8:11", "262,144 channels are over", id="expansion"),
    pytest.param(spec("mqa h1024 d128 c16"), "7:9", "131,072 channels are over", id="heads-x-dims"),
    pytest.param(spec("conv k1 c=100000000"), "7:15", "output channels must be at most 65,536", id="c-option"),
    pytest.param(spec(settings="width 1.0 divisor=1048576"), "5:19", "1,048,576 channels are over", id="divisor"),
    pytest.param(spec("mqa h1024 d1048576"), "7:15", "key dim must be at most 65,536", id="attention-dims"),
    pytest.param(
        spec(input="16384x16384x3", stem="conv k3 s1 c64"),
        "5:3",
        "activation tensor of 17,179,869,184",
        id="activation",
    ),  # fmt: skip
    pytest.param(spec("mqa h4 d64", input="448x448x3"), "7:5", "attention score matrix", id="attention-scores"),
    pytest.param(
        spec(head="pool avg; conv k1 c65536; classifier", classes=1 << 20),
        "10:31",
        "params at this block; the limit is 536,870,912",
        id="params",
    ),  # fmt: skip
    pytest.param(
        spec(input="512x512x3", stem="conv k63 s1 c512"), "5:3", "MACs at this block; the limit is", id="macs"
    ),  # fmt: skip
]


def bounded_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, preexec_fn=cap, env=env)  # fmt: skip


@pytest.mark.parametrize("text, where, message", CASES)
def test_a_size_beyond_the_limits_is_a_located_error(tmp_path, text, where, message):
    path = tmp_path / "n.arch"
    path.write_text(text)
    from archdsl.compiler import compile_file
    from archdsl.errors import ArchError

    with pytest.raises(ArchError) as info:
        compile_file(path)
    assert message in info.value.message
    assert info.value.span is not None and f"{info.value.span.line}:{info.value.span.col}" == where


@pytest.mark.parametrize("command", [["cost"], ["init-weights", "-o", "w.safetensors"]])
@pytest.mark.parametrize("text, where", [c.values[:2] for c in CASES if c.id in ("nested-x256", "params", "activation")],
                         ids=("nested-x256", "params", "activation"))  # fmt: skip
def test_the_command_line_stops_before_allocating(tmp_path, command, text, where):
    (tmp_path / "n.arch").write_text(text)
    result = bounded_run([command[0], "n.arch", *command[1:]], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"n.arch:{where}: error:" in result.stderr
    assert not (tmp_path / "w.safetensors").exists()


def test_exactly_max_blocks_is_accepted_and_one_more_is_not(tmp_path):
    rows = "\n    ".join(["ib k3 e2 c16 x256"] * 15 + ["ib k3 e2 c16 x253"])  # + stem + pool + classifier
    from archdsl.compiler import compile_file
    from archdsl.errors import ArchError

    path = tmp_path / "n.arch"
    path.write_text(spec(rows, input="32x32x3"))
    assert len(list(compile_file(path).blocks())) == limits.MAX_BLOCKS
    path.write_text(spec(rows.replace("x253", "x254"), input="32x32x3"))
    with pytest.raises(ArchError, match="would expand to 4,097 blocks"):
        compile_file(path)


def test_our_largest_network_is_far_inside_the_limits():
    """The limits leave room: the largest spec we ship is far inside every one of them."""
    from archdsl.analysis.cost import network_cost
    from archdsl.compiler import compile_file

    net = compile_file(ROOT / "specs" / "mnv4_hybrid_l.arch")
    cost = network_cost(net)
    assert cost.params * 10 < limits.MAX_PARAMS and cost.macs * 10 < limits.MAX_MACS
    assert len(list(net.blocks())) * 10 < limits.MAX_BLOCKS


def test_verify_input_beyond_the_limit_is_a_usage_error(tmp_path):
    (tmp_path / "n.arch").write_text(spec())
    result = bounded_run(["verify", "n.arch", "--input", "99999999x99999999"], tmp_path)
    assert result.returncode == 2 and f"between 1 and {limits.MAX_INPUT_SIDE}" in result.stderr


def test_verify_input_within_the_side_limit_still_meets_the_activation_bound(tmp_path):
    (tmp_path / "n.arch").write_text(spec(stem="conv k3 s1 c64"))
    result = bounded_run(["verify", "n.arch", "--input", "16384x16384"], tmp_path)
    assert result.returncode == 1 and "n.arch:5:3: error: an activation tensor of" in result.stderr
