"""Writes the ONNX backend node test suite of the pinned onnx wheel to a folder.

The wheel ships the case generators (onnx.backend.test.case.node), not the data. This writes, for
every case, `<out>/<case>/model.onnx` and `<out>/<case>/test_data_set_0/{input,output}_<i>.pb`,
the layout of onnx/backend/test/data/node. Cases whose inputs or outputs are sequences, maps or
optionals are written with numpy_helper's from_list/from_dict/from_optional protos.

    .venv/bin/python scripts/conformance/generate.py OUT_DIR
"""
import os
import shutil
import sys

import numpy as np
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case import node as node_cases


def proto_for(value, type_proto, name):
    if type_proto.HasField("sequence_type"):
        return numpy_helper.from_list(value, name)
    if type_proto.HasField("optional_type"):
        return numpy_helper.from_optional(value, name)
    if type_proto.HasField("map_type"):
        return numpy_helper.from_dict(value, name)
    if isinstance(value, TensorProto):
        return value
    return numpy_helper.from_array(np.asarray(value) if not isinstance(value, np.ndarray) else value, name)


def main():
    out = sys.argv[1]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = node_cases.collect_testcases()
    for case in cases:
        d = os.path.join(out, case.name)
        os.makedirs(d)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for k, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{k}")
            os.makedirs(ds)
            for j, v in enumerate(inputs):
                vi = case.model.graph.input[j]
                with open(os.path.join(ds, f"input_{j}.pb"), "wb") as f:
                    f.write(proto_for(v, vi.type, vi.name).SerializeToString())
            for j, v in enumerate(outputs):
                vi = case.model.graph.output[j]
                with open(os.path.join(ds, f"output_{j}.pb"), "wb") as f:
                    f.write(proto_for(v, vi.type, vi.name).SerializeToString())
    print(f"generate: {len(cases)} cases in {out}")


if __name__ == "__main__":
    main()
