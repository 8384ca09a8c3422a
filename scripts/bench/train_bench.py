#!/usr/bin/env python3
"""Training step time of dltrain against PyTorch CPU, same model, optimizer, batch and threads.

    swift build -c release --product dltrain
    .venv/bin/python scripts/bench/train_bench.py [--threads 1] [--bin .build/release]

Models: the MLP 784-512-512-10 (batch 64), a small CNN (1x28x28 -> conv 16 -> pool -> conv 32
-> pool -> fc 10, batch 64), an LSTM and a GRU (20 steps of 32 features, hidden 128, the last step -> fc 10,
batch 64), Adam, cross-entropy. dltrain's step time is the difference of a
long and a short run divided by the extra steps (startup, loading and checkpoint writing cancel);
PyTorch's is the mean over timed steps after warm-up. Prints one line per model with the ratio
dltrain / torch (below 1 means dltrain is faster). A benchmark, not a test.
"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(784, 512), torch.nn.Linear(512, 512), torch.nn.Linear(512, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Recurrent(torch.nn.Module):
    """An LSTM or GRU layer (batch first), its last step -> fc 10."""

    def __init__(self, layer):
        super().__init__()
        self.rnn = layer(32, 128, batch_first=True)
        self.fc = torch.nn.Linear(128, 10)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.fc(h[:, -1])


def torch_step_time(model, x, y, steps, batch):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0] // batch

    def step(i):
        lo = (i % n) * batch
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[lo:lo + batch]), y[lo:lo + batch]).backward()
        opt.step()
    for i in range(5):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - t) / steps


def dltrain_step_time(binary, onnx_path, data_path, steps, batch, threads, tmp):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))

    def run(k):
        args = [binary, onnx_path, "--data", data_path, "--input", "x", "--target", "y", "--loss", "cross_entropy",
                "--batch-size", str(batch), "--no-shuffle", "--optimizer", "adam", "--lr", "0.001", "--steps", str(k),
                "--threads", str(threads), "--out", os.path.join(tmp, "bench.ckpt")]
        t = time.perf_counter()
        subprocess.run(args, check=True, env=env, capture_output=True)
        return time.perf_counter() - t
    short, long = run(2), run(2 + steps)
    return (long - short) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    ap.add_argument("--steps", type=int, default=200,
                    help="extra steps timed (a long run less a 2-step run); 30 left the 2-thread rows 40%% apart between rounds")
    ap.add_argument("--baseline", default=None,
                    help="folder of another dltrain build (e.g. before a change) timed in the same run, interleaved")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of (baseline, dltrain, torch) per model")
    ap.add_argument("--only", default=None, help="only the models whose name contains this (mlp, cnn, lstm, gru)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    binary = os.path.join(a.bin, "dltrain")
    tmp = tempfile.mkdtemp(prefix="dlkit-train-bench-")
    print(f"models and data in {tmp}", flush=True)
    batch = 64
    models = [("mlp 784-512-512-10", MLP, (784,)), ("cnn 28x28", CNN, (1, 28, 28)), ("lstm 20x32-128", lambda: Recurrent(torch.nn.LSTM), (20, 32)),
              ("gru 20x32-128", lambda: Recurrent(torch.nn.GRU), (20, 32))]
    for name, cls, shape in [m for m in models if not a.only or a.only in m[0]]:
        torch.manual_seed(0)
        model = cls()
        x = torch.randn((batch * 8,) + shape)
        y = torch.randint(0, 10, (batch * 8,))
        onnx_path = os.path.join(tmp, name.split()[0] + ".onnx")
        torch.onnx.export(model, (x[:batch],), onnx_path, dynamo=False, export_params=True, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.TRAINING, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
        data_path = os.path.join(tmp, name.split()[0] + ".safetensors")
        save_file({"x": x.numpy(), "y": y.numpy().astype(np.int64)}, data_path)
        best = {}
        for _ in range(a.repeat):
            load = os.getloadavg()[0]
            base = None
            if a.baseline:
                base = dltrain_step_time(os.path.join(a.baseline, "dltrain"), onnx_path, data_path, a.steps, batch,
                                         a.threads, tmp)
            ours = dltrain_step_time(binary, onnx_path, data_path, a.steps, batch, a.threads, tmp)
            theirs = torch_step_time(model, x, y, a.steps, batch)
            line = (f"{name}, batch {batch}, {a.threads} thread(s), load {load:.1f}: dltrain {ours * 1e3:.2f} ms/step, "
                    f"torch {theirs * 1e3:.2f} ms/step, ratio {ours / theirs:.2f}")
            if base is not None:
                line += f"; baseline {base * 1e3:.2f} ms/step, ratio {base / theirs:.2f}"
            print(line, flush=True)
            for side, v in [("dltrain", ours), ("torch", theirs), ("baseline", base)]:
                if v is not None:
                    best[side] = min(best.get(side, v), v)
        if a.repeat > 1:
            # Other work on the machine only adds time: the fastest round of each side is the
            # least disturbed one.
            line = (f"{name}, best of {a.repeat}: dltrain {best['dltrain'] * 1e3:.2f} ms/step, "
                    f"torch {best['torch'] * 1e3:.2f} ms/step, ratio {best['dltrain'] / best['torch']:.2f}")
            if "baseline" in best:
                line += f"; baseline {best['baseline'] * 1e3:.2f} ms/step, ratio {best['baseline'] / best['torch']:.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
