"""The latency predictor (`archdsl calibrate`, `archdsl latency`, `cost --profile`): the fits on
profiles made by hand, profile files read back or refused, and a real calibration on TFLite of
tiny networks (one round per unit: no timed assertions, only that every figure is there,
consistent, and that the units run as the kernels the whole network runs)."""

from __future__ import annotations

import collections
import json
import warnings

import pytest
from test_keras_backend import ATTENTION

from archdsl.analysis.cost import network_cost
from archdsl.analysis.latency import (
    Entry,
    NetworkTime,
    Predictor,
    Profile,
    features,
    key_of,
    nonnegative_fit,
    profile_from_json,
    read_profile,
    unit_of,
)
from archdsl.analysis.layers import network_layers
from archdsl.cli.main import main
from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.nodes import ConvBnAct
from archdsl.runtimes.calibrate import (
    calibrate,
    load_existing,
    measured_ops,
    network_key,
    record_networks,
    units_to_measure,
)
from conftest import small_net

SE_NET = small_net(
    "ib k5 e3 c24 se0.25 act=hard_swish; ib k3 e3 c24; ds k3 c32 s2 aa=blur"
)  # aa: its blur is a unit too
OVERHEAD = 2e-6


def _convs(net):
    return [layer for layer in network_layers(net) if isinstance(layer, ConvBnAct)]


def _linear_profile(layers, a=3e-6, b=2e-12, c=1e-10):
    """Every layer measured at exactly a + b x MACs + c x bytes (plus the overhead)."""
    entries = {}
    for layer in layers:
        macs, moved = features(layer)
        entries[key_of(unit_of(layer))] = Entry(unit_of(layer), OVERHEAD + a + b * macs + c * moved, macs, moved)
    return Profile("tflite", 1, OVERHEAD, entries, {"tensorflow": "x"})


def test_nonnegative_fit_recovers_coefficients_and_never_goes_negative():
    rows = [((1.0, m, b), 5.0 + 2.0 * m + 0.5 * b) for m, b in [(1, 2), (4, 1), (9, 7), (3, 3), (10, 1)]]
    assert nonnegative_fit(rows) == pytest.approx((5.0, 2.0, 0.5))
    xs, ts = (1.0, 2.0, 3.0, 4.0), (9.0, 8.0, 7.0, 6.0)  # the best line has a negative slope: refused
    constant = sum(1 / t for t in ts) / sum(1 / t**2 for t in ts)  # the best of c and of c x x alone
    slope = sum(x / t for x, t in zip(xs, ts, strict=True)) / sum((x / t) ** 2 for x, t in zip(xs, ts, strict=True))

    def error(c, d):
        return sum(((c + d * x - t) / t) ** 2 for x, t in zip(xs, ts, strict=True))

    best = min([(constant, 0.0), (0.0, slope)], key=lambda cd: error(*cd))
    assert nonnegative_fit([((1.0, x), t) for x, t in zip(xs, ts, strict=True)]) == pytest.approx(best)


def _power_profile(layers, k=1e-7, b=0.6, m=0.3):
    """Every layer measured at exactly k x bytes^b x MACs^m (plus the overhead)."""
    entries = {}
    for layer in layers:
        macs, moved = features(layer)
        entries[key_of(unit_of(layer))] = Entry(unit_of(layer), OVERHEAD + k * moved**b * macs**m, macs, moved)
    return Profile("tflite", 1, OVERHEAD, entries, {"tensorflow": "x"})


