#!/usr/bin/env python3
"""The ONNX Runtime side of scripts/bench: the same measurements as `dlconvert bench`.

    .venv/bin/python scripts/bench/ort_bench.py MODEL --batch N --threads T [--seconds S] [--cold]

Prints one JSON object. Random float32 inputs with every symbolic dim set to --batch; one
InferenceSession with intra_op_num_threads = T, inter_op_num_threads = 1, sequential execution,
all graph optimisations (ORT's default). --cold imports, builds the session, runs once and exits.
"""
import argparse
import json
import resource
import sys
import time

t_start = time.perf_counter()
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402


def peak_rss_mb():
    """VmHWM of this process (ru_maxrss would include the parent's peak from before exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t0 = time.perf_counter()
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else a.batch for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.uniform(-1, 1, shape).astype(np.float32)
        else:
            feeds[i.name] = np.zeros(shape, dtype=np.int64)
    t1 = time.perf_counter()
    sess.run(None, feeds)
    t2 = time.perf_counter()
    out = {"model": a.model, "batch": a.batch, "threads": a.threads,
           "import_ms": (t0 - t_start) * 1e3, "load_ms": (t1 - t0) * 1e3, "first_run_ms": (t2 - t1) * 1e3}
    if not a.cold:
        for _ in range(a.warmup):
            sess.run(None, feeds)
        times = []
        start = time.perf_counter()
        while len(times) < a.min_runs or time.perf_counter() - start < a.seconds:
            s = time.perf_counter()
            sess.run(None, feeds)
            times.append(time.perf_counter() - s)
        times.sort()
        med = times[len(times) // 2]
        out.update(runs=len(times), median_ms=med * 1e3, min_ms=times[0] * 1e3, throughput=a.batch / med)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
