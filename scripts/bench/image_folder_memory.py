#!/usr/bin/env python3
"""Peak memory and step time of `dltrain --data FOLDER` against the same pixels preloaded from an
.npz. An image folder keeps its decoded images in memory up to `--image-cache-mb` (by default a
quarter of the memory, at most 2 GiB); with `--image-cache-mb 0`, as for images past that budget,
it streams (each batch decodes its own images, the next batch on a background thread while the
current one trains), so the peak resident set stays flat while the pixels of the whole folder grow
with it. The .npz (written deflated, so that it is read into memory rather than memory-mapped as a
stored one would be) holds the same pixels preloaded. Both ways of the folder are measured.

    swift build -c release --product dltrain
    .venv/bin/python scripts/bench/image_folder_memory.py [--bin .build/release] [--counts 500,4000]
        [--model small|wide] [--steps 60] [--threads 1] [--repeat 3]

Images: random 64x64 RGB PNGs in 4 class folders; batch 32, SGD. Models: `small` is Conv 3->8
(3x3, stride 2) -> ReLU -> GlobalAveragePool -> Flatten -> Gemm 8->4 (decoding dominates: the worst
case for a folder); `wide` puts Conv 8->32 (3x3) -> ReLU before the pooling. Peak RSS (one epoch) is
the child's ru_maxrss (getrusage), read by /usr/bin/time's %M. Step time is the difference of a long
and a short run (each the fastest of --repeat) divided by the extra steps (startup, loading the .npz
and the checkpoint cancel).
A measurement, not a test.
"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 64


def model(path, kind):
    rng = np.random.default_rng(0)
    width = 32 if kind == "wide" else 8
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2, "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4, width)).astype(np.float32) * 0.2, "fw"),
             numpy_helper.from_array(np.zeros(4, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"])]
    if kind == "wide":
        inits += [numpy_helper.from_array(rng.standard_normal((32, 8, 3, 3)).astype(np.float32) * 0.1, "w2"),
                  numpy_helper.from_array(np.zeros(32, np.float32), "b2")]
        nodes += [helper.make_node("Conv", ["r", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c2"], ["r2"])]
    nodes += [helper.make_node("GlobalAveragePool", ["r2" if kind == "wide" else "r"], ["g"]),
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


def step_ms(cmd, steps, env, repeat):
    """The fastest of `repeat` short and of `repeat` long runs (other work on the machine only adds)."""
    def run(k):
        t = time.perf_counter()
        subprocess.run(cmd + ["--steps", str(k)], check=True, capture_output=True, env=env)
        return time.perf_counter() - t
    short = min(run(2) for _ in range(repeat))
    long = min(run(2 + steps) for _ in range(repeat))
    return (long - short) / steps * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--counts", default="500,4000")
    ap.add_argument("--model", choices=["small", "wide"], default="small")
    ap.add_argument("--steps", type=int, default=60, help="extra steps timed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each length; the fastest counts")
    args = ap.parse_args()
    tool = os.path.join(args.bin, "dltrain")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    print(f"model {args.model}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"| images ({SIZE}x{SIZE}) | all pixels as float32 | peak RSS: folder kept, streamed, .npz "
          "| ms/step: folder kept, streamed, .npz | kept / .npz | streamed / .npz |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        model(f"{tmp}/cnn.onnx", args.model)
        for count in [int(c) for c in args.counts.split(",")]:
            root = f"{tmp}/images{count}"
            x, y = folder(root, count)
            np.savez_compressed(f"{tmp}/d{count}.npz", x=x, y=y)
            common = ["--loss", "cross_entropy", "--batch-size", "32", "--optimizer", "sgd"]
            kept = [tool, f"{tmp}/cnn.onnx", "--data", root, "--image-size", f"{SIZE},{SIZE}"] + common + ["--out", f"{tmp}/a.ckpt"]
            streamed = kept + ["--image-cache-mb", "0"]
            from_npz = [tool, f"{tmp}/cnn.onnx", "--data", f"{tmp}/d{count}.npz"] + common + ["--out", f"{tmp}/b.ckpt"]
            peaks = [peak_kib(cmd + ["--epochs", "1"]) / 1024 for cmd in (kept, streamed, from_npz)]
            ms = [step_ms(cmd, args.steps, env, args.repeat) for cmd in (kept, streamed, from_npz)]
            print(f"| {count} | {x.nbytes / 2**20:.1f} MiB | {peaks[0]:.1f}, {peaks[1]:.1f}, {peaks[2]:.1f} MiB "
                  f"| {ms[0]:.2f}, {ms[1]:.2f}, {ms[2]:.2f} | {ms[0] / ms[2]:.2f} | {ms[1] / ms[2]:.2f} |", flush=True)

if __name__ == "__main__":
    main()
