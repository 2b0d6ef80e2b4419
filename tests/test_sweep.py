"""`archdsl sweep` (docs/search.md): every candidate's metrics against the compiler's own, the
Pareto front against brute force, the same rows from every executor (here, a local pool, a Ray
cluster started in the test), resumption after an interrupted run (a real Ctrl-C), NSGA-II, the
user's own metric, the results formats, and the files a sweep refuses to replace."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archdsl.analysis.cost import network_cost
from archdsl.analysis.latency import Entry, Predictor, Profile, features, key_of, unit_of
from archdsl.analysis.layers import network_layers
from archdsl.cli.main import main as cli
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.pipeline import resolve
from archdsl.search import results
from archdsl.search.pareto import front
from archdsl.search.space import Space
from conftest import SPACE

COMMON = ["--metric", "roofline@50", "--objective", "min:roofline@50", "--objective", "max:macs",
          "--constraint", "macs<=9e6"]  # fmt: skip


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "space.arch"
    path.write_text(SPACE)
    return path


def _sweep(spec: Path, out: Path, *args: str) -> int:
    return cli(["sweep", str(spec), *args, "-o", str(out)])


def _brute_front(points: list[tuple[float, ...]]) -> list[bool]:
    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return [not any(dominates(q, p) for q in points) for p in points]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 3)), max_size=40))
def test_the_front_is_the_brute_force_front(points):
    assert front(points) == _brute_front(points)


def test_every_candidate_is_measured_as_the_compiler_measures_it(spec, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert _sweep(spec, out, "--all", "--workers", "1", *COMMON) == 0
    rows = results.read(out)
    space = Space.load(spec)
    assert [r["index"] for r in rows] == list(range(432))
    for row in rows:
        candidate = space.candidate(row["index"])
        assert row["hash"] == candidate.hash
        assert {d.name: str(row[d.name]) for d in space.dimensions} == space.labels(candidate.binding)
        try:
            net = resolve(candidate.lower(), "x")
        except Exception as e:
            assert row["error"] == getattr(e, "message", None) and row["feasible"] is False
            continue
        total = network_cost(net)
        assert (row["params"], row["macs"], row["error"]) == (total.params, total.macs, "")
        assert row["weight_bytes"] == total.weight_bytes() and row["activation_bytes"] == total.activation_bytes()
        deployed = deploy_form(net)  # roofline at ridge 0 is the deploy form's MACs; at 50 no less
        assert row["roofline@50"] >= network_cost(deployed).macs
        assert row["feasible"] == (row["macs"] <= 9e6)
    assert sum(bool(r["error"]) for r in rows) > 0  # the space has candidates that do not build
    feasible = [r for r in rows if r["feasible"]]
    expected = _brute_front([(r["roofline@50"], -r["macs"]) for r in feasible])
    assert [r["front"] for r in feasible] == expected and any(expected)
    assert not any(r["front"] for r in rows if not r["feasible"])
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("432 candidates (432 evaluated in") and f"{sum(expected)} on the front" in summary


def test_the_same_rows_from_here_and_from_a_local_pool(spec, tmp_path):
    assert _sweep(spec, tmp_path / "inline.csv", "--samples", "120", "--seed", "3", "--workers", "1", *COMMON) == 0
    assert _sweep(spec, tmp_path / "pool.csv", "--samples", "120", "--seed", "3", "--workers", "2", *COMMON) == 0
    assert (tmp_path / "inline.csv").read_bytes() == (tmp_path / "pool.csv").read_bytes()


@pytest.mark.ray
def test_the_same_rows_from_a_ray_cluster(spec, tmp_path):
    """A real local Ray cluster of 2 CPUs, started by the sweep: byte for byte the local rows."""
    assert _sweep(spec, tmp_path / "inline.csv", "--samples", "120", "--seed", "3", "--workers", "1", *COMMON) == 0
    assert (
        _sweep(spec, tmp_path / "ray.csv", "--samples", "120", "--seed", "3", "--ray", "--workers", "2", *COMMON) == 0
    )
    assert (tmp_path / "inline.csv").read_bytes() == (tmp_path / "ray.csv").read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_every_format_holds_the_same_rows(spec, tmp_path, suffix):
    assert _sweep(spec, tmp_path / "r.csv", "--samples", "40", "--workers", "1", *COMMON) == 0
    assert _sweep(spec, tmp_path / f"r{suffix}", "--samples", "40", "--workers", "1", *COMMON) == 0
    csv_rows, other = results.read(tmp_path / "r.csv"), results.read(tmp_path / f"r{suffix}")

    def same(a, b):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or (
            str(a) == str(b))  # fmt: skip

    assert len(csv_rows) == len(other) == 40
    for a, b in zip(csv_rows, other, strict=True):
        assert a.keys() == b.keys() and all(same(a[k], b[k]) or (a[k] == "" and math.isnan(b[k])) for k in a)


def test_a_resumed_sweep_reuses_what_is_there(spec, tmp_path, capsys):
    whole, part = tmp_path / "whole.csv", tmp_path / "part.csv"
    assert _sweep(spec, whole, "--samples", "60", "--seed", "1", "--workers", "1", *COMMON) == 0
    lines = whole.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:26]))  # as an interrupted run leaves it: the first 25 rows
    capsys.readouterr()
    assert _sweep(spec, part, "--samples", "60", "--seed", "1", "--workers", "1", *COMMON) == 0
    err = capsys.readouterr().err
    assert "(35 evaluated in" in err and "25 reused" in err
    assert part.read_bytes() == whole.read_bytes()


EVALUATE = """
import os, time

