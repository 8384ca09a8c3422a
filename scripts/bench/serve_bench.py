#!/usr/bin/env python3
"""dlserve against a Python loop calling ONNX Runtime, side by side in one run.

    .venv/bin/python scripts/bench/serve_bench.py [--threads N] [--quick]

Builds the release dlserve, then for each case drives both servers with the same request stream
through a pipe (a writer thread feeds stdin, the main thread counts answer lines):
  - requests/s on the MLP 784-512-512-10 (fixtures/models/mlp.onnx) at batch 1 and batch 32, and
    on the CNN fixture at batch 1, timed from the first answer to the last (start-up excluded);
  - cold start: process start to the first answer line (median of 5);
  - resident memory (VmRSS of /proc/<pid>/status) after the first answer and after 100,000
    MLP batch-1 requests, with the largest value seen in between.
The Python loop is scripts/bench/ort_serve_loop.py (json.loads, numpy, InferenceSession.run with
the same intra-op thread count, the same answer encoding). Writes scripts/bench/RESULTS-serve.md
and prints it.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MLP = os.path.join(ROOT, "fixtures", "models", "mlp.onnx")
CNN = os.path.join(ROOT, "fixtures", "models", "cnn.onnx")
LOOP = os.path.join(ROOT, "scripts", "bench", "ort_serve_loop.py")
RESULTS = os.path.join(ROOT, "scripts", "bench", "RESULTS-serve.md")


def build():
    subprocess.run(["swift", "build", "-c", "release", "--product", "dlserve"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "dlserve")


def requests(shape, count, seed):
    """`count` distinct request lines with float32 data written in shortest form (as a client
    holding float32 values would), cycled by the drivers."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        x = rng.random(shape, dtype=np.float32)
        data = ",".join(x.ravel().astype(str))
        shape_text = ",".join(str(d) for d in shape)
        lines.append(('{"id":%d,"inputs":[{"name":"x","shape":[%s],"datatype":"FP32","data":[%s]}]}\n'
                      % (i, shape_text, data)).encode())
    return lines


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def drive(cmd, lines, total, watch_rss=False):
    """Feeds `total` requests (cycling `lines`) and reads every answer.
    Returns (seconds from start to first answer, seconds first -> last answer, rss samples, errors)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed():
        try:
            block, n = [], 0
            for i in range(total):
                block.append(lines[i % len(lines)])
                n += len(block[-1])
                if n > 1 << 20:
                    p.stdin.write(b"".join(block))
                    block, n = [], 0
            p.stdin.write(b"".join(block))
            p.stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    fd = p.stdout.fileno()
    seen, first, errors, rss = 0, None, 0, {}
    tail = b""
    next_sample = 0
    while seen < total:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter()
            if watch_rss:
                rss["start"] = rss_kib(p.pid)
        text = tail + chunk
        errors += text.count(b'"error"')
        cut = text.rfind(b"\n")
        tail = text[cut + 1:] if cut >= 0 else text
        seen += chunk.count(b"\n")
        if watch_rss and seen >= next_sample:
            r = rss_kib(p.pid)
            if r:
                rss["max"] = max(rss.get("max", 0), r)
            next_sample += 5000
    last = time.perf_counter()
    if watch_rss:
        rss["end"] = rss_kib(p.pid)
    p.stdout.close()
    p.wait()
    writer.join()
    if seen != total:
        raise SystemExit(f"{cmd[0]}: {seen} answers for {total} requests")
    return first - start, last - first, rss, errors


def memory_after_huge_input(cmd, small):
    """RSS when warm, then after a ~30 MB request and an 80 MiB line over the line limit, each
    followed by more small requests (memory should come back)."""
    big = requests((4000, 784), 1, 9)[0]
    huge = b'{"id":"huge","pad":"' + b"x" * (80 << 20) + b'"}\n'
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    fd = p.stdout.fileno()

    def ask(payload, n):
        p.stdin.write(payload)
        p.stdin.flush()
        got = 0
        while got < n:
            chunk = os.read(fd, 1 << 22)
            if not chunk:
                raise SystemExit(f"{cmd[0]} stopped answering")
            got += chunk.count(b"\n")

    block = b"".join(small[:8])
    for _ in range(300):
        ask(block, 8)
    warm = rss_kib(p.pid)
    ask(big, 1)
    for _ in range(300):
        ask(block, 8)
    after_big = rss_kib(p.pid)
    ask(huge, 1)
    for _ in range(300):
        ask(block, 8)
    after_huge = rss_kib(p.pid)
    p.stdin.close()
    p.wait()
    return warm, after_big, after_huge


def throughput(cmd, lines, total):
    _, span, _, errors = drive(cmd, lines, total)
    if errors:
        raise SystemExit(f"{' '.join(cmd)}: {errors} error answers")
    return (total - 1) / span


def cold_start(cmd, line, runs=5):
    times = []
    for _ in range(runs):
        t, _, _, _ = drive(cmd, [line], 1)
        times.append(t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    t = str(args.threads)
    dlserve = build()
    py = [sys.executable, LOOP]

    cases = [
        ("MLP 784-512-512-10, batch 1", MLP, requests((1, 784), 64, 1), 20000 // scale, 3.0),
        ("MLP 784-512-512-10, batch 32", MLP, requests((32, 784), 16, 2), 2000 // scale, 1.0),
        ("CNN fixture, batch 1", CNN, requests((1, 3, 32, 32), 32, 3), 5000 // scale, 1.0),
    ]
    rows = []
    for title, model, lines, n, target in cases:
        ours = throughput([dlserve, model, "--threads", t], lines, n)
        theirs = throughput(py + [model, t], lines, n)
        rows.append((title, n, ours, theirs, target))
        print(f"{title}: dlserve {ours:.0f}/s, python+ort {theirs:.0f}/s", file=sys.stderr)
    mlp1 = cases[0][2]
    batched = throughput([dlserve, MLP, "--threads", t, "--max-batch", "8"], mlp1, 20000 // scale)
    two_ours = throughput([dlserve, MLP, "--threads", "2"], mlp1, 20000 // scale)
    two_theirs = throughput(py + [MLP, "2"], mlp1, 20000 // scale)
    mem_ours = memory_after_huge_input([dlserve, MLP, "--threads", t], mlp1)
    mem_theirs = memory_after_huge_input(py + [MLP, t], mlp1)

    cold_ours = cold_start([dlserve, MLP, "--threads", t], mlp1[0])
    cold_theirs = cold_start(py + [MLP, t], mlp1[0])

    total = 100000 // scale
    _, span, rss, _ = drive([dlserve, MLP, "--threads", t], mlp1, total, watch_rss=True)
    _, pspan, prss, _ = drive(py + [MLP, t], mlp1, total, watch_rss=True)

    lines = []
    lines.append("# dlserve vs. a Python loop calling ONNX Runtime")
    lines.append("")
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
                 f"{args.threads} compute thread(s) each (dlserve `--threads {t}`, ORT intra-op {t}, inter-op 1). "
                 "Same request stream through a pipe (float32 values in shortest form), same answer encoding; "
                 "requests/s timed from first to last answer. Made by `scripts/bench/serve_bench.py`.")
    lines.append("")
    lines.append("| case | requests | dlserve req/s | Python+ORT req/s | ratio | target |")
    lines.append("|---|---:|---:|---:|---:|---|")
    for title, n, ours, theirs, target in rows:
        ok = "met" if ours / theirs >= target else "NOT met"
        lines.append(f"| {title} | {n} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | ≥ {target:g}x ({ok}) |")
    lines.append(f"| MLP batch 1, dlserve `--max-batch 8` | {20000 // scale} | {batched:,.0f} | {rows[0][3]:,.0f} | "
                 f"{batched / rows[0][3]:.2f}x | (extra) |")
    lines.append(f"| MLP batch 1, 2 threads each (dlserve `--threads 2`, ORT intra-op 2) | {20000 // scale} | {two_ours:,.0f} | "
                 f"{two_theirs:,.0f} | {two_ours / two_theirs:.2f}x | (extra) |")
    lines.append("")
    ok = "met" if cold_ours <= cold_theirs / 2 else "NOT met"
    lines.append("| cold start, process start to first answer (MLP, median of 5) | dlserve | Python+ORT | ratio | target |")
    lines.append("|---|---:|---:|---:|---|")
    lines.append(f"| | {cold_ours * 1000:.0f} ms | {cold_theirs * 1000:.0f} ms | {cold_ours / cold_theirs:.2f} | ≤ 0.5 ({ok}) |")
    lines.append("")
    lines.append(f"| resident memory over {total:,} MLP batch-1 requests | after first answer | after last | largest seen | end/start |")
    lines.append("|---|---:|---:|---:|---:|")
    for name, r, s in (("dlserve", rss, span), ("Python+ORT", prss, pspan)):
        growth = r["end"] / r["start"] if r.get("start") and r.get("end") else float("nan")
        lines.append(f"| {name} ({total / s:,.0f} req/s) | {r.get('start', 0) / 1024:.1f} MiB | {r.get('end', 0) / 1024:.1f} MiB | "
                     f"{r.get('max', 0) / 1024:.1f} MiB | {growth:.3f} |")
    lines.append("")
    lines.append("| memory after huge input (MLP) | warm | after a 30 MB request | after an 80 MiB line (over the limit) | end/warm |")
    lines.append("|---|---:|---:|---:|---:|")
    for name, (w, b, h) in (("dlserve", mem_ours), ("Python+ORT", mem_theirs)):
        lines.append(f"| {name} | {w / 1024:.1f} MiB | {b / 1024:.1f} MiB | {h / 1024:.1f} MiB | {h / w:.3f} |")
    text = "\n".join(lines) + "\n"
    if not args.quick:
        tmp = RESULTS + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, RESULTS)
    print(text)


if __name__ == "__main__":
    main()
