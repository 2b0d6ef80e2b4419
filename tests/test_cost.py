"""The cost model's derived figures: bytes at each dtype, and the MobileNetV4 roofline, checked
against its limits (pure compute, pure memory traffic) on a real network."""

from __future__ import annotations

from archdsl.analysis.cost import layer_cost, network_cost
from archdsl.analysis.layers import network_layers
from archdsl.analysis.roofline import roofline_seconds
from archdsl.compiler import compile_file
from conftest import SPECS


def test_roofline_reaches_its_limits_and_never_beats_either_bound():
    net = compile_file(SPECS / "mnv4_conv_s.arch")
    total = network_cost(net)
    moved = total.weight_bytes() + total.activation_bytes()
    assert abs(roofline_seconds(net, 1e9, 1e30) - total.macs / 1e9) < 1e-12  # unlimited bandwidth: compute bound
    assert abs(roofline_seconds(net, 1e30, 1e9) - moved / 1e9) < 1e-12  # unlimited compute: memory bound
    t = roofline_seconds(net, 1e9, 1e9)
    assert t >= max(total.macs, moved) / 1e9  # per-layer max is never below the whole-network max
    assert t <= (total.macs + moved) / 1e9


def test_bytes_scale_with_the_dtype():
    total = network_cost(compile_file(SPECS / "mnv2.arch"))
    assert total.weight_bytes("float16") * 2 == total.weight_bytes("float32") == 4 * total.params
    assert total.activation_bytes("int8") * 4 == total.activation_bytes("float32")


def test_every_layer_of_a_conv_is_read_and_written_once():
    net = compile_file(SPECS / "mnv1.arch")
    stem = next(iter(network_layers(net)))
    c = layer_cost(stem)
    assert c.activation_elems == 3 * 224 * 224 + 32 * 112 * 112
    assert c.macs == 32 * 112 * 112 * 3 * 9
