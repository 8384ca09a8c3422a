"""Checks dlserve with real clients: the stdio binary client (scripts/dlserve_client.py) and
tritonclient[http] against `dlserve --http`, with ONNX Runtime as the reference.

Run by scripts/test after the Swift tests, with the built dlserve:
    .venv/bin/python scripts/serve_checks.py .build/debug
Every server is bound to 127.0.0.1 on a free port and stopped by the check that started it.
Ends with the line "serve-checks: N passed, N failed" and exits non-zero on any failure.
"""
import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from checks import check  # noqa: E402
import checks  # noqa: E402
from dlserve_client import DLServe, ServeError, encode_request, read_answer  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug"))
DLSERVE = os.path.join(BIN, "dlserve")
MLP = os.path.join(ROOT, "fixtures", "models", "mlp.onnx")
DTYPES = os.path.join(ROOT, "fixtures", "models", "serve", "dtypes.onnx")


def every_dtype_arrays(rows=3):
    """One array per input of the dtypes fixture (Identity per datatype), edge values included."""
    rng = np.random.default_rng(7)
    arrays = {}
    for name, dt in [("bool", np.bool_), ("uint8", np.uint8), ("uint16", np.uint16), ("uint32", np.uint32),
                     ("uint64", np.uint64), ("int8", np.int8), ("int16", np.int16), ("int32", np.int32),
                     ("int64", np.int64), ("fp16", np.float16), ("fp32", np.float32), ("fp64", np.float64)]:
        if dt == np.bool_:
            a = rng.integers(0, 2, (rows, 2)).astype(np.bool_)
        elif np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, (rows, 2), dtype=dt, endpoint=True)
            a[0] = [info.min, info.max]
        else:
            a = rng.standard_normal((rows, 2)).astype(dt)
            a[0] = [np.finfo(dt).max, np.finfo(dt).tiny]
        arrays[name] = a
    return arrays


def mlp_reference(x):
    session = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def stdio_binary_mlp():
    rng = np.random.default_rng(1)
    with DLServe([DLSERVE, MLP]) as server:
        for rows in (1, 32):
            x = rng.random((rows, 784), dtype=np.float32)
            y = server.infer({"x": x})["y"]
            want = mlp_reference(x)
            assert y.dtype == np.float32 and y.shape == want.shape, (y.dtype, y.shape)
            assert np.allclose(y, want, rtol=1e-5, atol=1e-6), np.abs(y - want).max()


def stdio_binary_every_dtype():
    arrays = every_dtype_arrays()
    with DLServe([DLSERVE, DTYPES]) as server:
        got = server.infer(arrays)
        for name, a in arrays.items():
            out = got[name + "_out"]
            assert out.dtype == a.dtype and np.array_equal(out, a), (name, out, a)
        # JSON outputs for some, binary for the others, in the order asked.
        got = server.infer(arrays, outputs=["fp16_out", "int64_out"])
        assert list(got) == ["fp16_out", "int64_out"]
        try:
            server.infer({"fp32": arrays["fp32"]})
            raise AssertionError("a request missing inputs was answered")
        except ServeError as e:
            assert "bool" in str(e), e
        # The stream is still in step after the error.
        assert np.array_equal(server.infer(arrays)["uint64_out"], arrays["uint64"])


