#!/usr/bin/env python3
"""Per-request time of dlserve by transport, side by side in one run, against in-process Model.run.

    .venv/bin/python scripts/bench/serve_protocols_bench.py [--quick] [--json-baseline US,US]

Builds the release dlserve and dlserve-codec-bench, then for the MLP fixture (784-512-512-10) at
batch 1 and 32:
  - in process: `Model.run` timed inside Swift (dlserve-codec-bench --run), one compute thread,
    its runs taking turns with the pipelined binary ones (median of the runs' best rounds);
  - stdio, pipelined: N requests written through the pipe while answers are read (as a batch job
    would), time per answer from first to last; JSON and binary tensor data;
  - stdio and HTTP, one request at a time (send, wait for the answer, next), both with a thin
    client of our own: HTTP over one keep-alive connection on 127.0.0.1 (a raw socket, each
    request in one send). Both clients cost the same few microseconds, so the HTTP/stdio ratio is
    the server's transport cost, not a client's;
  - HTTP with tritonclient[http] (the client a user runs), one request at a time, against
    dlserve --http and against the FastAPI/uvicorn v2 server around ONNX Runtime
    (v2_fastapi_server.py): the same client for both, JSON and binary;
and the tensor JSON codec throughput (MB/s of JSON text printed and parsed). The load average is
recorded around every measurement: the machine is shared and the wall times move with it.
Prints a Markdown table and writes it to scripts/bench/RESULTS-serve-protocols.md (not with
--quick); `--json-baseline` adds a column with earlier pipelined-JSON times. `--before DLSERVE`
(a dlserve built from an earlier commit) adds a before/after table for the stdio binary rows,
measured in this run with the two builds' runs interleaved.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from dlserve_client import encode_request, read_answer  # noqa: E402

MLP = os.path.join(ROOT, "fixtures", "models", "mlp.onnx")
RESULTS = os.path.join(ROOT, "scripts", "bench", "RESULTS-serve-protocols.md")
FASTAPI_SERVER = os.path.join(ROOT, "scripts", "bench", "v2_fastapi_server.py")


def build():
    for product in ("dlserve", "dlserve-codec-bench"):
        subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    return os.path.join(path, "dlserve"), os.path.join(path, "dlserve-codec-bench")


def json_request(x):
    data = ",".join(x.ravel().astype(str))
    return ('{"inputs":[{"name":"x","shape":[%s],"datatype":"FP32","data":[%s]}]}'
            % (",".join(map(str, x.shape)), data)).encode()


def thread_cpu(pid):
    """CPU seconds (user + system) of each thread of process `pid`, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[tid] = (int(fields[11]) + int(fields[12])) / tick
    return times


