#!/usr/bin/env python3
"""Fits the rational tanh of the LSTM cell (`dlk_tanh_rational16`, `VectorMath.tanhRational`).

    .venv/bin/python scripts/fit_tanh.py [--limit 9] [--degree 4]

tanh(x) = x·P(x²)/Q(x²) on [0, limit], P and Q of the given degree, Q(0) = 1, fitted for relative
error: a linear least-squares fit of x·P - tanh·Q (weighted by 1/Q of the previous round), then
rounds that weight each sample by its error so far, which moves towards the minimax fit. Prints
the coefficients as the C and Swift code write them (9 significant digits), then the error of
the float32 evaluation the kernels do (Horner with fused multiply-adds, the division, the
clamps) over every 6e-6 of [0, 12].
"""
import argparse

import numpy as np


def fit(limit, degree):
    x = np.linspace(1e-4, limit, 40000)
    s, f = x * x, np.tanh(x) / x
    powers = np.vstack([s ** k for k in range(degree + 1)]).T
    weight = np.ones_like(x)
    for round_ in range(230):
        # f·Q - P = 0 with Q's constant 1: unknowns P's coefficients and Q's from s¹ up.
        a = np.hstack([powers, -f[:, None] * powers[:, 1:]]) * (weight / f)[:, None]
        sol, *_ = np.linalg.lstsq(a, f * weight / f, rcond=None)
        p, q = sol[: degree + 1], np.concatenate([[1.0], sol[degree + 1:]])
        qs = powers @ q
        err = np.abs((powers @ p) / qs - f) / f
        if round_ < 30:
            weight = 1 / np.abs(qs)
        else:
            weight = weight * (err / err.max()) ** 0.3 + 1e-12
            weight /= weight.max()
    return p, q, err.max()


def horner32(coefficients, s):
    r = np.full_like(s, coefficients[-1])
    for c in coefficients[-2::-1]:
        # float32 fused multiply-add: exact in float64, rounded once.
        r = (r.astype(np.float64) * s + np.float64(c)).astype(np.float32)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=float, default=9.0)
    ap.add_argument("--degree", type=int, default=4)
    args = ap.parse_args()
    p, q, rel = fit(args.limit, args.degree)
    p32 = np.array([float("%.9e" % v) for v in p], dtype=np.float32)
    q32 = np.array([float("%.9e" % v) for v in q], dtype=np.float32)
    print("P:", ", ".join("%.9e" % v for v in p))
    print("Q:", ", ".join("%.9e" % v for v in q))
    print("largest relative error in float64: %.3g" % rel)
    x = np.linspace(0, 12, 2_000_001).astype(np.float32)
    xc = np.minimum(x, np.float32(args.limit))
    s = xc * xc
    r = np.minimum((xc * horner32(p32, s)) / horner32(q32, s), np.float32(1))
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(r - exact) / np.spacing(exact.astype(np.float32))
    print("float32: largest error %.3g (%.1f ulp)" % (np.abs(r - exact).max(), ulps.max()))
    sig = np.float32(0.5) * r + np.float32(0.5)
    exact_sig = 1 / (1 + np.exp(-2 * x.astype(np.float64)))
    print("sigmoid as 1/2 + tanh(x/2)/2: largest error %.3g" % np.abs(sig - exact_sig).max())


if __name__ == "__main__":
    main()
