#!/usr/bin/env python3
"""DLKit's runtime against ONNX Runtime on the benchmark models, interleaved in one run.

    scripts/bench/run [--seconds S] [--rounds R] [--models mlp,cnn,...] [--no-build]

1. Builds the models (scripts/bench/make_models.py) into scripts/bench/build/ (not committed).
2. Builds the release dlconvert.
3. For every model, thread count (1, 2) and batch (1, 32): runs `dlconvert bench` and
   scripts/bench/ort_bench.py one after the other, R rounds, each a fresh process timing
   session.run / Model.run for S seconds after warm-up. Per side the best of the R medians is kept
   (the machine is shared; the best median is the least disturbed one).
4. Cold start: process start to first result, both sides (`--cold`), median of 5, interleaved.
5. Writes scripts/bench/RESULTS.md (Markdown table, ratio = ours / ORT) and prints it.

The OpenBLAS core comes from openblas_get_corename() in our process; OPENBLAS_CORETYPE is left as
the environment sets it. The load average before and after is recorded: other processes share the
cores, so compare ratios within one run rather than absolute numbers across runs.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(HERE, "build")
RESULTS = os.path.join(HERE, "RESULTS.md")
PY = sys.executable
MODELS = ["mlp", "cnn", "transformer", "resnet", "lstm"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    sh([PY, os.path.join(HERE, "make_models.py"), BUILD], stdout=subprocess.DEVNULL)
    sh(["swift", "build", "-c", "release", "--product", "dlconvert"], cwd=ROOT, stdout=subprocess.DEVNULL)
    path = sh(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
              capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "dlconvert")


def ours_cmd(tool, model, batch, threads, seconds, cold=False):
    cmd = [tool, "bench", model, "--batch", str(batch), "--threads", str(threads), "--json",
           "--seconds", str(seconds)]
    return cmd + (["--cold"] if cold else [])


def ort_cmd(model, batch, threads, seconds, cold=False):
    cmd = [PY, os.path.join(HERE, "ort_bench.py"), model, "--batch", str(batch), "--threads", str(threads),
           "--seconds", str(seconds)]
    return cmd + (["--cold"] if cold else [])


def run_json(cmd):
    """Runs cmd; returns (its JSON line, wall seconds from start to that line)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    t1 = time.perf_counter()
    rest, err = p.communicate()
    if p.returncode != 0 or not line.strip():
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[-500:]}")
    return json.loads(line), t1 - t0


def check(tool, model, batch=2):
    """Largest |ours - ORT| over the first output for one random input, and ORT's largest |value|."""
    import numpy as np
    import onnxruntime as ort
    import tempfile
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    i = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else batch for d in i.shape]
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    want = sess.run(None, {i.name: x})[0]
    with tempfile.TemporaryDirectory() as d:
        xi, yo = os.path.join(d, "x.bin"), os.path.join(d, "y.bin")
        x.tofile(xi)
        sh([tool, "bench", model, "--batch", str(batch), "--cold", "--json", "--input-raw", xi, "--output-raw", yo],
           stdout=subprocess.DEVNULL)
        got = np.fromfile(yo, dtype=np.float32).reshape(want.shape)
    return float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))


def best(results):
    return min(results, key=lambda r: r["median_ms"])


def fmt(x, digits=3):
    return f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--cold-repeats", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-build", action="store_true", help="use the existing release build and models")
    a = ap.parse_args()
    started = time.time()
    load_before = os.getloadavg()
    if a.no_build:
        path = sh(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                  capture_output=True, text=True).stdout.strip()
        tool = os.path.join(path, "dlconvert")
    else:
        tool = build()
    models = [m for m in a.models.split(",") if m]
    import onnxruntime
    checks = {}
    for name in models:
        checks[name] = check(tool, os.path.join(BUILD, name + ".onnx"))
        print(f"{name}: max |ours - ORT| = {checks[name][0]:.2e} (max |y| {checks[name][1]:.2e})", file=sys.stderr)
    rows = []
    core = "?"
    for name in models:
        model = os.path.join(BUILD, name + ".onnx")
        for threads in (1, 2):
            for batch in (1, 32):
                ours, theirs = [], []
                for _ in range(a.rounds):
                    o, _ = run_json(ours_cmd(tool, model, batch, threads, a.seconds))
                    t, _ = run_json(ort_cmd(model, batch, threads, a.seconds))
                    ours.append(o)
                    theirs.append(t)
                core = ours[0].get("blas_core", core)
                o, t = best(ours), best(theirs)
                rows.append((name, threads, batch, o, t))
                print(f"{name} t={threads} b={batch}: ours {fmt(o['median_ms'])} ms, ORT {fmt(t['median_ms'])} ms,"
                      f" ratio {fmt(o['median_ms'] / t['median_ms'], 2)}", file=sys.stderr)
    cold = []
    for name in models:
        model = os.path.join(BUILD, name + ".onnx")
        oc, tc = [], []
        for _ in range(a.cold_repeats):
            oc.append(run_json(ours_cmd(tool, model, 1, 1, 0, cold=True))[1])
            tc.append(run_json(ort_cmd(model, 1, 1, 0, cold=True))[1])
        cold.append((name, statistics.median(oc) * 1e3, statistics.median(tc) * 1e3))
        print(f"{name} cold: ours {fmt(cold[-1][1], 1)} ms, ORT {fmt(cold[-1][2], 1)} ms", file=sys.stderr)
    load_after = os.getloadavg()

    out = ["# Runtime benchmark: DLKit vs ONNX Runtime", "",
           f"Made by `scripts/bench/run` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
           f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores;"
           f" {time.time() - started:.0f} s).", "",
           f"- OpenBLAS core (openblas_get_corename): **{core}**; OPENBLAS_CORETYPE="
           f"`{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}`",
           f"- onnxruntime {onnxruntime.__version__} (CPUExecutionProvider, intra-op threads = T, inter-op 1,"
           f" default graph optimisations)",
           f"- load average before {', '.join(f'{x:.2f}' for x in load_before)};"
           f" after {', '.join(f'{x:.2f}' for x in load_after)} (the 2 cores are shared with other work)",
           f"- each side: fresh process, 3 warm-up runs, timed runs for {a.seconds} s; best of {a.rounds}"
           f" interleaved medians. Peak RSS is the whole process (ORT's includes the Python interpreter and numpy).",
           "- ratio = ours / ORT median latency: below 1.0 means we are faster.", "",
           "| model | threads | batch | ours ms | ORT ms | ratio | ours items/s | ORT items/s | ours RSS MB | ORT RSS MB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, threads, batch, o, t in rows:
        out.append(f"| {name} | {threads} | {batch} | {fmt(o['median_ms'])} | {fmt(t['median_ms'])} |"
                   f" **{fmt(o['median_ms'] / t['median_ms'], 2)}** | {o['throughput']:.0f} | {t['throughput']:.0f} |"
                   f" {o['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} |")
    out += ["", "Cold start: process start to first result (load the model, run batch 1 once), median of"
            f" {a.cold_repeats}.", "",
            "| model | ours ms | ORT ms | ratio |", "|---|---:|---:|---:|"]
    for name, o, t in cold:
        out.append(f"| {name} | {o:.1f} | {t:.1f} | **{o / t:.2f}** |")
    out += ["", "Same answer: largest |ours − ORT| on the first output for one random batch-2 input.", "",
            "| model | max abs diff | max abs value |", "|---|---:|---:|"]
    for name in models:
        out.append(f"| {name} | {checks[name][0]:.2e} | {checks[name][1]:.2e} |")
    text = "\n".join(out) + "\n"
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
