#!/usr/bin/env python3
"""DLKit against tf.lite.Interpreter on .tflite files: median latency, ratio = ours / TFLite.

    .venv/bin/python scripts/bench/tflite_bench.py [--tool PATH] [--threads 1] [--seconds 2] [FILE.tflite...]

Without files: Keras's MobileNetV2 (224x224, random weights, float32) converted by
TFLiteConverter into scripts/bench/build/mobilenet_v2.tflite (not committed), and the fixtures;
with `--int8` the same network converted full-integer (mobilenet_v2.int8.tflite) and the int8
fixtures.

`--tool` is a release `dlconvert` (default: `swift build -c release --show-bin-path`/dlconvert,
built first). TFLite runs with its default delegate (XNNPACK) and the same thread count, on
random inputs of the model's signature, warmed up, each model in this one process.
Prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tflite_median_ms(path, threads, seconds):
    """The interpreter's median time per run on random inputs: through the serving_default
    signature, or (files without one, as MediaPipe's) setting the inputs and invoking."""
    interp = tf.lite.Interpreter(model_path=path, num_threads=threads)
    rng = np.random.default_rng(0)

    def value(d):
        v = rng.standard_normal(d["shape"]).astype(np.float32)
        return v if d["dtype"] == np.float32 else np.clip(np.round(v * 20), -128, 127).astype(d["dtype"])
    if "serving_default" in interp.get_signature_list():
        runner = interp.get_signature_runner("serving_default")
        feeds = {name: value(d) for name, d in runner.get_input_details().items()}

        def once():
            runner(**feeds)
    else:
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], value(d))
        once = interp.invoke
    for _ in range(10):
        once()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t = time.perf_counter()
        once()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def mobilenet_v2():
    out = os.path.join(ROOT, "scripts", "bench", "build", "mobilenet_v2.tflite")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        with open(out, "wb") as f:
            f.write(data)
    return out


def mobilenet_v2_int8():
    """MobileNetV2 (224x224, random weights) converted full-integer: int8 weights, activations,
    input and output, calibrated on 8 random images."""
    out = os.path.join(ROOT, "scripts", "bench", "build", "mobilenet_v2.int8.tflite")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
        rng = np.random.default_rng(0)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)] for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        data = conv.convert()
        with open(out, "wb") as f:
            f.write(data)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--tool")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--int8", action="store_true", help="the full-integer models: MobileNetV2 int8 and the int8 fixtures")
    ap.add_argument("--before", help="another dlconvert (say, main's) timed in the same run, for a before/after column")
    a = ap.parse_args()
    kind = "int8" if a.int8 else "float"
    first = mobilenet_v2_int8() if a.int8 else mobilenet_v2()
    files = a.files or [first] + [os.path.join(ROOT, "fixtures", "tflite", f"{m}.{kind}.tflite") for m in ("mobilenet", "cnn")]
    tool = a.tool
    if not tool:
        subprocess.run(["swift", "build", "-c", "release", "--product", "dlconvert"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        tool = os.path.join(path, "dlconvert")
    def ours_ms(t, f):
        out = subprocess.run([t, "bench", f, "--threads", str(a.threads), "--seconds", str(a.seconds), "--json"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["median_ms"]

    if a.before:
        print(f"| model | threads | before ms | DLKit ms | tf.lite ms | before ratio | ratio |\n|---|---|---|---|---|---|---|")
    else:
        print(f"| model | threads | DLKit ms | tf.lite ms | ratio |\n|---|---|---|---|---|")
    for f in files:
        before = ours_ms(a.before, f) if a.before else None
        ours = ours_ms(tool, f)
        theirs = tflite_median_ms(f, a.threads, a.seconds)
        name = os.path.basename(f)
        if before is None:
            print(f"| {name} | {a.threads} | {ours:.4f} | {theirs:.4f} | {ours / theirs:.2f} |")
        else:
            print(f"| {name} | {a.threads} | {before:.4f} | {ours:.4f} | {theirs:.4f} | {before / theirs:.2f} | {ours / theirs:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