def test_a_measured_unit_is_looked_up_and_an_unmeasured_one_fitted_on_its_family():
    net = deploy_form(compile_text(SE_NET))
    conv = next(c for c in _convs(net) if c.kernel == 1 and c.groups == 1)
    sizes = [(8, 16), (16, 64), (32, 24), (64, 8), (24, 96)]
    known = [conv.model_copy(update={"cin": cin, "cout": cout, "hw": (h, h)}) for (cin, cout), h
             in zip(sizes, (14, 7, 28, 14, 7), strict=True)]  # fmt: skip
    new = conv.model_copy(update={"cin": 40, "cout": 48, "hw": (10, 10)})
    profile = _power_profile(known)
    predictor = Predictor(profile)
    seconds, source = predictor.layer(known[0])
    assert source == "measured" and seconds == pytest.approx(profile.entries[key_of(unit_of(known[0]))].seconds
                                                            - OVERHEAD)  # fmt: skip
    macs, moved = features(new)
    seconds, source = predictor.layer(new)
    assert source.startswith("fitted on conv pointwise")
    assert seconds == pytest.approx(1e-7 * moved**0.6 * macs**0.3, rel=1e-6)  # the power law, recovered


def test_a_family_of_one_or_two_units_scales_with_bytes_and_an_empty_one_widens():
    net = deploy_form(compile_text(SE_NET))
    conv = next(c for c in _convs(net) if c.kernel == 1 and c.groups == 1)
    one = conv.model_copy(update={"cin": 16, "cout": 32})
    profile = _linear_profile([one])
    predictor = Predictor(profile)
    new = conv.model_copy(update={"cin": 32, "cout": 64})
    seconds, source = predictor.layer(new)
    measured = profile.entries[key_of(unit_of(one))].seconds - OVERHEAD
    assert source == "fitted on conv pointwise k1s1 " + conv.act
    assert seconds == pytest.approx(measured * features(new)[1] / features(one)[1])
    other_act = new.model_copy(update={"act": "swish" if conv.act != "swish" else "relu"})
    assert predictor.layer(other_act)[1] == "fitted on conv pointwise k1s1"  # no unit with that act: widened


def test_the_network_adds_units_with_the_scale_and_per_layer_cost_fitted_on_whole_networks():
    net = deploy_form(compile_text(SE_NET))
    layers = list(network_layers(net))
    profile = _linear_profile([x for x in layers if unit_of(x) is not None])
    alone = Predictor(profile)
    units = sum(t.seconds for t in alone.units(net))
    assert alone.scale == 1.0 and alone.per_layer == 0.0  # no network measured whole: units simply add up
    total, times = alone.network(net)
    assert total == pytest.approx(OVERHEAD + units)
    # networks measured whole at 1.5 x their units + 4 us per layer + 0.1 ns per weight byte: with
    # four, the fit finds all three
    runs = (("a", 1.0, 40, 10**6), ("b", 3.0, 90, 4 * 10**6), ("c", 2.0, 10, 9 * 10**6), ("d", 0.5, 70, 3 * 10**5))
    for name, factor, n, w in runs:
        seconds = OVERHEAD + 1.5 * units * factor + 4e-6 * n + 1e-10 * w
        profile.networks[name] = NetworkTime(seconds, units * factor, n, w)
    fitted = Predictor(profile)
    assert (fitted.scale, fitted.per_layer, fitted.per_weight_byte) == pytest.approx((1.5, 4e-6, 1e-10), rel=1e-6)
    total, times = fitted.network(net)
    weights = network_cost(net).weight_bytes()
    assert total == pytest.approx(OVERHEAD + 1.5 * units + 4e-6 * len(times) + 1e-10 * weights)
    assert sum(t.seconds for t in times) == pytest.approx(total - OVERHEAD)
    del profile.networks["d"]  # with three, the scale alone: too few runs to tell the terms apart
    assert Predictor(profile).per_layer == Predictor(profile).per_weight_byte == 0.0
    assert Predictor(profile).scale > 1.5


