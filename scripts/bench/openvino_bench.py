#!/usr/bin/env python3
"""OpenVINO IR models: DLKit's runtime on the IR against ONNX Runtime on the same graph and
against OpenVINO's CPU plugin, interleaved in one run.

    .venv/bin/python scripts/bench/openvino_bench.py [--seconds S] [--rounds R] [--models mlp,cnn,...] [--no-build]

1. Builds the benchmark models (scripts/bench/make_models.py) and the release dlconvert, as
   scripts/bench/run does.
2. Converts each ONNX model to IR with OpenVINO's own convert_model + save_model (fp32): the IR
   a user would have. `dlconvert M.xml M.dlkit.onnx` gives ORT the same graph DLKit runs.
3. Per model, thread count (1, 2) and batch (1, 32), R rounds each side, fresh processes:
   `dlconvert bench M.xml`, ort_bench.py on M.dlkit.onnx, and this script's --ov-worker mode
   (compile_model("CPU") with INFERENCE_NUM_THREADS = T and f32 inference precision, one
   synchronous infer request, the same warm-up and timing protocol). Best of R medians per side.
4. Writes scripts/bench/RESULTS-openvino.md (ratios: ours / ORT and ours / OpenVINO).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (scripts/bench/bench.py: build, run_json, best, fmt)

RESULTS = os.path.join(HERE, "RESULTS-openvino.md")
MODELS = ["mlp", "cnn", "transformer", "resnet", "lstm"]


def ov_worker(a):
    """One OpenVINO measurement, printed as the same JSON ort_bench.py prints."""
    t_start = time.perf_counter()
    import numpy as np
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(core.read_model(a.model), "CPU",
                                  {"INFERENCE_NUM_THREADS": str(a.threads), "INFERENCE_PRECISION_HINT": "f32",
                                   "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    feeds = []
    for p in compiled.inputs:
        shape = [d.get_length() if d.is_static else a.batch for d in p.get_partial_shape()]
        feeds.append(rng.uniform(-1, 1, shape).astype(np.float32))
    request.infer(feeds)
    for _ in range(3):
        request.infer(feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < a.seconds:
        s = time.perf_counter()
        request.infer(feeds)
        times.append(time.perf_counter() - s)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"median_ms": med * 1e3, "throughput": a.batch / med, "runs": len(times),
                      "load_ms": (time.perf_counter() - t_start) * 1e3}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ov-worker", metavar="MODEL")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.ov_worker:
        a.model = a.ov_worker
        return ov_worker(a)

    import openvino as ov
    started = time.time()
    if a.no_build:
        path = bench.sh(["swift", "build", "-c", "release", "--show-bin-path"], cwd=bench.ROOT,
                        capture_output=True, text=True).stdout.strip()
        tool = os.path.join(path, "dlconvert")
        if not all(os.path.exists(os.path.join(bench.BUILD, m + ".onnx")) for m in a.models.split(",") if m):
            bench.sh([bench.PY, os.path.join(HERE, "make_models.py"), bench.BUILD], stdout=bench.subprocess.DEVNULL)
    else:
        tool = bench.build()
    rows = []
    for name in [m for m in a.models.split(",") if m]:
        onnx_path = os.path.join(bench.BUILD, name + ".onnx")
        xml = os.path.join(bench.BUILD, name + ".ov.xml")
        ov.save_model(ov.convert_model(onnx_path), xml, compress_to_fp16=False)
        same_graph = os.path.join(bench.BUILD, name + ".dlkit.onnx")
        bench.sh([tool, xml, same_graph])
        for threads in (1, 2):
            for batch in (1, 32):
                ours, ort_, ov_ = [], [], []
                for _ in range(a.rounds):
                    ours.append(bench.run_json(bench.ours_cmd(tool, xml, batch, threads, a.seconds))[0])
                    ort_.append(bench.run_json(bench.ort_cmd(same_graph, batch, threads, a.seconds))[0])
                    ov_.append(bench.run_json([bench.PY, __file__, "--ov-worker", xml, "--batch", str(batch),
                                               "--threads", str(threads), "--seconds", str(a.seconds)])[0])
                o, t, v = bench.best(ours), bench.best(ort_), bench.best(ov_)
                rows.append((name, threads, batch, o, t, v))
                print(f"{name} t={threads} b={batch}: ours {o['median_ms']:.3f} ms, ORT {t['median_ms']:.3f} ms,"
                      f" OpenVINO {v['median_ms']:.3f} ms", file=sys.stderr)
    out = ["# OpenVINO IR models: DLKit vs ONNX Runtime vs OpenVINO CPU", "",
           f"Made by `scripts/bench/openvino_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
           f" ({os.cpu_count()} shared cores; {time.time() - started:.0f} s). openvino {ov.get_version()}.", "",
           "- IR: OpenVINO's convert_model + save_model(compress_to_fp16=False) of the scripts/bench ONNX models.",
           "- ours: `dlconvert bench M.xml`; ORT: the same graph (`dlconvert M.xml M.onnx`);"
           " OpenVINO: compile_model(\"CPU\"), INFERENCE_NUM_THREADS = T, f32 precision, latency hint.",
           f"- each side: fresh process, 3 warm-up runs, timed runs for {a.seconds} s; best of {a.rounds} medians.",
           "- ratio = ours / peer median latency: below 1.0 means we are faster.", "",
           "| model | threads | batch | ours ms | ORT ms | OpenVINO ms | ours/ORT | ours/OpenVINO |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, threads, batch, o, t, v in rows:
        out.append(f"| {name} | {threads} | {batch} | {o['median_ms']:.3f} | {t['median_ms']:.3f} | {v['median_ms']:.3f} |"
                   f" **{o['median_ms'] / t['median_ms']:.2f}** | **{o['median_ms'] / v['median_ms']:.2f}** |")
    text = "\n".join(out) + "\n"
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
