#!/usr/bin/env python3
"""What a decode step's products cost without packed weights: one token of gpt2-124M (its 48
layer products and the tied lm_head, distinct arrays so they stream from memory as in generation)
at m = 1 through the OpenBLAS DLKit links (libopenblas.so.0, 1 thread), as `cblas_sgemm` (what the
runtime calls on unpacked weights; OpenBLAS packs B on every call) and as `cblas_sgemv` on the
same row-major weights (no copy: the layout of the mapped file).

    .venv/bin/python scripts/bench/gemv_m1_bench.py [--rounds 5]

Prints a small Markdown table; scripts/bench/hf_decoder_bench.py adds it to RESULTS-hf.md.
"""
import argparse
import ctypes
import ctypes.util
import os
import time

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def load_openblas():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
    lib.openblas_set_num_threads(1)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


def table(rounds=5):
    lib = load_openblas()
    P, f = ctypes.POINTER(ctypes.c_float), ctypes.c_float

    def ptr(a):
        return a.ctypes.data_as(P)
    rng = np.random.default_rng(0)
    layers = [(768, 2304), (768, 768), (768, 3072), (3072, 768)] * 12  # c_attn, attn c_proj, c_fc, mlp c_proj (k x n)
    ws = [rng.standard_normal(s).astype(np.float32) for s in layers]
    wte = rng.standard_normal((50257, 768)).astype(np.float32)  # lm_head: the tied embedding, n x k
    xs = {k: rng.standard_normal((1, k)).astype(np.float32) for k in (768, 3072)}
    ys = {n: np.zeros((1, n), np.float32) for n in (768, 2304, 3072, 50257)}

    def step(gemv):
        for w in ws:
            k, n = w.shape
            if gemv:
                lib.cblas_sgemv(ROW_MAJOR, TRANS, k, n, f(1), ptr(w), n, ptr(xs[k]), 1, f(0), ptr(ys[n]), 1)
            else:
                lib.cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, 1, n, k, f(1), ptr(xs[k]), k, ptr(w), n, f(0), ptr(ys[n]), n)
        if gemv:
            lib.cblas_sgemv(ROW_MAJOR, NO_TRANS, 50257, 768, f(1), ptr(wte), 768, ptr(xs[768]), 1, f(0), ptr(ys[50257]), 1)
        else:
            lib.cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, 1, 50257, 768, f(1), ptr(xs[768]), 768, ptr(wte), 768, f(0), ptr(ys[50257]), 50257)

    best = {}
    for _ in range(rounds):  # interleaved, best of each
        for gemv in (False, True):
            t = time.perf_counter()
            step(gemv)
            t = time.perf_counter() - t
            best[gemv] = min(best.get(gemv, t), t)
    mb = (sum(w.nbytes for w in ws) + wte.nbytes) / 1e6
    return "\n".join([
        f"One gpt2-124M decode step's products at m = 1 on unpacked weights ({mb:.0f} MB), OpenBLAS "
        f"{lib.openblas_get_corename().decode()} on 1 thread (`scripts/bench/gemv_m1_bench.py`, best of {rounds}):",
        "",
        "| call | ms per step | tokens/s bound |",
        "|---|---:|---:|",
        f"| `cblas_sgemm`, m = 1 (what unpacked weights run today) | {best[False] * 1e3:.1f} | {1 / best[False]:.1f} |",
        f"| `cblas_sgemv` on the same weights (no copy) | {best[True] * 1e3:.1f} | {1 / best[True]:.1f} |",
        f"| sgemv / sgemm speed | {best[False] / best[True]:.2f}x | |",
        ""])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    print(table(ap.parse_args().rounds))