def test_a_layer_scale_is_folded_and_an_op_the_profile_lacks_is_an_error():
    net = deploy_form(compile_text(small_net("ib k3 e2 c16 layer_scale=0.1")))
    layers = list(network_layers(net))
    scale = next(x for x in layers if type(x).__name__ == "LayerScale")
    assert unit_of(scale) is None
    predictor = Predictor(_linear_profile([x for x in layers if unit_of(x) is not None]))
    assert predictor.layer(scale) == (0.0, "folded")
    predictor.per_layer = 1e-3  # the network's constant per layer goes to the layers that run, not a folded one
    times = predictor.network(net)[1]
    assert [t.seconds for t in times if t.source == "folded"] == [0.0]
    assert all(t.seconds > 1e-3 for t in times if t.source != "folded")
    fc = next(x for x in layers if unit_of(x) is not None and unit_of(x)["op"] == "fc")
    without_fc = Predictor(_linear_profile([x for x in layers if unit_of(x) is not None and x is not fc]))
    with pytest.raises(ArchError, match="the profile has no fc unit to predict head"):
        without_fc.layer(fc)


def test_a_profile_round_trips_and_a_wrong_one_is_refused(tmp_path):
    net = deploy_form(compile_text(SE_NET))
    profile = _linear_profile(list(_convs(net)))
    profile.networks["n 123"] = NetworkTime(1e-3, 9e-4, 12, 4096)
    back = profile_from_json(json.loads(json.dumps(profile.to_json())), "p.json")
    assert back == profile
    path = tmp_path / "p.json"
    path.write_text('{"format": "archdsl-latency-profile/1",\n  "runtime": tflite}')
    with pytest.raises(ArchError) as e:
        read_profile(str(path))
    assert e.value.span is not None and (e.value.span.line, e.value.span.col) == (2, 14)
    broken = profile.to_json()
    broken["entries"][0]["seconds"] = -1
    with pytest.raises(ArchError, match="entry 1 is malformed"):
        profile_from_json(broken, "p.json")
    path.write_text(json.dumps(profile.to_json()))
    with pytest.raises(ArchError, match="measured for tflite with 1 thread"):
        load_existing(path, "tflite", 2)
    path.write_text('{"mine": true}')
    with pytest.raises(ArchError, match="not a latency profile"):
        load_existing(path, "tflite", 1)  # and calibrate never writes over such a file


def _hostile(change):
    net = deploy_form(compile_text(SE_NET))
    data = _linear_profile(list(_convs(net))).to_json()
    data["networks"] = {"n 1": {"seconds": 1e-3, "units": 9e-4, "layers": 3, "weights": 100}}
    change(data)
    return data


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(meta="text"),
        lambda d: d.update(entries=3),
        lambda d: d.update(networks=[1, 2]),
        lambda d: d["entries"][0]["unit"].pop("k"),
        lambda d: d["entries"][0]["unit"].update(groups="2"),
        lambda d: d["entries"][0]["unit"].update(op="warp"),
        lambda d: d["entries"][0].update(macs=10**400),
        lambda d: d["entries"][0].update(seconds=float("nan")),
        lambda d: d["networks"]["n 1"].update(seconds=d["overhead_seconds"]),
        lambda d: d.update(threads=True),
    ],
    ids=["meta", "entries", "networks", "field", "type", "op", "huge", "nan", "below-overhead", "bool"],
)
def test_a_hostile_profile_is_refused_not_a_crash(change):
    with pytest.raises(ArchError, match="not a latency profile"):
        profile_from_json(_hostile(change), "p.json")


def test_a_network_timed_below_the_call_overhead_is_an_error_not_a_profile_nobody_can_read():
    """Noise (too few rounds) can time a tiny network under the runtime's own per-call cost: the
    reader refuses such a profile, so calibrate refuses to record it."""
    net = deploy_form(compile_text(SE_NET))
    profile = _linear_profile([x for x in network_layers(net) if unit_of(x) is not None])
    with pytest.raises(ArchError, match=r"measured at 2.0 us a call, not above the runtime's own overhead"):
        record_networks(profile, [net], [2e-6])
    assert not profile.networks
    record_networks(profile, [net], [OVERHEAD + 1e-3])
    assert profile_from_json(profile.to_json(), "p.json").networks == profile.networks


