"""Checks DLKit's OpenVINO IR reading and writing against OpenVINO itself and ONNX Runtime.

Run by scripts/test with the built dlconvert:
    .venv/bin/python scripts/openvino_checks.py .build/debug

IR -> ONNX: every IR fixture (fixtures/openvino, fp32 and fp16-compressed) converted with
`dlconvert M.xml OUT.onnx` passes onnx.checker, and ONNX Runtime's run of OUT matches OpenVINO's
own run of M (rtol 1e-4).
X -> IR: ONNX models (our fixtures and the third-party-style ones in fixtures/models/real) and the
IR fixtures themselves, written with `dlconvert X OUT.xml` (and `--compress-to-fp16`), load in
`openvino.Core().read_model` + `compile_model("CPU")`, and OpenVINO's outputs match ONNX
Runtime's on X within rtol 1e-4 (fp16 weights: rtol 1e-2, the rounding of the weights).
Ends with "openvino-checks: N passed, N failed" and exits non-zero on any failure.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402  (check(): run one check, count it, keep going)
from checks import check  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug"))
IR_DIR = os.path.join(ROOT, "fixtures", "openvino")
STEMS = ["cnn", "ops", "yolo", "paddle", "opset", "nms", "convnet", "mlp2", "shapes", "lstm", "attention"]
ONNX_MODELS = ["models/mlp.onnx", "models/cnn.onnx", "models/ops.onnx", "models/real/yolo.onnx",
               "models/real/paddle.onnx", "models/real/encoder.onnx"]
CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
RTOL, ATOL = 1e-4, 1e-5

core = ov.Core()


def dlconvert(*args):
    r = subprocess.run([os.path.join(BIN, "dlconvert"), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dlconvert {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")


def close(got, want, what, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != {want.shape}")
    if not np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol):
        raise AssertionError(f"{what}: max abs diff {np.abs(got.astype(np.float64) - want).max()}")


def ov_run(path, inputs):
    """OpenVINO's CPU outputs, in the model's output order, for inputs in its input order."""
    compiled = core.compile_model(core.read_model(path), "CPU", CONFIG)
    result = compiled(inputs)
    return [result[o] for o in compiled.outputs]


def ort_session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def ir_inputs(stem):
    io = load_file(os.path.join(IR_DIR, f"{stem}.io.safetensors"))
    return [io[f"input.{i}"] for i in range(sum(k.startswith("input.") for k in io))]


def ir_to_onnx(tmp, stem, suffix):
    src = os.path.join(IR_DIR, f"{stem}{suffix}.xml")
    out = os.path.join(tmp, f"{stem}{suffix}.onnx")
    dlconvert(src, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    ins = ir_inputs(stem)
    sess = ort_session(out)
    got = sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), ins)})
    want = ov_run(src, ins)
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} outputs, OpenVINO has {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        close(g, w, f"output {i} ({sess.get_outputs()[i].name})")


def random_inputs(sess, seed):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 2 for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def onnx_to_ir(tmp, rel, compress):
    src = os.path.join(ROOT, "fixtures", rel)
    stem = os.path.basename(rel)[:-5] + (".fp16" if compress else "")
    out = os.path.join(tmp, f"{stem}.xml")
    dlconvert(src, out, *(["--compress-to-fp16"] if compress else []))
    sess = ort_session(src)
    feeds = random_inputs(sess, 7)
    want = sess.run(None, feeds)
    model = core.read_model(out)
    got = ov_run(out, [feeds[p.get_any_name()] for p in model.inputs])
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} outputs, ORT has {len(want)}")
    rtol, atol = (1e-2, 1e-3) if compress else (RTOL, ATOL)
    for i, (g, w) in enumerate(zip(got, want)):
        close(g, w, f"output {i}", rtol, atol)


def ir_round_trip(tmp, stem):
    """IR -> DLKit -> IR: OpenVINO runs what DLKit wrote like the original."""
    src = os.path.join(IR_DIR, f"{stem}.xml")
    out = os.path.join(tmp, f"{stem}.again.xml")
    dlconvert(src, out)
    ins = ir_inputs(stem)
    for i, (g, w) in enumerate(zip(ov_run(out, ins), ov_run(src, ins))):
        close(g, w, f"output {i}")


def main():
    tmp = tempfile.mkdtemp(prefix="dlkit-openvino-")
    start = time.time()
    for stem in STEMS:
        for suffix in ("", ".fp16"):
            check(f"IR -> ONNX {stem}{suffix}.xml: onnx.checker, ORT matches OpenVINO",
                  lambda stem=stem, suffix=suffix: ir_to_onnx(tmp, stem, suffix))
    for rel in ONNX_MODELS:
        for compress in (False, True):
            check(f"ONNX -> IR {rel}{' --compress-to-fp16' if compress else ''}: OpenVINO matches ORT",
                  lambda rel=rel, compress=compress: onnx_to_ir(tmp, rel, compress))
    for stem in STEMS:
        check(f"IR -> IR {stem}.xml: OpenVINO runs DLKit's IR like the original", lambda stem=stem: ir_round_trip(tmp, stem))
    return checks.summary("openvino-checks", f" ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
