"""Weight files archdsl did not write: every damaged safetensors file, wrong dtype, non-finite
value and path that is no regular file ends `verify`, `export` and `import-weights` with exit 1
and one message naming the file and the damage: no traceback, no hang, nothing written at `-o`.
Most run in-process (the error comes before any framework loads); one subprocess per command,
on a FIFO, proves the whole process. Non-finite outputs fail `verify` too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from archdsl.cli import main as cli
from archdsl.compiler import compile_text
from archdsl.runtimes.importers.timm import _modules, timm_key
from archdsl.runtimes.verify import compare, report_text
from archdsl.runtimes.weights import init_weights
from conftest import ROOT, small_net

NET = small_net()
WEIGHT = "stages.0.blocks.0.expand.conv.weight"  # the tensor the dtype and value cases change
TIMM_WEIGHT = "blocks.0.0.pw_exp.conv.weight"  # its timm name


# ---- safetensors bytes, written by hand so that any damage can be made -------------------------
def pack(tensors: dict[str, np.ndarray], dtypes: dict[str, str] | None = None, metadata: dict | None = None) -> bytes:
    """A safetensors file; `dtypes` overrides a tensor's dtype string (BF16: raw uint16 bytes)."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
             np.dtype(np.int8): "I8", np.dtype(np.int64): "I64", np.dtype(np.bool_): "BOOL", np.dtype(np.uint16): "BF16"}  # fmt: skip
    header: dict = {"__metadata__": metadata} if metadata else {}
    data = b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        dtype = (dtypes or {}).get(name, names[a.dtype])
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return join(header, data)


def join(header: dict | str, data: bytes, length: int | None = None) -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def split(raw: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def edit(change):  # type: ignore[no-untyped-def]
    """A damage that rewrites the header (a dict, changed in place) and keeps the data."""

    def damage(raw: bytes) -> bytes:
        header, data = split(raw)
        change(header, [k for k in header if k != "__metadata__"])
        return join(header, data)

    return damage


def _overlap(header: dict, names: list[str]) -> None:
    """Move a tensor onto an earlier one of the same size (a BN's bias onto its weight)."""
    weight, bias = (next(k for k in names if k.endswith(s)) for s in (".bn.weight", ".bn.bias"))
    header[bias]["data_offsets"] = header[weight]["data_offsets"]


def _duplicate(raw: bytes) -> bytes:
    header, data = split(raw)
    first = next(k for k in header if k != "__metadata__")
    text = json.dumps(header)
    return join(text[:-1] + f", {json.dumps(first)}: {json.dumps(header[first])}}}", data)


# id -> (damage to a valid file's bytes, what the message must say)
DAMAGE = {
    "zero-bytes": (lambda raw: b"", "the file is empty"),
    "text": (lambda raw: b"these are not weights, just text\n", "not a safetensors file"),
    "truncated-in-length": (lambda raw: raw[:5], "5 bytes, too short for safetensors"),
    "truncated-in-header": (lambda raw: raw[:40], "the file is truncated (its header length is"),
    "truncated-in-tensors": (lambda raw: raw[: len(raw) - 300], "the file is truncated (header says"),
    "truncated-by-one-byte": (lambda raw: raw[:-1], "the file is truncated (header says"),
    "header-length-beyond-file": (lambda raw: join(split(raw)[0], split(raw)[1], len(raw)), "the file is truncated"),
    "huge-header-length": (lambda raw: (1 << 62).to_bytes(8, "little") + raw[8:], "over the limit of 100,000,000"),
    "header-not-json": (lambda raw: join('{"a": [1, 2', split(raw)[1]), "its header is not JSON"),
    "header-not-utf8": (lambda raw: (4).to_bytes(8, "little") + b"\xff\xfe{}", "its header is not UTF-8 text"),
    "header-json-array": (lambda raw: join("[1, 2, 3]", split(raw)[1]), "its header is a JSON list, not an object"),
    "header-deeply-nested": (lambda raw: join("[" * 100_000 + "]" * 100_000, b""), "its header is not JSON"),
    "duplicate-tensor": (_duplicate, "twice"),
    "bad-dtype": (edit(lambda h, n: h[n[0]].update(dtype="F33")), "has an unknown dtype 'F33'"),
    "dtype-not-a-string": (edit(lambda h, n: h[n[0]].update(dtype=4)), "has an unknown dtype 4"),
    "entry-not-an-object": (edit(lambda h, n: h.update({n[0]: [1, 2]})), "is not described by dtype, shape"),
    "shape-not-a-list": (edit(lambda h, n: h[n[0]].update(shape="3x3")), "not a list of non-negative integers"),
    "negative-shape": (edit(lambda h, n: h[n[0]].update(shape=[-1, 4])), "not a list of non-negative integers"),
    "offsets-reversed": (
        edit(lambda h, n: h[n[0]].update(data_offsets=h[n[0]]["data_offsets"][::-1])),
        "not [begin, end] with 0 <= begin <= end",
    ),  # fmt: skip
    "offsets-out-of-range": (
        edit(lambda h, n: h[n[-1]].update(data_offsets=[o + 10**6 for o in h[n[-1]]["data_offsets"]])),
        "the file is truncated (header says",
    ),  # fmt: skip
    "offsets-overlapping": (edit(_overlap), "overlap"),
    "offsets-not-matching-shape": (edit(lambda h, n: h[n[0]].update(shape=[1])), "needs 4 bytes, its data_offsets"),
    "absurd-shape": (
        edit(lambda h, n: h[n[0]].update(shape=[10**30] * 50)),
        "has an impossible shape of 50 dimensions",
    ),
    "trailing-bytes": (lambda raw: raw + bytes(8), "8 bytes after the last tensor belong to no tensor"),
    "metadata-not-str-to-str": (
        edit(lambda h, n: h.update(__metadata__={"archdsl": 3})),
        "its __metadata__ is not a map of strings to strings",
    ),  # fmt: skip
    "metadata-a-list": (edit(lambda h, n: h.update(__metadata__=["deploy"])), "its __metadata__ is not a map"),
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """The spec, and valid bytes of its canonical weights and of a timm checkpoint for it."""
    root = tmp_path_factory.mktemp("valid")
    (root / "n.arch").write_text(NET)
    net = compile_text(NET, "n.arch")
    weights = init_weights(net, 0)
    modules = _modules(net, {f"{TIMM_WEIGHT}": None})  # timm's MobileNetV4 (`uir`) names
    state = {str(timm_key(k, modules)): v for k, v in weights.items()}
    state["bn1.num_batches_tracked"] = np.array(3, np.int64)  # an integer buffer, ignored
    return root / "n.arch", weights, state


def _commands(spec, weights: str, out: str) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(spec), "--weights", weights, "--backends", "torch,coreml"],
        "export": ["export", str(spec), "--backend", "tflite", "-o", out, "--weights", weights],
        "import-weights": ["import-weights", str(spec), "--from", "timm", weights, "-o", out],
    }


