"""ONNX -> .ckpt -> ONNX round trips through dlconvert, checked with the real ONNX tools.

For every model: dlconvert writes it as a checkpoint and back as ONNX (plain, with external data,
and at each opset asked for); each result must pass onnx.checker.check_model(full_check=True),
declare an IR version ONNX Runtime 1.31 loads, and give the same ONNX Runtime outputs as the
original on the same inputs (the model's own test_data_set_0/input_*.pb when it has one, as in
the ONNX backend node tests, else seeded random inputs with dynamic dims set to 1).

Usage:
    .venv/bin/python scripts/onnx_roundtrip.py [--bin .build/debug] [--opset 11 --opset 13]
        [--no-external] DIR_OR_MODEL...

DIRs are searched for *.onnx. A model dlconvert cannot read (unsupported ops) or ONNX Runtime
cannot run is skipped and counted; an opset a model's ops cannot take is reported as blocked.
Ends with "roundtrip: N passed, N failed, N skipped, N blocked"; exits 1 on any failure.
Also imported by scripts/peer_checks.py.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_IR = 13  # the newest IR version ONNX Runtime 1.31 loads
RTOL, ATOL = 1e-5, 1e-6
# Every tensor the writer may put in the data file goes there (it keeps small integer tensors,
# i.e. shapes and axes, inline: ONNX Runtime and onnx's shape inference cannot read them from it).
EXTERNAL_THRESHOLD = 0


class Skip(Exception):
    """The model is outside what the round trip can judge (not a failure)."""


class Blocked(Exception):
    """dlconvert refused the target opset and said which nodes block it."""


def find_models(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(glob.glob(os.path.join(p, "**", "*.onnx"), recursive=True))
        else:
            out.append(p)
    return out


def dlconvert(bin_dir, *args):
    r = subprocess.run([os.path.join(bin_dir, "dlconvert"), *args], capture_output=True, text=True)
    return r.returncode, r.stderr.strip()


def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def numpy_dtype(elem_type):
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type)


def inputs_for(model_path, model, seed=0):
    """The model's stored test inputs if it has them, else seeded random ones."""
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    stored = sorted(glob.glob(os.path.join(os.path.dirname(model_path), "test_data_set_0", "input_*.pb")),
                    key=lambda p: int(os.path.basename(p)[6:-3]))
    if stored:
        feeds = {}
        for vi, pb in zip(graph_inputs, stored):
            t = onnx.TensorProto()
            with open(pb, "rb") as f:
                t.ParseFromString(f.read())
            feeds[vi.name] = numpy_helper.to_array(t)
        return feeds
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in graph_inputs:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise Skip(f"input {vi.name} is not a tensor")
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        dt = numpy_dtype(tt.elem_type)
        if np.issubdtype(dt, np.floating):
            feeds[vi.name] = rng.uniform(-1, 1, shape).astype(dt)
        elif dt == np.bool_:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(0, 10, shape).astype(dt)
    return feeds


def run_ort(path, feeds):
    s = session(path)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def same_outputs(got, want, what):
    if set(got) != set(want):
        raise AssertionError(f"{what}: outputs {sorted(got)} != {sorted(want)}")
    for k, w in want.items():
        g = got[k]
        if isinstance(w, list) or isinstance(g, list):  # sequence outputs
            if not isinstance(g, list) or not isinstance(w, list) or len(g) != len(w):
                raise AssertionError(f"{what}: output {k} is a sequence of another length or kind")
            for i, (gi, wi) in enumerate(zip(g, w)):
                same_outputs({f"{k}[{i}]": np.asarray(gi)}, {f"{k}[{i}]": np.asarray(wi)}, what)
            continue
        if g is None or w is None:  # empty optionals
            if (g is None) != (w is None):
                raise AssertionError(f"{what}: output {k} is empty on one side only")
            continue
        if g.shape != w.shape or g.dtype != w.dtype:
            raise AssertionError(f"{what}: output {k} is {g.dtype}{list(g.shape)}, original {w.dtype}{list(w.shape)}")
        if np.issubdtype(w.dtype, np.floating):
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True):
                raise AssertionError(f"{what}: output {k} max abs diff {np.nanmax(np.abs(g - w))}")
        elif not np.array_equal(g, w):
            raise AssertionError(f"{what}: output {k} differs")


