#!/usr/bin/env python3
"""Peak memory of `dltrain --data FOLDER` as the folder grows: image folders stream (each batch
decodes its own images), so the peak resident set stays flat while the pixels of the whole folder
grow with it. The same pixels preloaded from an .npz are the contrast (read into memory).

    swift build --product dltrain
    .venv/bin/python scripts/bench/image_folder_memory.py [--bin .build/debug] [--counts 500,4000]

Images: random 64x64 RGB PNGs in 4 class folders; model: Conv 3->8 (3x3, stride 2) -> ReLU ->
GlobalAveragePool -> Flatten -> Gemm 8->4; one epoch, batch 32, SGD. Peak RSS is the child's
ru_maxrss (getrusage), read by /usr/bin/time's %M. A measurement, not a test.
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 64


def model(path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2, "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32) * 0.2, "fw"),
             numpy_helper.from_array(np.zeros(4, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def folder(root, count):
    rng = np.random.default_rng(count)
    pixels, labels = [], []
    for i in range(count):
        label = i % 4
        os.makedirs(f"{root}/class{label}", exist_ok=True)
        a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(a).save(f"{root}/class{label}/{i:06d}.png")
        pixels.append(a.transpose(2, 0, 1).astype(np.float32) / 255)
        labels.append(label)
    return np.stack(pixels), np.array(labels, np.int64)


def peak_kib(cmd):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return int(r.stderr.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/debug"))
    ap.add_argument("--counts", default="500,4000")
    args = ap.parse_args()
    tool = os.path.join(args.bin, "dltrain")
    print(f"| images ({SIZE}x{SIZE}) | all pixels as float32 | peak RSS, folder streamed | peak RSS, same pixels from .npz |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        model(f"{tmp}/cnn.onnx")
        for count in [int(c) for c in args.counts.split(",")]:
            root = f"{tmp}/images{count}"
            x, y = folder(root, count)
            np.savez(f"{tmp}/d{count}.npz", x=x, y=y)
            common = ["--loss", "cross_entropy", "--batch-size", "32", "--optimizer", "sgd", "--epochs", "1"]
            streamed = peak_kib([tool, f"{tmp}/cnn.onnx", "--data", root, "--image-size", f"{SIZE},{SIZE}"] + common
                                + ["--out", f"{tmp}/a.ckpt"])
            loaded = peak_kib([tool, f"{tmp}/cnn.onnx", "--data", f"{tmp}/d{count}.npz"] + common + ["--out", f"{tmp}/b.ckpt"])
            print(f"| {count} | {x.nbytes / 2**20:.1f} MiB | {streamed / 1024:.1f} MiB | {loaded / 1024:.1f} MiB |", flush=True)


if __name__ == "__main__":
    main()
