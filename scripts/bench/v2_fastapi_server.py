#!/usr/bin/env python3
"""The server a user would otherwise write: KServe/Triton v2 REST in Python, FastAPI on uvicorn,
around ONNX Runtime (one intra-op thread, as dlserve's runner). For
scripts/bench/serve_protocols_bench.py, which times dlserve --http against it.

    python v2_fastapi_server.py MODEL.onnx PORT

GET /v2/health/ready, and POST /v2/models/{m}/infer with JSON bodies and with the binary tensor
data extension (Inference-Header-Content-Length, "binary_data_size" inputs, "binary_data" outputs).
Needs fastapi and uvicorn (scripts/requirements.txt).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request, Response

DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
          "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
          "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def make_app(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()]
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready():
        return {}

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: Request):
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        split = int(header_length) if header_length else len(body)
        header = json.loads(body[:split])
        blob, offset = memoryview(body)[split:], 0
        feeds = {}
        for t in header["inputs"]:
            dtype = DTYPES[t["datatype"]]
            size = (t.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                feeds[t["name"]] = np.frombuffer(blob[offset:offset + size], dtype).reshape(t["shape"])
                offset += size
            else:
                feeds[t["name"]] = np.asarray(t["data"], dtype).reshape(t["shape"])
        binary = {o["name"]: (o.get("parameters") or {}).get("binary_data", False) for o in header.get("outputs", [])}
        outputs, blobs = [], []
        for name, y in zip(output_names, session.run(None, feeds)):
            entry = {"name": name, "datatype": NAMES[y.dtype], "shape": list(y.shape)}
            if binary.get(name):
                raw = y.tobytes()
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = y.ravel().tolist()
            outputs.append(entry)
        text = json.dumps({"model_name": model, "outputs": outputs}).encode()
        if blobs:
            return Response(text + b"".join(blobs), media_type="application/octet-stream",
                            headers={"Inference-Header-Content-Length": str(len(text))})
        return Response(text, media_type="application/json")

    return app


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    uvicorn.run(make_app(os.path.abspath(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
