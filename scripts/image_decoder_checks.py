#!/usr/bin/env python3
"""ONNX's ImageDecoder on real image files against onnx's reference implementation (Pillow).

    .venv/bin/python scripts/image_decoder_checks.py BIN_DIR

Third-party files from the pinned PyPI packages in the venv (scikit-learn's sample JPEGs, scipy's
and networkx's test PNGs, werkzeug's icons, CPython's test images in fixtures/images/formats/cpython), the fixture image
folder and the fixture files of every other format ONNX lists (BMP, PNM, TIFF, WebP, JPEG 2000),
each decoded as RGB, BGR and Grayscale. Every case is written in the ONNX node-test layout (model, input bytes, the
reference's output) and run by BIN_DIR/dlconformance; outputs must be equal (uint8, exact). ONNX
Runtime has no ImageDecoder kernel, so onnx.reference is the peer. Where the reference returns
Pillow's array of a mode other than RGB (RGBA, palette, gray: not the [H, W, 3] the spec asks
for; for BGR of a gray image it raises), the expectation is the image converted to RGB by Pillow. A truncated PNG must fail with a
message. Run by scripts/test.
"""
import glob
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.dirname(os.path.dirname(np.__file__))
FILES = ["sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg", "scipy/ndimage/tests/dots.png",
         "werkzeug/debug/shared/less.png", "werkzeug/debug/shared/console.png",
         "networkx/drawing/tests/baseline/test_display_complex.png"]


EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pbm", ".pgm", ".ppm", ".tif", ".tiff", ".webp", ".jp2", ".j2k")


def model(pixel_format):
    node = helper.make_node("ImageDecoder", ["data"], ["output"], pixel_format=pixel_format)
    g = helper.make_graph([node], "decode", [helper.make_tensor_value_info("data", TensorProto.UINT8, [None])],
                          [helper.make_tensor_value_info("output", TensorProto.UINT8, [None, None, None])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def expected(data, pixel_format):
    try:
        want = ReferenceEvaluator(model(pixel_format)).run(None, {"data": data})[0]
    except IndexError:  # the reference's BGR indexes a gray image's 2-D array as [H, W, C]
        want = None
    if pixel_format != "Grayscale" and (want is None or want.ndim != 3 or want.shape[2] != 3):
        rgb = np.array(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))
        want = rgb[:, :, ::-1] if pixel_format == "BGR" else rgb
    return np.ascontiguousarray(want)


def write_case(root, name, data, pixel_format, want):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    onnx.save(model(pixel_format), os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(data, "data").SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(want, "output").SerializeToString())


def main():
    binary = os.path.join(sys.argv[1], "dlconformance")
    files = [os.path.join(SITE, f) for f in FILES]
    for folder in ["folder", "formats"]:
        files += sorted(glob.glob(os.path.join(ROOT, f"fixtures/images/{folder}/**/*.*"), recursive=True))
    files = [f for f in files if f.lower().endswith(EXTENSIONS)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for k, path in enumerate(files):
            data = np.fromfile(path, dtype=np.uint8)
            for pf in ["RGB", "BGR", "Grayscale"]:
                name = f"{k:02d}_{os.path.basename(path)}_{pf}"
                write_case(tmp, name, data, pf, expected(data, pf))
                cases.append((name, os.path.relpath(path, SITE) if path.startswith(SITE) else os.path.relpath(path, ROOT), pf))
        truncated = np.fromfile(os.path.join(ROOT, "fixtures/images/bad/truncated.png"), dtype=np.uint8)
        write_case(tmp, "bad_truncated", truncated, "RGB", np.zeros((1, 1, 3), np.uint8))
        r = subprocess.run([binary] + [os.path.join(tmp, c[0]) for c in cases] + [os.path.join(tmp, "bad_truncated")],
                           capture_output=True, text=True)
        results = {}
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                j = json.loads(line)
                results[j["case"]] = j
        for name, path, pf in cases:
            j = results.get(name, {"status": "missing", "reason": r.stderr[-300:]})
            ok = j["status"] == "pass"
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} ImageDecoder {pf:9} {path}{'' if ok else ': ' + str(j.get('reason'))}")
        bad = results.get("bad_truncated", {})
        ok = bad.get("status") == "fail" and "malformed image" in bad.get("reason", "")
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} ImageDecoder refuses a truncated PNG: {bad.get('reason')}")
    print(f"image decoder checks: {len(cases) + 1 - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