def test_json_the_parser_cannot_take_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "p.json"
    for text in ("[" * 100_000 + "]" * 100_000, '{"format": ' + "9" * 5000 + "}"):
        path.write_text(text)
        with pytest.raises(ArchError, match="cannot read latency profile|malformed JSON"):
            read_profile(str(path))


def test_the_calibrate_defaults_are_the_modules():
    from archdsl.cli.main import _parser
    from archdsl.runtimes.calibrate import CALLS, ROUNDS, WARMUP

    args = _parser().parse_args(["calibrate", "x.arch", "-o", "p.json"])
    assert (args.rounds, args.calls, args.warmup) == (ROUNDS, CALLS, WARMUP)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibrate") / "profile.json"
    nets = [deploy_form(compile_text(SE_NET)), deploy_form(compile_text(ATTENTION.replace("PAD", "symmetric")))]
    profile, measured = calibrate(nets, path, "tflite", 1, 1, 1, 0, grid=False)  # the grid: its own test
    return nets, path, profile, measured


def test_calibrate_measures_every_unit_and_network_and_goes_on_where_it_stopped(calibrated):
    nets, path, profile, measured = calibrated
    units = {key_of(unit_of(x)) for net in nets for x in network_layers(net) if unit_of(x) is not None}
    assert units == set(profile.entries) and measured == len(profile.entries)
    assert all(e.seconds > 0 for e in profile.entries.values())
    assert set(profile.networks) == {network_key(n) for n in nets}
    assert read_profile(str(path)) == profile
    again, measured_again = calibrate(nets, path, "tflite", 1, 1, 1, 0, grid=False)
    assert measured_again == 0 and again == profile
    # an interrupted run: some units and a network missing; only those are measured again
    partial = profile.to_json()
    lost, partial["entries"] = partial["entries"][:3], partial["entries"][3:]
    partial["networks"].pop(network_key(nets[0]))
    path.write_text(json.dumps(partial))
    resumed, measured_now = calibrate(nets, path, "tflite", 1, 1, 1, 0, grid=False)
    assert measured_now == 3 and set(resumed.entries) == set(profile.entries)
    kept = {key_of(e["unit"]) for e in partial["entries"]}
    assert all(resumed.entries[k] == profile.entries[k] for k in kept)
    assert set(resumed.networks) == set(profile.networks) and {key_of(e["unit"]) for e in lost} <= set(resumed.entries)
    path.write_text(json.dumps(partial))
    with pytest.raises(ArchError, match=r"measured with rounds 1 \(now 2\)"):
        calibrate(nets, path, "tflite", 1, 2, 1, 0, grid=False)  # never mixed with other settings
    assert json.loads(path.read_text()) == partial  # and left as it was
    for net in nets:
        total, times = Predictor(profile).network(net)
        assert all(t.source == "measured" or t.source == "folded" for t in times)
        assert total > profile.overhead and all(t.seconds >= 0 for t in times)


def test_the_grid_adds_every_conv_at_half_and_one_and_a_half_times_its_width():
    """What `calibrate` measures besides the networks' own units (the fits need more sizes than a
    network has): each plain or depthwise conv with its channels scaled (multiples of 8, a
    stem's image channels kept, a depthwise conv still depthwise), every unit once."""
    net = deploy_form(compile_text(SE_NET))
    own = units_to_measure([net], grid=False)
    both = units_to_measure([net], grid=True)
    assert {key_of(u) for u, _ in own} < {key_of(u) for u, _ in both}
    assert len({key_of(u) for u, _ in both}) == len(both)
    convs = [x for x in network_layers(net) if isinstance(x, ConvBnAct) and unit_of(x) is not None]
    grid = [layer for _, layer in both if isinstance(layer, ConvBnAct)]
    for conv in convs:
        for scale in (0.5, 1.5):
            cin = conv.cin if conv.cin <= 4 else max(8, round(conv.cin * scale / 8) * 8)
            cout = cin if conv.groups > 1 else max(8, round(conv.cout * scale / 8) * 8)
            groups = cin if conv.groups > 1 else 1
            assert any((g.cin, g.cout, g.groups, g.kernel, g.stride) == (cin, cout, groups, conv.kernel, conv.stride)
                       for g in grid), (conv.path, scale)  # fmt: skip