def check_written(path, feeds, want, what, opset=None):
    onnx.checker.check_model(path, full_check=True)  # by path: external data is checked too
    m = onnx.load(path, load_external_data=False)
    if m.ir_version > MAX_IR:
        raise AssertionError(f"{what}: IR {m.ir_version} is newer than ONNX Runtime 1.31 loads")
    if m.producer_name != "dlkit":
        raise AssertionError(f"{what}: producer_name {m.producer_name!r}")
    if opset is not None:
        got = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
        if got != [opset]:
            raise AssertionError(f"{what}: opset imports {got}, asked for {opset}")
    same_outputs(run_ort(path, feeds), want, what)


def variants(opsets, external):
    """(label, extra dlconvert arguments, opset) of each ONNX written from the checkpoint."""
    v = [("plain", [], None)]
    if external:
        v.append(("external data", ["--external-data", "--external-threshold", str(EXTERNAL_THRESHOLD)], None))
    for n in opsets:
        v.append((f"opset {n}", ["--opset", str(n)], n))
        if external:
            v.append((f"opset {n} + external data", ["--opset", str(n), "--external-data", "--external-threshold", str(EXTERNAL_THRESHOLD)], n))
    return v


def roundtrip(model_path, bin_dir, opsets=(), external=True, tmp=None):
    """Yields (label, status, message) per variant; status is ok, fail, skip or blocked."""
    tmp = tmp or tempfile.mkdtemp(prefix="dlkit-roundtrip-")
    name = os.path.splitext(os.path.basename(model_path))[0]
    if os.path.basename(model_path) == "model.onnx":
        name = os.path.basename(os.path.dirname(model_path)) or name
    try:
        model = onnx.load(model_path)
        try:
            onnx.checker.check_model(model_path, full_check=True)
        except Exception as e:
            raise Skip(f"the original fails onnx.checker: {str(e).splitlines()[0][:160]}")
        feeds = inputs_for(model_path, model)
        want = run_ort(model_path, feeds)
    except Skip as e:
        yield (name, "skip", str(e))
        return
    except Exception as e:
        yield (name, "skip", f"ONNX Runtime cannot run the original: {str(e).splitlines()[0][:200]}")
        return
    ckpt = os.path.join(tmp, f"{name}.ckpt")
    rc, err = dlconvert(bin_dir, model_path, ckpt)
    if rc != 0:
        yield (name, "skip", f"dlconvert cannot read it: {err[:300]}")
        return
    for label, args, opset in variants(opsets, external):
        out_dir = os.path.join(tmp, f"{name}-{label.replace(' ', '_').replace('+', '')}")
        os.makedirs(out_dir, exist_ok=True)
        out = os.path.join(out_dir, f"{name}.onnx")
        what = f"{name} onnx -> ckpt -> onnx ({label})"
        rc, err = dlconvert(bin_dir, ckpt, out, *args)
        if rc != 0:
            if "cannot write opset" in err:
                yield (what, "blocked", err)
            else:
                yield (what, "fail", f"dlconvert exited {rc}: {err}")
            continue
        if "external" in label and not os.path.exists(out + ".data") and any(
                i.raw_data for i in model.graph.initializer):
            yield (what, "fail", "no .data file was written")
            continue
        try:
            check_written(out, feeds, want, what, opset)
            yield (what, "ok", "")
        except Exception as e:
            yield (what, "fail", str(e).splitlines()[0][:400])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="ONNX models or folders of them")
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"), help="folder with dlconvert")
    ap.add_argument("--opset", type=int, action="append", default=[], help="also write at this opset (repeatable)")
    ap.add_argument("--no-external", action="store_true", help="skip the external-data variants")
    ap.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    a = ap.parse_args()
    counts = {"ok": 0, "fail": 0, "skip": 0, "blocked": 0}
    tmp = tempfile.mkdtemp(prefix="dlkit-roundtrip-")
    for path in find_models(a.paths):
        for what, status, msg in roundtrip(path, os.path.abspath(a.bin), a.opset, not a.no_external, tmp):
            counts[status] += 1
            if status == "fail" or not a.quiet:
                print(f"{status:7} {what}{': ' + msg if msg else ''}")
    print(f"roundtrip: {counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped, {counts['blocked']} blocked")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
