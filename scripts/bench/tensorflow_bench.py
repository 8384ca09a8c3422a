#!/usr/bin/env python3
"""DLKit against TensorFlow 2.21 on TensorFlow files, side by side, as ratios.

    .venv/bin/python scripts/bench/tensorflow_bench.py [--dlconvert .build/release/dlconvert]

Builds a Keras 3 MobileNetV2 (random weights, 224x224) and exports it as a SavedModel into
scripts/bench/build/tf_mobilenet (not committed), then times, best of 3 fresh processes each:
  variables   `dlconvert SMDIR out.safetensors` vs tf.train.load_checkpoint + every get_tensor +
              safetensors save_file (process start to file written, both sides)
  to ONNX     `dlconvert SMDIR out.onnx` (TensorFlow has no counterpart; tf2onnx is not installed)
  inference   `dlconvert bench SMDIR` (1 thread, batch 1, median latency) vs the serving
              signature called in TensorFlow with intra/inter-op threads 1 (median latency)
Writes scripts/bench/RESULTS-tensorflow.md. The machine is shared: compare the ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(HERE, "build")
SM = os.path.join(BUILD, "tf_mobilenet")
RESULTS = os.path.join(HERE, "RESULTS-tensorflow.md")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def make_model():
    if os.path.exists(os.path.join(SM, "saved_model.pb")):
        return
    code = f"""
import keras
m = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
m.export({SM!r}, verbose=False)
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


TF_VARIABLES = """
import sys, tensorflow as tf, numpy as np
from safetensors.numpy import save_file
r = tf.train.load_checkpoint(sys.argv[1])
out = {k: np.ascontiguousarray(r.get_tensor(k)) for k, d in r.get_variable_to_dtype_map().items() if d != tf.string}
save_file(out, sys.argv[2])
"""

TF_INFERENCE = """
import sys, time, statistics, json, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
f = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
name = list(f.structured_input_signature[1])[0]
x = tf.constant(np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32))
for _ in range(5): f(**{name: x})
times = []
end = time.perf_counter() + float(sys.argv[2])
while time.perf_counter() < end or len(times) < 20:
    t = time.perf_counter(); f(**{name: x}); times.append(time.perf_counter() - t)
print(json.dumps({"median_ms": statistics.median(times) * 1e3}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dlconvert", default=os.path.join(ROOT, ".build", "release", "dlconvert"))
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    os.makedirs(BUILD, exist_ok=True)
    make_model()
    out = os.path.join(BUILD, "tf_out")
    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(SM, "variables", "variables")
    rows = []

    ours = min(timed([args.dlconvert, SM, os.path.join(out, "v.safetensors")]) for _ in range(3))
    theirs = min(timed([sys.executable, "-c", TF_VARIABLES, prefix, os.path.join(out, "tf.safetensors")]) for _ in range(3))
    rows.append(("variables -> safetensors (process, s)", ours, theirs))

    onnx = min(timed([args.dlconvert, SM, os.path.join(out, "m.onnx")]) for _ in range(3))
    rows.append(("SavedModel -> ONNX (process, s)", onnx, None))

    bench = subprocess.run([args.dlconvert, "bench", SM, "--seconds", str(args.seconds), "--json"], check=True,
                           env=ENV, capture_output=True, text=True)
    ours_ms = float(json.loads(bench.stdout)["median_ms"])
    tf_run = subprocess.run([sys.executable, "-c", TF_INFERENCE, SM, str(args.seconds)], check=True, env=ENV,
                            capture_output=True, text=True)
    tf_ms = json.loads(tf_run.stdout.strip().splitlines()[-1])["median_ms"]
    rows.append(("MobileNetV2 inference, batch 1, 1 thread (median ms)", ours_ms, tf_ms))

    lines = ["# DLKit vs TensorFlow 2.21 on TensorFlow files", "",
             f"`scripts/bench/tensorflow_bench.py`, load average {os.getloadavg()[0]:.1f} (shared machine: compare ratios).", "",
             "| measure | DLKit | TensorFlow | ratio (ours / TF) |", "|---|---|---|---|"]
    for name, a, b in rows:
        lines.append(f"| {name} | {a:.3f} | {'' if b is None else f'{b:.3f}'} | {'' if b is None else f'{a / b:.2f}'} |")
    text = "\n".join(lines) + "\n"
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