def pipelined(dlserve, payloads, total, binary, model=MLP, cpu=None, rounds=None):
    """Microseconds per answer with `total` requests streamed through the pipe (written in 1 MB
    blocks by a thread; answers counted, not decoded, so the Python side stays light). With `cpu`
    (a list), appends the server's CPU microseconds per answer over the same span: all threads,
    and its busiest thread (the runner: what bounds the rate when the others have a core of
    their own). CPU time hardly moves with other load on the machine; wall time does. With
    `rounds` (a list), appends the microseconds per answer of the fastest fifth of the answers
    (the span cut in five by answer count), as `Model.run` in process is timed: its best of five
    rounds."""
    p = subprocess.Popen([dlserve, model], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed():
        block, n = [], 0
        for i in range(total):
            block.append(payloads[i % len(payloads)])
            n += len(block[-1])
            if n > 1 << 20:
                p.stdin.write(b"".join(block))
                block, n = [], 0
        p.stdin.write(b"".join(block))
        p.stdin.flush()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    fd = p.stdout.fileno()
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise SystemExit("dlserve stopped answering")
        data += chunk
    line = data[:data.index(b"\n") + 1]
    header = json.loads(line)
    if "error" in header:
        raise SystemExit(header["error"])
    start = time.perf_counter()
    cpu_start = thread_cpu(p.pid)
    # When each fifth of the answers after the first was complete.
    marks, fifth = [start], (total - 1) / 5
    if binary:
        # Every answer has the first one's size (same header, same output shape).
        size = len(line) + header["outputs"][0]["parameters"]["binary_data_size"]
        got = len(data)
        while got < total * size:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SystemExit("dlserve stopped answering")
            got += len(chunk)
            while len(marks) < 6 and got // size - 1 >= len(marks) * fifth:
                marks.append(time.perf_counter())
    else:
        seen = data.count(b"\n")
        while seen < total:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SystemExit("dlserve stopped answering")
            seen += chunk.count(b"\n")
            while len(marks) < 6 and seen - 1 >= len(marks) * fifth:
                marks.append(time.perf_counter())
    span = time.perf_counter() - start
    if rounds is not None and len(marks) == 6:
        rounds.append(min(b - a for a, b in zip(marks, marks[1:])) / fifth * 1e6)
    # Read before stdin closes (the server exits at the end of its input).
    cpu_end = thread_cpu(p.pid)
    feeder.join()
    p.stdin.close()
    p.wait()
    if cpu is not None:
        used = [cpu_end[t] - cpu_start.get(t, 0) for t in cpu_end]
        cpu.append((sum(used) / (total - 1) * 1e6, max(used) / (total - 1) * 1e6))
    return span / (total - 1) * 1e6


def sequential_stdio(dlserve, payloads, total):
    p = subprocess.Popen([dlserve, MLP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    times = []
    for i in range(total):
        t = time.perf_counter()
        p.stdin.write(payloads[i % len(payloads)])
        p.stdin.flush()
        read_answer(p.stdout)
        times.append(time.perf_counter() - t)
    p.stdin.close()
    p.wait()
    return np.median(times[len(times) // 10:]) * 1e6


def start_dlserve_http(dlserve):
    p = subprocess.Popen([dlserve, MLP, "--http", "0", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    while True:
        line = p.stderr.readline().decode()
        if not line:
            raise SystemExit("dlserve --http did not start")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))


def start_fastapi(python):
    """The FastAPI/uvicorn v2 server around ORT (v2_fastapi_server.py) on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([python, FASTAPI_SERVER, MLP, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                if c.recv(100).startswith(b"HTTP/1.1 200"):
                    return p, port
        except OSError:
            time.sleep(0.2)
    p.kill()
    raise SystemExit("the FastAPI server did not start")


def sequential_http(port, bodies, total):
    """Median microseconds per request, one at a time on one keep-alive connection, and the last
    answer's body."""
    # A raw keep-alive connection with each request in one send: http.client sends the headers and
    # the body in two sends, and Nagle's algorithm then holds the body back for milliseconds.
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for i in range(total):
        body, headers = bodies[i % len(bodies)]
        request = (b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % len(body)
                   + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items()) + b"\r\n" + body)
        t = time.perf_counter()
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(1 << 16)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            rest += conn.recv(1 << 16)
        times.append(time.perf_counter() - t)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"HTTP answer {head[:200]}: {rest[:200]}")
    conn.close()
    return np.median(times[len(times) // 10:]) * 1e6, (head, rest)


def answer_array(answer):
    """The first output of an HTTP infer answer (JSON or binary) as an array."""
    head, body = answer
    m = re.search(rb"(?i)inference-header-content-length: *(\d+)", head)
    split = int(m.group(1)) if m else len(body)
    out = json.loads(body[:split])["outputs"][0]
    if "data" in out:
        return np.asarray(out["data"], np.float32).reshape(out["shape"])
    return np.frombuffer(body[split:], np.float32).reshape(out["shape"])


def sequential_tritonclient(port, xs, total, binary):
    """Median microseconds per request through tritonclient[http] (one request at a time, the
    client's own keep-alive connection), and the last answer."""
    import tritonclient.http as triton
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    times = []
    for i in range(total):
        x = xs[i % len(xs)]
        t = time.perf_counter()
        inp = triton.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        result = client.infer("mlp", [inp], outputs=[triton.InferRequestedOutput("y", binary_data=binary)])
        y = result.as_numpy("y")
        times.append(time.perf_counter() - t)
    client.close()
    return np.median(times[len(times) // 10:]) * 1e6, y


def http_pair(start, xs, total):
    """Against one server, stopped afterwards: tritonclient JSON and binary medians, and their
    answers to the last request."""
    p, port = start()
    try:
        t_json, a_json = sequential_tritonclient(port, xs, total, binary=False)
        t_bin, a_bin = sequential_tritonclient(port, xs, total, binary=True)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
    return t_json, t_bin, a_json, a_bin


def own_client_http(dlserve, bodies_json, bodies_bin, total):
    """JSON and binary medians of dlserve --http with the raw-socket client, and the two answers to
    the last request."""
    p, port = start_dlserve_http(dlserve)
    try:
        t_json, a_json = sequential_http(port, bodies_json, total)
        t_bin, a_bin = sequential_http(port, bodies_bin, total)
        return t_json, t_bin, answer_array(a_json), answer_array(a_bin)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()


def spread(f, repeats):
    """Median, lowest and highest of `repeats` calls of f (pipelined runs move with machine load)."""
    return interleaved([f], repeats)[0]


def interleaved(fs, repeats):
    """`spread` of each of fs, their calls taking turns so that the load changes hit all alike."""
    values = [[] for _ in fs]
    for _ in range(repeats):
        for v, f in zip(values, fs):
            v.append(f())
    return [(sorted(v)[len(v) // 2], min(v), max(v)) for v in values]


def versus_model_run(bench, model, rows, n, payloads, dlserve, before, repeats):
    """In-process `Model.run` against pipelined stdio binary (this build, and `before` if given),
    their runs taking turns so each ratio's two sides saw the same load. Wall: median of the
    runs (in process: each run's best round); CPU: medians of the CPU per run or answer."""
    cpus = [[] for _ in range(3)]
    fifths = [[] for _ in range(3)]

    def in_process():
        wall, used = map(float, subprocess.run([bench, "--run", model, str(rows), str(n)], check=True,
                                               capture_output=True, text=True).stdout.split())
        cpus[0].append(used)
        return wall

    fs = [in_process, lambda: pipelined(dlserve, payloads, n, True, model, cpus[1], fifths[1])]
    if before:
        fs.append(lambda: pipelined(before, payloads, n, True, model, cpus[2], fifths[2]))
    load_before = load()
    measured = interleaved(fs, repeats)

    def median(values):
        return sorted(values)[len(values) // 2]
    result = {"in_process": measured[0][0], "in_process_cpu": median(cpus[0]), "after": measured[1],
              "after_fifth": median(fifths[1]),
              "after_cpu": median([c[0] for c in cpus[1]]), "after_busiest": median([c[1] for c in cpus[1]]),
              "load": f"{load_before:.1f}-{load():.1f}"}
    if before:
        result.update(before=measured[2], before_fifth=median(fifths[2]), before_cpu=median([c[0] for c in cpus[2]]),
                      before_busiest=median([c[1] for c in cpus[2]]))
    return result


def other_models(bench, dlserve, before, names, repeats):
    """`versus_model_run` for more of the bench models (scripts/bench/make_models.py, built into
    scripts/bench/build), batch 1 and 32, each run about a second."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_models
    rows = []
    rng = np.random.default_rng(11)
    build_dir = os.path.join(ROOT, "scripts", "bench", "build")
    os.makedirs(build_dir, exist_ok=True)
    for name in names:
        model = make_models.export(name, build_dir)
        shape = make_models.MODELS[name][1]
        for batch in (1, 32):
            once = float(subprocess.run([bench, "--run", model, str(batch), "50"], check=True,
                                        capture_output=True, text=True).stdout.split()[0])
            n = max(100, int(1e6 / once))
            xs = [rng.standard_normal((batch,) + tuple(shape[1:])).astype(np.float32) for _ in range(8)]
            payloads = [encode_request({"x": x}, ["y"]) for x in xs]
            r = versus_model_run(bench, model, batch, n, payloads, dlserve, before, repeats)
            r.update(model=name, rows=batch, requests=n)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    return rows


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def load():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json-baseline", help="earlier pipelined JSON us/request at batch 1,32 (for a before/after column)")
    ap.add_argument("--fastapi-python", default=sys.executable,
                    help="a Python with fastapi and uvicorn for the comparison server (default: this one)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each pipelined measurement (median, lowest, highest)")
    ap.add_argument("--models", default="cnn,transformer",
                    help="more bench models (scripts/bench/make_models.py) for the pipelined stdio binary table; '' for none")
    ap.add_argument("--before", help="a dlserve from an earlier commit: adds a before/after table of the stdio binary rows")
    args = ap.parse_args()
    fastapi = subprocess.run([args.fastapi_python, "-c", "import fastapi, uvicorn"], capture_output=True).returncode == 0
    if not fastapi:
        print(f"{args.fastapi_python} has no fastapi/uvicorn: the FastAPI comparison is left out", file=sys.stderr)
    scale = 10 if args.quick else 1
    dlserve, bench = build()
    codec = subprocess.run([bench], check=True, capture_output=True, text=True).stdout
    blas_core = subprocess.run([bench, "--blas-core"], check=True, capture_output=True, text=True).stdout.strip()
    baseline = [float(v) for v in args.json_baseline.split(",")] if args.json_baseline else None

    rng = np.random.default_rng(5)
    rows_out = []
    for bi, rows in enumerate((1, 32)):
        n = (20000 if rows == 1 else 3000) // scale
        xs = [rng.random((rows, 784), dtype=np.float32) for _ in range(16)]
        jsonl = [json_request(x) + b"\n" for x in xs]
        binary = [encode_request({"x": x}, ["y"]) for x in xs]
        bodies_json = [(json_request(x), {}) for x in xs]
        bodies_bin = []
        for x in xs:
            raw = encode_request({"x": x}, ["y"])
            header, _, blob = raw.partition(b"\n")
            bodies_bin.append((header + blob, {"Inference-Header-Content-Length": str(len(header))}))
        row = {"rows": rows, "load_before": load()}
        row["pipe_json"] = spread(lambda: pipelined(dlserve, jsonl, n, binary=False), args.repeats)
        versus = versus_model_run(bench, MLP, rows, n, binary, dlserve, args.before, args.repeats)
        row["versus"] = versus
        row["in_process"] = versus["in_process"]
        row["pipe_binary"] = versus["after"]
        if args.before:
            row["pipe_binary_before"] = versus["before"]
        row["load_pipelined"] = load()
        row["seq_stdio_json"] = sequential_stdio(dlserve, jsonl, n // 4)
        row["seq_stdio_binary"] = sequential_stdio(dlserve, binary, n // 4)
        if args.before:
            row["seq_stdio_binary_before"] = sequential_stdio(args.before, binary, n // 4)
        own = own_client_http(dlserve, bodies_json, bodies_bin, n // 4 // 16 * 16)
        row["seq_http_json"], row["seq_http_binary"] = own[:2]
        row["load_sequential"] = load()
        # tritonclient costs milliseconds per JSON batch of its own: half as many requests (both
        # counts multiples of 16, so every client's last request is the same input).
        triton_total = n // 4 // 32 * 16
        ours = http_pair(lambda: start_dlserve_http(dlserve), xs, triton_total)
        row["triton_json"], row["triton_binary"] = ours[:2]
        answers = [own[2:], ours[2:]]
        if fastapi:
            theirs = http_pair(lambda: start_fastapi(args.fastapi_python), xs, triton_total)
            row["fastapi_json"], row["fastapi_binary"] = theirs[:2]
            answers.append(theirs[2:])
        # Every client and server must give the same answer to the last request (16 kinds, cycled).
        first = answers[0][0]
        if not all(np.allclose(first, a, rtol=1e-4, atol=1e-5) for pair in answers for a in pair):
            raise SystemExit("the servers or clients answer the same request differently")
        row["load_after"] = load()
        row["baseline"] = baseline[bi] if baseline else None
        rows_out.append(row)
        print(json.dumps(row), file=sys.stderr)

    names = [m for m in args.models.split(",") if m]
    extra = other_models(bench, dlserve, args.before, names, args.repeats) if names else []

    def loads(r, *keys):
        return "-".join(f"{r[k]:.1f}" for k in keys)

    out = ["# dlserve per-request time by transport (MLP 784-512-512-10)", "",
           f"Release build, one compute thread, {os.cpu_count()} cores ({cpu_name()}), OpenBLAS core "
           f"{blas_core}; microseconds per request. Made by `scripts/bench/serve_protocols_bench.py` on "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The machine is shared: the 1-minute load "
           "average is given for each measurement.", "",
           f"Requests streamed through the pipe (pipelined), median of {args.repeats} runs with the lowest "
           "and highest in brackets:", "",
           "| batch | in-process Model.run | stdio binary, pipelined | ratio to Model.run | stdio JSON, pipelined | load |"
           + (" JSON before | JSON speed-up |" if baseline else ""),
           "|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if baseline else "")]
    for r in rows_out:
        (pb, pb_lo, pb_hi), (pj, pj_lo, pj_hi) = r["pipe_binary"], r["pipe_json"]
        line = (f"| {r['rows']} | {r['in_process']:.1f} | {pb:.1f} ({pb_lo:.1f}-{pb_hi:.1f}) | "
                f"{pb / r['in_process']:.2f}x ({pb_lo / r['in_process']:.2f}-{pb_hi / r['in_process']:.2f}) | "
                f"{pj:.1f} ({pj_lo:.1f}-{pj_hi:.1f}) | {loads(r, 'load_before', 'load_pipelined')} |")
        if baseline:
            line += f" {r['baseline']:.1f} | {r['baseline'] / pj:.2f}x |"
        out.append(line)
    table = [dict(r["versus"], model="mlp", rows=r["rows"], requests=(20000 if r["rows"] == 1 else 3000) // scale)
             for r in rows_out] + extra
    before = bool(args.before)
    out += ["", "Stdio binary, pipelined, against `Model.run` in process for the bench models "
            "(`scripts/bench/make_models.py`; mlp is the fixture above), their runs taking turns"
            + (f" with those of an earlier build (before: `{args.before}`)" if before else "")
            + f": wall time per request (median of {args.repeats}, lowest-highest) and its ratio; the pipelined time of the "
            "fastest fifth of the answers (median over the runs) and its ratio, as `Model.run` is timed (the fastest of "
            "five rounds); then CPU time per request, "
            "which load from other processes hardly moves: all of dlserve's threads, and its busiest thread (the "
            "runner: with a core of its own, the rate it allows is the pipelined time on an idle machine) over "
            "`Model.run`'s CPU time:", ""]
    if before:
        out += ["| model | batch | requests | Model.run | pipelined before | after | ratio before | after "
                "| Model.run CPU | CPU before: all, busiest | after | busiest/Model.run before | after | load |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        out += ["| model | batch | requests | Model.run | pipelined | ratio | fastest fifth | ratio | Model.run CPU "
                "| CPU: all, busiest | busiest/Model.run | load |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        m, mc = r["in_process"], r["in_process_cpu"]
        (a, a_lo, a_hi) = r["after"]
        line = f"| {r['model']} | {r['rows']} | {r['requests']} | {m:.1f} | "
        if before:
            b, b_lo, b_hi = r["before"]
            line += (f"{b:.1f} ({b_lo:.1f}-{b_hi:.1f}) | {a:.1f} ({a_lo:.1f}-{a_hi:.1f}) | {b / m:.2f}x | {a / m:.2f}x | "
                     f"{mc:.1f} | {r['before_cpu']:.1f}, {r['before_busiest']:.1f} | {r['after_cpu']:.1f}, "
                     f"{r['after_busiest']:.1f} | {r['before_busiest'] / mc:.2f}x | {r['after_busiest'] / mc:.2f}x | {r['load']} |")
        else:
            line += (f"{a:.1f} ({a_lo:.1f}-{a_hi:.1f}) | {a / m:.2f}x | {r['after_fifth']:.1f} | {r['after_fifth'] / m:.2f}x | "
                     f"{mc:.1f} | {r['after_cpu']:.1f}, "
                     f"{r['after_busiest']:.1f} | {r['after_busiest'] / mc:.2f}x | {r['load']} |")
        out.append(line)
    if before:
        out += ["", "One request at a time through the pipe (send, wait for the answer), stdio binary, MLP, median:", "",
                "| batch | before | after |", "|---:|---:|---:|"]
        for r in rows_out:
            out.append(f"| {r['rows']} | {r['seq_stdio_binary_before']:.1f} | {r['seq_stdio_binary']:.1f} |")
    out += ["", "One request at a time (send, wait for the answer), median, with a thin client of our own for "
            "both transports (a pipe; a raw keep-alive socket), so the ratio is the server's:", "",
            "| batch | stdio binary | HTTP binary | HTTP/stdio | stdio JSON | HTTP JSON | HTTP/stdio | load |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows_out:
        out.append(f"| {r['rows']} | {r['seq_stdio_binary']:.1f} | {r['seq_http_binary']:.1f} | "
                   f"{r['seq_http_binary'] / r['seq_stdio_binary']:.2f}x | {r['seq_stdio_json']:.1f} | "
                   f"{r['seq_http_json']:.1f} | {r['seq_http_json'] / r['seq_stdio_json']:.2f}x | "
                   f"{loads(r, 'load_pipelined', 'load_sequential')} |")
    out += ["", "Over HTTP with tritonclient[http] 2.73 (the client a user runs; its own encoding and decoding "
            "included), one request at a time, median"
            + (", against a Python v2 server (FastAPI on uvicorn around ONNX Runtime, one thread, "
               "`scripts/bench/v2_fastapi_server.py`); ratio below 1: dlserve is faster:" if fastapi else ":"), ""]
    if fastapi:
        out += ["| batch | FastAPI+ORT JSON | dlserve JSON | ratio | FastAPI+ORT binary | dlserve binary | ratio | load |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows_out:
            out.append(f"| {r['rows']} | {r['fastapi_json']:.1f} | {r['triton_json']:.1f} | "
                       f"{r['triton_json'] / r['fastapi_json']:.2f}x | {r['fastapi_binary']:.1f} | "
                       f"{r['triton_binary']:.1f} | {r['triton_binary'] / r['fastapi_binary']:.2f}x | "
                       f"{loads(r, 'load_sequential', 'load_after')} |")
    else:
        out += ["| batch | dlserve JSON | dlserve binary | load |", "|---:|---:|---:|---:|"]
        for r in rows_out:
            out.append(f"| {r['rows']} | {r['triton_json']:.1f} | {r['triton_binary']:.1f} | "
                       f"{loads(r, 'load_sequential', 'load_after')} |")
    out += ["", "```", codec.strip(), "```"]
    text = "\n".join(out) + "\n"
    if not args.quick:
        with open(RESULTS, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