def test_units_run_as_the_kernels_the_whole_network_runs(calibrated):
    """The fusion the predictor assumes, checked on the converter: the kernels of every unit, added
    up, are the whole network's, but for its flatten (dynamic batch) and a PAD the key and value
    downsampling share; in attention, also but for the layout ops (reshape, transpose) and the
    query scaling, which the converter arranges differently around a unit's edges."""
    import tensorflow as tf

    from archdsl.codegen.registry import get_backend
    from archdsl.runtimes.runners.keras_runner import build
    from archdsl.runtimes.runners.tflite_runner import convert
    from archdsl.runtimes.weights import init_weights, save_weights

    nets, path, _, _ = calibrated
    layout = {"RESHAPE", "TRANSPOSE", "MUL"}
    for net in nets:
        ops = dict((key_of(u), o) for u, o in measured_ops([net]))
        units = collections.Counter(op for x in network_layers(net) if unit_of(x) for op in ops[key_of(unit_of(x))])
        weights = str(path.parent / f"{net.name}.safetensors")
        save_weights(init_weights(net, 0), weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(
                model_content=convert(build(get_backend("keras").emit(net), net, weights))
            )
        whole = collections.Counter(o["op_name"] for o in interpreter._get_ops_details() if o["op_name"] != "DELEGATE")
        whole -= collections.Counter({"SHAPE": 1, "STRIDED_SLICE": 1, "PACK": 1, "RESHAPE": 1})  # the flatten
        shared_pads = sum(
            1 for b in net.blocks() if getattr(b, "key_down", None) is not None and any(b.key_down.padding)
        )
        units -= collections.Counter({"PAD": shared_pads})
        attention = any(type(b).__name__ == "MobileAttention" for b in net.blocks())
        if attention:
            whole, units = ({k: v for k, v in c.items() if k not in layout} for c in (whole, units))
        assert whole == units, net.name
        assert attention or net.name == "n"  # the conv network is checked op for op


def test_latency_and_cost_commands_read_the_profile(calibrated, tmp_path, capsys):
    _, path, profile, _ = calibrated
    spec = tmp_path / "se.arch"
    spec.write_text(SE_NET)
    assert main(["latency", str(spec), "--profile", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runtime"] == "tflite" and data["threads"] == 1 and data["form"] == "deploy"
    assert sum(data["blocks"].values()) == pytest.approx(data["seconds"] - profile.overhead)
    assert main(["cost", str(spec), "--deploy", "--profile", str(path), "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["predicted_seconds"] == pytest.approx(data["seconds"])
    assert [x["predicted_seconds"] for x in cost["layers"]] == pytest.approx([x["seconds"] for x in data["layers"]])
    assert main(["cost", str(spec), "--deploy", "--profile", str(path)]) == 0
    table = capsys.readouterr().out
    assert "pred. ms" in table.splitlines()[1] and f"{data['seconds'] * 1e3:.3f}" in table
    assert main(["latency", str(spec), "--profile", str(path), "--threads", "2"]) == 1
    assert "measured with 1 thread(s), not 2" in capsys.readouterr().err


def test_bad_runtime_and_bad_profile_are_errors_not_tracebacks(tmp_path, capsys):
    spec = tmp_path / "se.arch"
    spec.write_text(SE_NET)
    assert main(["calibrate", str(spec), "--runtime", "tflit", "-o", str(tmp_path / "p.json")]) == 2
    assert "did you mean 'tflite'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops\n}\n")
    assert main(["latency", str(spec), "--profile", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.json:2:3" in err and "Traceback" not in err
    assert main(["calibrate", str(spec), "-o", str(spec)]) == 1
    assert "refusing to write over the input file" in capsys.readouterr().err