def stdio_binary_burst_without_eof():
    """Requests written back to back with the input left open (a client that pipelines and waits):
    every answer arrives, in order, without the end of input to flush them; then one request sent
    alone (the server idle, the client waiting) is answered too. The Identity model runs in
    microseconds, so the server groups answers while runs follow each other and must still write
    the last of a burst at once."""
    import queue
    arrays = every_dtype_arrays(rows=1)
    count = 300
    process = subprocess.Popen([DLSERVE, DTYPES], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    arrived = queue.Queue()

    def read_all():
        try:
            while True:
                arrived.put(read_answer(process.stdout))
        except Exception as e:  # the end of the output, or an unreadable answer (then the check fails)
            arrived.put(e)
    threading.Thread(target=read_all, daemon=True).start()
    try:
        def answers(n, deadline):
            got = []
            while len(got) < n:
                try:
                    a = arrived.get(timeout=max(0.0, deadline - time.time()))
                except queue.Empty:
                    raise AssertionError(f"{len(got)} of {n} answers within the time allowed, the input still open")
                assert not isinstance(a, Exception), a
                got.append(a)
            return got
        for burst in range(2):
            writer = threading.Thread(target=lambda: (process.stdin.write(b"".join(
                encode_request(arrays, request_id=f"{burst}-{i}") for i in range(count))), process.stdin.flush()))
            writer.start()
            got = answers(count, time.time() + 60)
            writer.join()
            assert [a["id"] for a, _ in got] == [f"{burst}-{i}" for i in range(count)], "answers out of order"
            for _, outs in got:
                assert all(np.array_equal(outs[k + "_out"], a) for k, a in arrays.items())
            process.stdin.write(encode_request(arrays, request_id="alone"))
            process.stdin.flush()
            (answer, outs), = answers(1, time.time() + 30)
            assert answer["id"] == "alone" and np.array_equal(outs["fp64_out"], arrays["fp64"])
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


class HTTPServer:
    """`dlserve --http 0 --host 127.0.0.1`: the port is read from its log; stopped with SIGTERM."""

    def __init__(self, models, *extra):
        self.process = subprocess.Popen([DLSERVE, *models, "--http", "0", "--host", "127.0.0.1", *extra],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.process.stderr.readline().decode()
            if not line:
                raise RuntimeError("dlserve exited: " + "".join(self.log))
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("dlserve did not start listening")
        self.url = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._drain_log, daemon=True).start()

    def _drain_log(self):
        for line in self.process.stderr:
            self.log.append(line.decode())

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def raw(port, method, path, body=b"", headers=None):
    """One request with http.client; returns (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def http_health_and_metadata():
    with HTTPServer([MLP, DTYPES]) as server:
        client = triton.InferenceServerClient(server.url)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mlp") and client.is_model_ready("dtypes")
        assert not client.is_model_ready("nope")
        meta = client.get_model_metadata("mlp")
        assert meta["name"] == "mlp", meta
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 784]}], meta
        assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 10]}], meta
        assert client.get_model_metadata("mlp", model_version="1")["name"] == "mlp"
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        try:
            client.get_model_metadata("nope")
            raise AssertionError("metadata of an unknown model")
        except InferenceServerException as e:
            assert "no model named 'nope'" in e.message(), e
        assert server.stop() == 0, "".join(server.log)


def http_infer_mlp_json_and_binary():
    rng = np.random.default_rng(2)
    with HTTPServer([MLP]) as server:
        client = triton.InferenceServerClient(server.url)
        for rows in (1, 32):
            x = rng.random((rows, 784), dtype=np.float32)
            want = mlp_reference(x)
            for binary_in in (False, True):
                for binary_out in (False, True):
                    inp = triton.InferInput("x", [rows, 784], "FP32")
                    inp.set_data_from_numpy(x, binary_data=binary_in)
                    out = triton.InferRequestedOutput("y", binary_data=binary_out)
                    y = client.infer("mlp", [inp], outputs=[out], request_id=f"r{rows}").as_numpy("y")
                    assert y.shape == want.shape and np.allclose(y, want, rtol=1e-5, atol=1e-6), (rows, binary_in, binary_out)
            # No outputs named: tritonclient asks for all of them as binary.
            inp = triton.InferInput("x", [rows, 784], "FP32")
            inp.set_data_from_numpy(x)
            result = client.infer("mlp", [inp])
            assert np.allclose(result.as_numpy("y"), want, rtol=1e-5, atol=1e-6)
        assert server.stop() == 0, "".join(server.log)


def http_every_datatype():
    arrays = every_dtype_arrays()
    with HTTPServer([DTYPES]) as server:
        client = triton.InferenceServerClient(server.url)
        for binary in (False, True):
            inputs = []
            for name, a in arrays.items():
                i = triton.InferInput(name, list(a.shape), triton.np_to_triton_dtype(a.dtype))
                i.set_data_from_numpy(a, binary_data=binary)
                inputs.append(i)
            outputs = [triton.InferRequestedOutput(n + "_out", binary_data=binary) for n in arrays]
            result = client.infer("dtypes", inputs, outputs=outputs)
            for name, a in arrays.items():
                got = result.as_numpy(name + "_out")
                assert got.dtype == a.dtype and np.array_equal(got, a), (binary, name, got, a)
        assert server.stop() == 0, "".join(server.log)


def http_bad_requests():
    """Each bad request gets a 4xx with a JSON error; the server goes on answering."""
    x = np.zeros((1, 784), np.float32)
    good = ('{"inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":%s}]}' % x.ravel().tolist()).encode()
    with HTTPServer([MLP], "--max-body-bytes", "100000", "--max-header-bytes", "2048") as server:
        cases = [
            ("POST", "/v2/models/mlp/infer", b"{not json", {}, 400, "not valid JSON"),
            ("POST", "/v2/models/mlp/infer", b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}', {}, 400, "shape"),
            ("POST", "/v2/models/nope/infer", good, {}, 404, "no model named"),
            ("GET", "/v2/models/mlp/infer", b"", {}, 405, "use POST"),
            ("GET", "/v2/nothing", b"", {}, 404, "no such endpoint"),
            ("POST", "/v2/models/mlp/infer", good, {"Inference-Header-Content-Length": "99999999"}, 400, "Inference-Header-Content-Length"),
            ("POST", "/v2/models/mlp/infer", b" " * 200_000, {}, 413, "over the limit"),
            ("GET", "/v2/health/live", b"", {"X-Big": "a" * 4000}, 400, "malformed HTTP"),
        ]
        for method, path, body, headers, status, words in cases:
            got, _, data = raw(server.port, method, path, body, headers)
            assert got == status, (path, got, data[:200])
            assert words in __import__("json").loads(data)["error"], (path, data[:200])
            assert raw(server.port, "GET", "/v2/health/live")[0] == 200
        status, _, data = raw(server.port, "POST", "/v2/models/mlp/infer", good)
        assert status == 200, data[:200]
        status, headers, text = raw(server.port, "GET", "/metrics")
        text = text.decode()
        assert status == 200 and headers["Content-Type"].startswith("text/plain"), headers
        for name in ["dlserve_http_responses_total{code=\"400\"}", "dlserve_inference_requests_total{model=\"mlp\"}",
                     "dlserve_inference_errors_total{model=\"mlp\"}", "dlserve_inference_duration_seconds_bucket",
                     "dlserve_batch_size_bucket", "dlserve_queue_depth", "dlserve_requests_in_flight"]:
            assert name in text, name
        assert server.stop() == 0, "".join(server.log)


def http_connection_limit():
    with HTTPServer([MLP], "--max-connections", "4") as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", server.port))
        extra.settimeout(10)
        assert extra.recv(1) == b"", "a connection over the limit is closed at once"
        for s in socks:
            s.close()
        time.sleep(0.3)
        assert raw(server.port, "GET", "/v2/health/ready")[0] == 200
        assert "dlserve_rejected_connections_total 1" in raw(server.port, "GET", "/metrics")[2].decode()
        assert server.stop() == 0


def http_idle_timeout():
    """--idle-timeout 1: a silent connection, and one silent after its answer, are closed by the
    server; one used more often than that stays open."""
    with HTTPServer([MLP], "--idle-timeout", "1") as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        silent.settimeout(10)
        answered = socket.create_connection(("127.0.0.1", server.port))
        answered.settimeout(10)
        answered.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"}"):
            reply += answered.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
        assert silent.recv(1) == b"", "a silent connection is closed after the idle time"
        assert answered.recv(1) == b"", "a connection silent after its answer is closed after the idle time"
        # A kept-alive connection still serves after less than the idle time.
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for _ in range(3):
            c.request("GET", "/v2/health/ready")
            assert c.getresponse().read() == b'{"ready":true}'
            time.sleep(0.3)
        c.close()
        assert server.stop() == 0


def http_load(connections=1000, rounds=2):
    """`connections` concurrent connections at once, a quarter of them malformed, twice; every
    answer right, and resident memory after the second round within 16 MiB of the first."""
    x = np.linspace(-1, 1, 784, dtype=np.float32).reshape(1, 784)
    want = mlp_reference(x)
    body = ('{"inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":%s}]}' % x.ravel().tolist()).encode()
    valid = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: l\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    malformed = [b"GARBAGE\r\n\r\n", b"POST /v2/models/mlp/infer HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{bad}",
                 b"GET /v2/models/zzz HTTP/1.1\r\nConnection: close\r\n\r\n"]

    async def one(i, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = malformed[i % 3] if i % 4 == 0 else valid
        writer.write(request)
        await writer.drain()
        data = await reader.read()
        writer.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        if request is valid:
            assert status == 200, data[:300]
            y = np.array(__import__("json").loads(payload)["outputs"][0]["data"], np.float32)
            assert np.allclose(y, want.ravel(), rtol=1e-5, atol=1e-6)
        else:
            assert 400 <= status < 500, data[:300]
        return status

    async def round_(port):
        return await asyncio.gather(*(one(i, port) for i in range(connections)))

    with HTTPServer([MLP], "--threads", "2") as server:
        rss = []
        for _ in range(rounds):
            statuses = asyncio.run(round_(server.port))
            assert len(statuses) == connections
            rss.append(server.rss_kib())
        assert rss[-1] - rss[0] < 16 * 1024, f"resident memory grew {rss} KiB"
        assert raw(server.port, "GET", "/v2/health/live")[0] == 200
        print(f"     load: {rounds} x {connections} connections, RSS after each round {rss} KiB")
        assert server.stop() == 0


def http_sigterm_drains():
    """A request whose head arrived before SIGTERM is answered; then the server exits 0."""
    x = np.linspace(-1, 1, 32 * 784, dtype=np.float32)
    body = x.tobytes()
    header = ('{"inputs":[{"name":"x","shape":[32,784],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}' % len(body)).encode()
    with HTTPServer([MLP]) as server:
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: l\r\nInference-Header-Content-Length: %d\r\n"
                  b"Content-Length: %d\r\n\r\n" % (len(header), len(header) + len(body)) + header + body[:1000])
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "exited with a request in flight"
        s.sendall(body[1000:])
        s.settimeout(30)
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 200"), data[:300]
        assert b"connection: close" in head.lower()
        assert server.process.wait(timeout=30) == 0, "".join(server.log)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_round_robin():
    """Two `dlserve --http` replicas behind nginx (Debian's, scripts/bootstrap) as a round-robin
    upstream on 127.0.0.1, driven by tritonclient: every answer right, both replicas used, and
    after one replica is killed mid-run the other answers everything."""
    import shutil
    import tempfile
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    x = np.linspace(-1, 1, 4 * 784, dtype=np.float32).reshape(4, 784)
    want = mlp_reference(x)
    with HTTPServer([MLP]) as a, HTTPServer([MLP]) as b, tempfile.TemporaryDirectory(prefix="dlkit-nginx-") as tmp:
        port = free_port()
        os.chmod(tmp, 0o777)  # nginx started as root runs its worker as nobody, which writes temp files here
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream dlserve {{
    server 127.0.0.1:{a.port} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:{b.port} max_fails=1 fail_timeout=30s;
    keepalive 8;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location / {{
      proxy_pass http://dlserve;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout non_idempotent;
    }}
  }}
}}
""")
        proxy = subprocess.Popen([nginx, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = None
            for _ in range(100):
                try:
                    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
                    if client.is_server_ready():
                        break
                except Exception:
                    time.sleep(0.1)
            assert client is not None and client.is_server_ready(), "nginx did not come up"

            def ask(i):
                inp = triton.InferInput("x", [4, 784], "FP32")
                inp.set_data_from_numpy(x, binary_data=i % 2 == 0)
                y = client.infer("mlp", [inp], outputs=[triton.InferRequestedOutput("y", binary_data=i % 3 == 0)]).as_numpy("y")
                assert np.allclose(y, want, rtol=1e-5, atol=1e-6), i

            for i in range(40):
                ask(i)
            counts = []
            for server in (a, b):
                text = raw(server.port, "GET", "/metrics")[2].decode()
                counts.append(int(re.search(r'dlserve_inference_requests_total\{model="mlp"\} (\d+)', text).group(1)))
            assert min(counts) >= 10, f"round robin: requests per replica {counts}"
            a.process.kill()  # mid-run, without a drain
            a.process.wait()
            for i in range(40, 100):
                ask(i)
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
        assert b.stop() == 0


def main():
    check("stdio binary: MLP at batch 1 and 32 equals ONNX Runtime", stdio_binary_mlp)
    check("stdio binary: every datatype in and out unchanged, errors keep the stream in step", stdio_binary_every_dtype)
    check("stdio binary: bursts with the input left open are answered in full and in order, then a lone request",
          stdio_binary_burst_without_eof)
    check("http (tritonclient): health, readiness, server and model metadata", http_health_and_metadata)
    check("http (tritonclient): MLP at batch 1 and 32, JSON and binary both ways, equals ONNX Runtime", http_infer_mlp_json_and_binary)
    check("http (tritonclient): every datatype, JSON and binary, unchanged", http_every_datatype)
    check("http: bad requests get 4xx with a JSON error, the server goes on; /metrics", http_bad_requests)
    check("http: connections over --max-connections are closed at once", http_connection_limit)
    check("http: --idle-timeout closes silent connections, not used ones", http_idle_timeout)
    check("http: 1,000 concurrent connections mixed valid/malformed, twice, memory flat", http_load)
    check("http: SIGTERM answers the request in flight, then exits 0", http_sigterm_drains)
    check("http: two replicas behind nginx (round robin), one killed mid-run, every answer right", nginx_round_robin)
    sys.exit(checks.summary("serve-checks"))


if __name__ == "__main__":
    main()
