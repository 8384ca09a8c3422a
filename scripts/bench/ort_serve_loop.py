#!/usr/bin/env python3
"""What a user would write instead of dlserve: read JSON lines, call ONNX Runtime, write JSON lines.

    ort_serve_loop.py MODEL.onnx THREADS < requests.jsonl > answers.jsonl

Same request and answer bodies as dlserve (Open Inference Protocol v2), FP32 inputs and outputs,
answers with floats in their shortest float32 form (numpy's float32 -> str is shortest round-trip,
as dlserve writes them). ONNX Runtime runs with THREADS intra-op threads, one inter-op thread.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

model_path, threads = sys.argv[1], int(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
model_name = os.path.splitext(os.path.basename(model_path))[0]
output_names = [o.name for o in session.get_outputs()]

out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not line.strip():
        continue
    request_id = None
    try:
        request = json.loads(line)
        request_id = request.get("id")
        feeds = {i["name"]: np.asarray(i["data"], dtype=np.float32).reshape(i["shape"]) for i in request["inputs"]}
        results = session.run(output_names, feeds)
        parts = []
        for name, y in zip(output_names, results):
            data = ",".join(y.ravel().astype(str))
            shape = ",".join(str(d) for d in y.shape)
            parts.append('{"name":%s,"shape":[%s],"datatype":"FP32","data":[%s]}' % (json.dumps(name), shape, data))
        answer = '{"id":%s,"model_name":%s,"outputs":[%s]}' % (json.dumps(request_id), json.dumps(model_name), ",".join(parts))
    except Exception as e:  # a bad request must not stop the loop
        answer = json.dumps({"id": request_id, "error": str(e)})
    out.write(answer.encode() + b"\n")
out.flush()