def params_and_a_pause(spec, model):
    time.sleep(float(os.environ.get("PAUSE", "0")))
    return {"tensors": float(len(list(model.parameters()))), "lines": float(spec.count("\\n"))}
"""


def test_ctrl_c_leaves_a_valid_partial_file_and_the_rerun_completes_it(spec, tmp_path):
    """A real SIGINT to a running sweep: the file holds the rows saved so far; the rerun evaluates
    only the rest and gives what an uninterrupted sweep gives."""
    (tmp_path / "slow_metric.py").write_text(EVALUATE)
    out = tmp_path / "r.jsonl"
    argv = [sys.executable, "-m", "archdsl", "sweep", str(spec), "--samples", "80", "--workers", "1",
            "--evaluate", "slow_metric:params_and_a_pause", "-o", str(out), *COMMON]  # fmt: skip
    env = {**os.environ, "PAUSE": "0.1"}
    # a pytest-xdist worker ignores SIGINT, and a child inherits that: give it the default back
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline:  # the first save, after 2 s
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(saved) < 80 and all(r["error"] or r["tensors"] > 0 for r in saved)
    done = subprocess.run(argv, cwd=tmp_path, env={**env, "PAUSE": "0"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"({80 - len(saved)} evaluated in" in done.stderr and f"{len(saved)} reused" in done.stderr
    fresh = tmp_path / "fresh.jsonl"
    again = subprocess.run([*argv[:-len(COMMON) - 2], "-o", str(fresh), *COMMON], cwd=tmp_path,
                           env={**env, "PAUSE": "0"}, capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == fresh.read_bytes()


def test_the_users_metric_joins_the_row_and_can_be_an_objective(spec, tmp_path, monkeypatch):
    (tmp_path / "my_metric.py").write_text(EVALUATE)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.csv"
    assert _sweep(spec, out, "--samples", "12", "--workers", "1", "--evaluate", "my_metric:params_and_a_pause",
                  "--objective", "min:tensors", "--objective", "min:macs") == 0  # fmt: skip
    space = Space.load(spec)
    for row in results.read(out):
        if row["error"]:
            continue
        text = space.candidate(row["index"]).text
        assert row["lines"] == text.count("\n") and row["tensors"] > 10


def test_nsga2_is_seeded_and_respects_its_constraints(spec, tmp_path):
    args = ["--search", "nsga2", "--trials", "80", "--population", "16", "--seed", "5", "--workers", "1", *COMMON]
    assert _sweep(spec, tmp_path / "a.csv", *args) == 0
    assert _sweep(spec, tmp_path / "b.csv", *args) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rows = results.read(tmp_path / "a.csv")
    assert 16 <= len(rows) <= 80 and len({r["hash"] for r in rows}) == len(rows)
    assert all(r["macs"] <= 9e6 for r in rows if r["feasible"]) and any(r["front"] for r in rows)


def test_the_latency_metric_is_the_predictors_on_the_deploy_form(spec, tmp_path):
    space = Space.load(spec)
    layers = []
    for index in (300, 431):
        layers += network_layers(deploy_form(resolve(space.candidate(index).lower(), "x")))
    entries = {}
    for layer in layers:
        unit = unit_of(layer)
        if unit is not None:
            macs, moved = features(layer)
            entries[key_of(unit)] = Entry(unit, 2e-6 + 3e-6 + 2e-12 * macs + 1e-10 * moved, macs, moved)
    profile = Profile("tflite", 1, 2e-6, entries, {"tensorflow": "x"})
    (tmp_path / "p.json").write_text(json.dumps(profile.to_json()))
    out = tmp_path / "r.csv"
    assert _sweep(spec, out, "--samples", "20", "--workers", "1", "--metric", f"latency@{tmp_path / 'p.json'}") == 0
    predictor = Predictor(profile)
    for row in results.read(out):
        if not row["error"]:
            net = deploy_form(resolve(space.candidate(row["index"]).lower(), "x"))
            assert row[f"latency@{tmp_path / 'p.json'}"] == pytest.approx(predictor.network(net)[0] * 1e3, rel=1e-12)


def test_the_roofline_metric_is_the_deploy_forms_at_its_dtype(spec, tmp_path):
    from archdsl.analysis.roofline import effective_macs, loads

    out = tmp_path / "r.csv"
    assert _sweep(spec, out, "--samples", "15", "--workers", "1", "--metric", "roofline@100:int8",
                  "--metric", "roofline@0") == 0  # fmt: skip
    space = Space.load(spec)
    for row in results.read(out):
        if not row["error"]:
            deployed = deploy_form(resolve(space.candidate(row["index"]).lower(), "x"))
            assert row["roofline@100:int8"] == effective_macs(loads(deployed, "int8"), 100.0)
            assert row["roofline@0"] == network_cost(deployed).macs  # at ridge 0, the MACs


def test_the_front_as_specs_and_as_a_plot(spec, tmp_path):
    folder, plot = tmp_path / "front", tmp_path / "front.png"
    assert _sweep(spec, tmp_path / "r.csv", "--all", "--workers", "1", *COMMON, "--front-specs", str(folder),
                  "--plot", str(plot)) == 0  # fmt: skip
    members = [r for r in results.read(tmp_path / "r.csv") if r["front"]]
    written = sorted(folder.glob("*.arch"))
    assert len(written) == len({r["hash"] for r in members}) and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from archdsl.compiler import compile_file

    for path in written:
        assert network_cost(compile_file(path)).macs <= 9e6


def test_a_file_that_is_not_a_sweeps_results_is_never_replaced(spec, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("name,value\nmine,1\n")
    assert _sweep(spec, notes, "--samples", "5", "--workers", "1") == 1
    assert notes.read_text() == "name,value\nmine,1\n"
    assert "is not a sweep's results file" in capsys.readouterr().err
    assert _sweep(spec, spec, "--samples", "5", "--workers", "1") == 1  # nor the spec itself
    assert spec.read_text() == SPACE


@pytest.mark.parametrize(
    "args, status, said",
    [
        (["--all", "--metric", "latency"], 2, "unknown metric 'latency'"),
        (["--all", "--constraint", "macs<300e6"], 2, "cannot read the constraint"),
        (["--all", "--objective", "fastest"], 2, "cannot read the objective"),
        (["--all", "--objective", "min:speed"], 2, "'speed' is not a metric of this sweep"),
        (["--all", "--trials", "5"], 2, "--trials goes with --search nsga2"),
        (["--samples", "3", "--metric", "roofline@x"], 2, "the ridge point must be a number"),
        (["--samples", "3", "--metric", "roofline@5:int4"], 2, "unknown dtype 'int4'"),
    ],
)
def test_bad_sweep_arguments_are_usage_errors(spec, tmp_path, capsys, args, status, said):
    assert _sweep(spec, tmp_path / "r.csv", *args) == status
    assert said in capsys.readouterr().err and not (tmp_path / "r.csv").exists()


def test_a_terminal_gets_a_progress_bar_with_rate_and_time_left(spec, tmp_path):
    """stderr a real terminal (a pseudo-terminal): tqdm's bar, with the rate and the time left;
    the tests above, on pipes, get none (their stderr ends with the summary line alone)."""
    import fcntl
    import pty
    import struct
    import termios

    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    argv = [sys.executable, "-m", "archdsl", "sweep", str(spec), "--samples", "60", "--workers", "1",
            "-o", str(tmp_path / "r.csv")]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=side)
    os.close(side)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=120) == 0
    text = shown.decode(errors="replace")
    assert "60/60" in text and "candidate/s" in text and "100%" in text and "<00:00" in text


def test_a_dimension_named_as_a_column_is_refused(tmp_path, capsys):
    path = tmp_path / "s.arch"
    path.write_text(SPACE.replace("e_mid", "params"))
    assert _sweep(path, tmp_path / "r.csv", "--samples", "3", "--workers", "1") == 2
    assert "the dimension 'params' has the name of a results column" in capsys.readouterr().err


WEIGHTS = """
def weight_sum(spec, model):
    return {"weight_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}
"""


def test_resumed_rows_without_the_users_metric_are_evaluated_again_and_models_are_seeded(spec, tmp_path, monkeypatch):
    """A row from a sweep without --evaluate is not reused by one with it; the model each call
    gets is seeded by the candidate (the same sums from here and from a local pool, run twice)."""
    (tmp_path / "weights.py").write_text(WEIGHTS)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.csv"
    assert _sweep(spec, out, "--samples", "8", "--workers", "1") == 0
    user = ["--evaluate", "weights:weight_sum", "--objective", "min:weight_sum", "--objective", "min:macs"]
    assert _sweep(spec, out, "--samples", "8", "--workers", "1", *user) == 0
    rows = results.read(out)
    assert out.read_text().splitlines()[0].split(",").count("evaluate") == 1
    assert all(r["evaluate"] == "weights:weight_sum" for r in rows)
    assert all(r["error"] or not math.isnan(r["weight_sum"]) for r in rows)
    assert _sweep(spec, tmp_path / "pool.csv", "--samples", "8", "--workers", "2", *user) == 0
    assert out.read_bytes() == (tmp_path / "pool.csv").read_bytes()


def test_csv_resumption_keeps_values_as_written(tmp_path):
    path = tmp_path / "s.arch"
    path.write_text(SPACE.replace("width {0.75,1.0}", "width {0.50,1.0}"))
    whole, part = tmp_path / "whole.csv", tmp_path / "part.csv"
    assert _sweep(path, whole, "--samples", "30", "--workers", "1") == 0
    part.write_text("".join(whole.read_text().splitlines(keepends=True)[:11]))
    assert _sweep(path, part, "--samples", "30", "--workers", "1") == 0
    assert part.read_bytes() == whole.read_bytes() and ",0.50," in whole.read_text()
