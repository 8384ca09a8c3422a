"""A small client for `dlserve` over standard input/output with binary tensor data.

The framing is the one in formats/serve-protocol.md ("Binary tensor data"): a JSON request line
whose inputs carry "parameters": {"binary_data_size": N}, followed by those bytes in input order;
outputs asked for with "parameters": {"binary_data": true} come back with "binary_data_size" in the
answer line and their bytes right after it, in output order.

    from dlserve_client import DLServe
    with DLServe(["dlserve", "mlp.onnx"]) as server:
        outputs = server.infer({"x": np.zeros((1, 784), np.float32)})   # {"y": array(...)}

Needs only numpy. Requests are answered in order, one at a time here.
"""
import json
import subprocess

import numpy as np

# Open Inference Protocol datatype of each numpy dtype, and back.
DATATYPES = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
}
DTYPES = {v: k for k, v in DATATYPES.items()}


class ServeError(Exception):
    """An answer with "error": the server refused or failed the request."""


def encode_request(inputs, outputs=None, request_id=None, model=None):
    """The bytes of one request: the JSON line, then the inputs' little-endian bytes."""
    entries, blobs = [], []
    for name, array in inputs.items():
        a = np.ascontiguousarray(array)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "shape": list(a.shape), "datatype": DATATYPES[a.dtype],
                        "parameters": {"binary_data_size": len(data)}})
        blobs.append(data)
    request = {"inputs": entries}
    if request_id is not None:
        request["id"] = request_id
    if model is not None:
        request["model_name"] = model
    if outputs is None:
        request["parameters"] = {"binary_data_output": True}
    else:
        request["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
    return json.dumps(request, separators=(",", ":")).encode() + b"\n" + b"".join(blobs)


def read_answer(stream):
    """Reads one answer (line plus binary data) from `stream`; returns (answer, {name: array})."""
    line = stream.readline()
    if not line:
        raise EOFError("dlserve closed its output")
    answer = json.loads(line)
    if "error" in answer:
        raise ServeError(answer["error"])
    arrays = {}
    for out in answer["outputs"]:
        dtype, shape = DTYPES[out["datatype"]], out["shape"]
        size = out.get("parameters", {}).get("binary_data_size")
        if size is None:
            arrays[out["name"]] = np.array(out["data"], dtype=dtype).reshape(shape)
            continue
        data = stream.read(size)
        if len(data) != size:
            raise EOFError(f"output {out['name']}: {len(data)} of {size} bytes")
        arrays[out["name"]] = np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    return answer, arrays


class DLServe:
    """A dlserve process driven over its pipes."""

    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)

    def infer(self, inputs, outputs=None, model=None):
        """Runs one request; returns {output name: array}. Raises ServeError for an error answer."""
        self.process.stdin.write(encode_request(inputs, outputs, model=model))
        self.process.stdin.flush()
        return read_answer(self.process.stdout)[1]

    def close(self):
        """Ends the input and waits; returns the exit status."""
        self.process.stdin.close()
        return self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