COMMANDS = ["verify", "export", "import-weights"]


def _fails(capsys, argv: list[str], out, *fragments: str) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists(), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage, message", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_file_is_a_located_error(valid, command, damage, message, tmp_path, capsys):
    spec, weights, state = valid
    raw = pack(state if command == "import-weights" else weights, metadata={"archdsl": "{}"})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(raw))
    out = tmp_path / "out.file"
    what = "checkpoint" if command == "import-weights" else "weights"
    _fails(capsys, _commands(spec, str(bad), str(out))[command], out, f"error: cannot read {what} '{bad}': ", message)


# id -> (how the tensor is stored, the verify/export message, the import-weights message or None: it imports)
VALUES = {
    "float16": (lambda a: (a.astype(np.float16), None), f"tensor '{WEIGHT}' is F16, not F32", None),
    "bfloat16": (lambda a: ((a.view(np.uint32) >> 16).astype(np.uint16), "BF16"), "is BF16, not F32", None),
    "float64": (lambda a: (a.astype(np.float64), None), "is F64, not F32", None),
    "int8": (lambda a: (a.astype(np.int8), None), "is I8, not F32", f"dtype: {WEIGHT} needs floats, timm {TIMM_WEIGHT} is I8"),
    "bool": (lambda a: (a > 0, None), "is BOOL, not F32", f"timm {TIMM_WEIGHT} is BOOL"),
    "nan": (lambda a: (np.where(a > 0, np.nan, a).astype(np.float32), None), f"tensor '{WEIGHT}' holds", "non-finite"),
    "inf": (lambda a: (np.where(a > 0, np.inf, a).astype(np.float32), None), "NaN and", f"timm {TIMM_WEIGHT} holds NaN or Inf"),
    "float64-beyond-float32": (lambda a: (a.astype(np.float64) * 1e300, None), "is F64, not F32", "non-finite"),
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("store, message, imported", VALUES.values(), ids=VALUES.keys())
def test_wrong_dtypes_and_non_finite_values_are_named(valid, command, store, message, imported, tmp_path, capsys):
    spec, weights, state = valid
    tensors, key = (dict(state), TIMM_WEIGHT) if command == "import-weights" else (dict(weights), WEIGHT)
    tensors[key], dtype = store(tensors[key])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(pack(tensors, {key: dtype} if dtype else None))
    out = tmp_path / "out.safetensors"
    argv = _commands(spec, str(bad), str(out))[command]
    if command == "import-weights" and imported is None:  # a float checkpoint: converted, said so
        assert cli.main(argv) == 0 and out.exists()
        assert f"note: {bad}: 1 float16/bfloat16/float64 tensor(s) converted to float32" in capsys.readouterr().err
        return
    _fails(capsys, argv, out, str(bad), message if command != "import-weights" else imported)


def test_a_float16_checkpoint_imports_as_float32(valid, tmp_path, capsys):
    spec, _, state = valid
    ckpt, out = tmp_path / "half.safetensors", tmp_path / "w.safetensors"
    ckpt.write_bytes(pack({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in state.items()}))
    assert cli.main(["import-weights", str(spec), "--from", "timm", str(ckpt), "-o", str(out)]) == 0
    assert (
        f"note: {ckpt}: {len(state) - 1} float16/bfloat16/float64 tensor(s) converted to float32"
        in capsys.readouterr().err
    )
    assert cli.main(["verify", str(spec), "--weights", str(out), "--backends", "torch,coreml"]) == 0


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["directory", "character device", "missing"])
def test_a_path_that_is_no_regular_file_is_refused(valid, command, kind, tmp_path, capsys):
    path = {"directory": str(tmp_path), "character device": "/dev/zero", "missing": str(tmp_path / "none")}[kind]
    message = {"directory": "it is a directory", "character device": "it is a character device"}.get(
        kind, "no such file"
    )
    out = tmp_path / "out.file"
    _fails(capsys, _commands(valid[0], path, str(out))[command], out, f"'{path}': {message}")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_over_the_size_limit_is_refused_before_reading(valid, command, tmp_path, capsys, monkeypatch):
    import archdsl.limits

    spec, weights, _ = valid
    path, out = tmp_path / "w.safetensors", tmp_path / "out.file"
    path.write_bytes(pack(weights))
    monkeypatch.setattr(archdsl.limits, "MAX_WEIGHT_FILE_BYTES", 100)
    _fails(
        capsys,
        _commands(spec, str(path), str(out))[command],
        out,
        "bytes, more than the 100 bytes a weight file may have",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_does_not_hang_and_no_traceback(valid, command, tmp_path):
    fifo, out = tmp_path / "weights.fifo", tmp_path / "out.file"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes: none will
    argv = _commands(valid[0], str(fifo), str(out))[command]
    result = subprocess.run([sys.executable, "-m", "archdsl", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"'{fifo}': it is a named pipe (FIFO), not a regular file" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_non_finite_outputs_fail_verify():
    ref = {"stem.0": np.ones((1, 2), np.float32), "head.1": np.ones((1, 3), np.float32)}
    other = {"stem.0": np.ones((1, 2), np.float32), "head.1": np.array([[1.0, np.nan, 1.0]], np.float32)}
    report = compare("torch", ref, "keras", other, tolerance=1e-4)
    assert not report.ok and report.first_divergence == "head.1" and report.nonfinite == "keras at head.1"
    both = compare("torch", {"x": np.full(2, np.inf)}, "keras", {"x": np.full(2, np.inf)}, tolerance=1e-4)
    assert not both.ok and both.nonfinite == "torch and keras at x"  # inf == inf, yet nothing agrees
    net = compile_text(NET, "n.arch")
    assert "NON-FINITE torch vs keras: NaN or Inf from keras at head.1" in report_text(net, [report], 1e-4, None, 0)
    assert "all backends agree" not in report_text(net, [report], 1e-4, None, 0)


@pytest.mark.parametrize(
    "shape, offsets",
    [([1 << 32, 1 << 32, 1 << 32, 0], [0, 0]), ([1] * 100_000, [0, 4]), ([1 << 70, 0], [0, 0])],
    ids=["huge-empty", "too-many-dims", "dim-beyond-int64"],
)
def test_an_impossible_shape_is_named_not_a_numpy_error(valid, shape, offsets, tmp_path, capsys):
    """Found in review: numpy's reshape raised on these (a zero-size tensor of 2^96 elements, 100,000 dims)."""
    spec = valid[0]
    path, out = tmp_path / "c.safetensors", tmp_path / "out.file"
    path.write_bytes(join({"a": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}, b"\0" * offsets[1]))
    _fails(capsys, _commands(spec, str(path), str(out))["import-weights"], out, "has an impossible shape")
