"""The roofline (MobileNetV4's): hand-computed layers, the ridge-point sweep, hardware profiles,
the command line and its figures."""

from __future__ import annotations

import json

import pytest

from archdsl.analysis.hardware import BUILTIN, Hardware, load_profile, profile_text
from archdsl.analysis.roofline import effective_macs, loads, roofline_seconds, sweep
from archdsl.analysis.roofline_plot import layers_figure, sweep_figure
from archdsl.cli.main import main
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from conftest import SPECS

# Every figure by hand (float32): a 1x1 conv 2->3 with bias on 4x4: 96 MACs, weights 6 + 3 bias
# (36 B), activations 32 in + 48 out (320 B); a 1x1 conv 3->3: 144 MACs, 12 params (48 B),
# 48 + 48 activations (384 B); a global average pool: 48 in + 3 out (204 B); a linear 3->2:
# 6 MACs, 8 params (32 B), 3 + 2 activations (20 B).
TINY = """network tiny {
  input 4x4x2
  classes 2
  stem conv k1 c3 norm=none bias fixed
  stage s { conv k1 c3 norm=none bias fixed }
  head { pool avg; classifier }
}
"""
HAND = [(96, 356), (144, 432), (0, 204), (6, 52)]


def _by_hand(ridge: float) -> float:
    return sum(max(macs, ridge * moved) for macs, moved in HAND)


def test_layer_loads_are_the_hand_computed_ones():
    assert [(x.macs, x.bytes) for x in loads(compile_text(TINY), "float32")] == HAND


@pytest.mark.parametrize("ridge", [0.0, 0.1, 0.25, 1.0, 500.0])
def test_effective_macs_take_the_slower_of_compute_and_memory_per_layer(ridge):
    assert effective_macs(loads(compile_text(TINY), "float32"), ridge) == pytest.approx(_by_hand(ridge))


def test_seconds_divide_by_the_peak():
    net = compile_text(TINY)
    assert roofline_seconds(net, 1000.0, 4000.0) == pytest.approx(_by_hand(0.25) / 1000.0)
    int8 = sum(max(m, 0.25 * b / 4) for m, b in HAND) / 1000.0  # every byte count quartered
    assert roofline_seconds(net, 1000.0, 4000.0, dtype="int8") == pytest.approx(int8)


def test_the_sweep_never_gets_faster_as_the_ridge_rises():
    nets = [compile_file(SPECS / f"{s}.arch") for s in ("mnv1", "mnv2", "mnv4_conv_s", "mobileone_s0")]
    ridges = [0.0, 1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    rows = sweep(nets, ridges, "int8")
    for col in range(len(nets)):
        values = [row[col] for row in rows]
        assert values == sorted(values)
    assert rows[0] == [float(sum(x.macs for x in loads(n, "int8"))) for n in nets]  # ridge 0: MACs only


def test_a_profile_file_round_trips(tmp_path):
    absolute = Hardware("board", 40.0, "int8", 'its "datasheet"', peak_macs=1.2e12, bandwidth=3e10)
    for hw in (absolute, BUILTIN["pixel8-edgetpu"]):
        path = tmp_path / f"{hw.name}.toml"
        path.write_text(profile_text(hw))
        assert load_profile(str(path)) == hw


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ('name = "x"\npeak_macs = 1e12\nbandwidth = \n', "malformed TOML", ":3:"),
        ('name = "x"\npeak_mac = 1e12\nbandwidth = 1e9\n', "unknown key 'peak_mac'", ":2:"),
        ("peak_macs = 1e12\n", "give both peak_macs and bandwidth", ":1:"),
        ("ridge = 40\npeak_macs = 1e12\nbandwidth = 1e9\n", "either ridge or peak_macs", ":1:"),
        ("ridge = -3\n", "'ridge' must be positive", ":1:"),
        ('ridge = "fast"\n', "'ridge' must be a number", ":1:"),
        ('ridge = 3\ndtype = "int4"\n', "unknown dtype 'int4'", ":2:"),
        ('name = "x"\n', "needs peak_macs and bandwidth", ":1:"),
    ],
)
def test_a_bad_profile_is_a_located_error(tmp_path, text, message, where):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ArchError, match=message) as info:
        load_profile(str(path))
    assert f"p.toml{where}" in info.value.render()


def test_a_profile_that_is_no_file_is_refused(tmp_path):
    with pytest.raises(ArchError, match="cannot read hardware profile"):
        load_profile(str(tmp_path))
    with pytest.raises(ArchError, match="no such file"):
        load_profile(str(tmp_path / "absent.toml"))


def test_the_help_names_every_built_in_hardware(capsys):
    with pytest.raises(SystemExit):
        main(["roofline", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in BUILTIN)


def test_the_json_report_holds_every_layer_and_the_sweep(tmp_path, capsys):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    code = main(["roofline", str(spec), "--peak-macs", "1000", "--bandwidth", "4000", "--ridge", "0,1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    (net,) = data["networks"]
    assert data["hardware"]["ridge"] == 0.25 and net["seconds"] == pytest.approx(_by_hand(0.25) / 1000)
    assert [x["memory_bound"] for x in net["layers"]] == [False, False, True, True]
    assert [(s["ridge"], s["effective_macs"]) for s in net["sweep"]] == [(0.0, _by_hand(0)), (1.0, _by_hand(1))]


def test_the_text_report_sweeps_relative_to_the_first_spec(capsys):
    specs = [str(SPECS / "mnv2.arch"), str(SPECS / "mnv4_conv_s.arch")]
    assert main(["roofline", *specs, "--hardware", "s23-cpu", "--ridge", "0,500"]) == 0
    out = capsys.readouterr().out
    nets = [compile_file(s) for s in specs]
    rows = sweep(nets, [0.0, 500.0], "int8")
    assert "ridge point 39.7 MACs/byte" in out and "relative to mnv2" in out
    assert f"{rows[1][1] / rows[1][0]:.3f}" in out.splitlines()[-1]


def test_per_layer_rows(capsys):
    assert main(["roofline", str(SPECS / "mnv1.arch"), "--layers", "--dtype", "float16"]) == 0
    out = capsys.readouterr().out
    assert "stages.0.blocks.0.dw" in out and "stages.0.blocks.0.pw" in out and "float16" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hardware", "pixel6"], "did you mean 'pixel6-cpu'"),
        (["--peak-macs", "1e12"], "--peak-macs and --bandwidth go together"),
        (["--plot", "figure.txt"], "cannot tell the plot format"),
    ],
)
def test_usage_errors(args, message, capsys):
    assert main(["roofline", str(SPECS / "mnv1.arch"), *args]) == 2
    assert message in capsys.readouterr().err


def test_figures_are_deterministic_and_name_the_networks(tmp_path):
    nets = [compile_file(SPECS / f"{s}.arch") for s in ("mnv1", "mnv4_conv_s")]
    first, second = sweep_figure(nets, "int8", "svg"), sweep_figure(nets, "int8", "svg")
    assert first == second and b"mnv4_conv_s" in first and b"<svg" in first
    png = layers_figure(nets[1], "int8", "png")
    assert png.startswith(b"\x89PNG") and png == layers_figure(nets[1], "int8", "png")
    out = tmp_path / "sweep.svg"
    assert main(["roofline", *(str(SPECS / f"{s}.arch") for s in ("mnv1", "mnv4_conv_s")), "--plot", str(out)]) == 0
    assert out.read_bytes() == sweep_figure(nets, "int8", "svg")
