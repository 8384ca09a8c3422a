#!/usr/bin/env bash
# Benchmark: a model with ~3 GiB of weights, .ckpt -> .onnx with external data.
# Measures wall time against `cp` of the same bytes (and cp + sync, since dlconvert fsyncs), and
# peak memory: max RSS from /usr/bin/time -v, plus the peak RssAnon (anonymous memory, i.e. not
# counting mapped file pages) and RssFile sampled from /proc/PID/status.
# Also converts once without --external-data to show the automatic switch and its note.
#
# Usage: scripts/bench/onnx_external.sh [GIB]   (default 3; BIN=folder with dlconvert,
#        WORK=scratch folder on the disk to measure; needs ~4 x GIB free; removes its files)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIB="${1:-3}"
BIN="${BIN:-$(swift build --show-bin-path)}"
WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dlkit-bench-XXXXXX")}"
PY=.venv/bin/python
trap 'rm -rf "$WORK"' EXIT
echo "== $GIB GiB of float32 weights in $WORK, dlconvert from $BIN"

# A chain of MatMuls with [8192,4096] / [4096,8192] weights (128 MiB each), written straight as
# ONNX external data by numpy, so the generator itself never holds the weights.
"$PY" - "$WORK" "$GIB" <<'PYEOF'
import os, sys
import numpy as np
import onnx
from onnx import helper, TensorProto
work, gib = sys.argv[1], float(sys.argv[2])
n = int(gib * 8)                      # 128 MiB per weight
rows, cols = 8192, 4096
data = os.path.join(work, "big.onnx.data")
inits, nodes, offset = [], [], 0
with open(data, "wb") as f:
    for i in range(n):
        shape = (rows, cols) if i % 2 == 0 else (cols, rows)
        w = np.full(shape, 1.0 / shape[0], dtype=np.float32)
        w[0, : min(64, shape[1])] = np.arange(min(64, shape[1]), dtype=np.float32)
        f.write(w.tobytes())
        t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=shape,
                        data_location=TensorProto.EXTERNAL)
        for k, v in (("location", "big.onnx.data"), ("offset", str(offset)), ("length", str(w.nbytes))):
            e = t.external_data.add(); e.key, e.value = k, v
        offset += w.nbytes
        inits.append(t)
        nodes.append(helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"w{i}"], [f"h{i+1}" if i < n - 1 else "y"]))
out = (1, cols) if n % 2 == 1 else (1, rows)
g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out))], initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnx.save(m, os.path.join(work, "big.onnx"))
print(f"generated {n} weights, {offset} bytes")
PYEOF

"$BIN/dlconvert" "$WORK/big.onnx" "$WORK/big.ckpt"
rm -f "$WORK/big.onnx" "$WORK/big.onnx.data"
BYTES=$(stat -c %s "$WORK/big.ckpt")
echo "checkpoint: $BYTES bytes"
sync

# Runs a command under /usr/bin/time, sampling RssAnon/RssFile of the process every 50 ms.
measure() {
  local label="$1"; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" 2>"$WORK/stderr.txt" &
  local tpid=$! pid="" anon=0 file=0
  while kill -0 "$tpid" 2>/dev/null; do
    [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      read -r a f < <(awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
      [ "$a" -gt "$anon" ] && anon=$a
      [ "$f" -gt "$file" ] && file=$f
    fi
    sleep 0.05
  done
  wait "$tpid"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time.txt")
  printf '%-34s wall %-9s maxRSS %6d MiB  peak RssAnon %5d MiB  peak RssFile %6d MiB\n' \
    "$label" "$wall" $((rss / 1024)) $((anon / 1024)) $((file / 1024))
  [ -s "$WORK/stderr.txt" ] && sed 's/^/    stderr: /' "$WORK/stderr.txt" || true
}

# Warm the page cache alike for every run: the checkpoint was just written.
cat "$WORK/big.ckpt" > /dev/null
measure "cp" cp "$WORK/big.ckpt" "$WORK/copy.bin"
rm -f "$WORK/copy.bin"; sync
measure "cp + sync" sh -c "cp '$WORK/big.ckpt' '$WORK/copy.bin' && sync '$WORK/copy.bin'"
rm -f "$WORK/copy.bin"; sync
measure "dlconvert --external-data" "$BIN/dlconvert" "$WORK/big.ckpt" "$WORK/out.onnx" --external-data
ls -l "$WORK/out.onnx" "$WORK/out.onnx.data" | awk '{print "    " $5, $9}'
"$PY" - "$WORK/out.onnx" <<'PYEOF'
import sys, onnx, onnxruntime as ort, numpy as np
p = sys.argv[1]
onnx.checker.check_model(p)
m = onnx.load(p, load_external_data=False)
offs = [int({e.key: e.value for e in i.external_data}["offset"]) for i in m.graph.initializer]
assert all(o % 4096 == 0 for o in offs), offs
s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
y = s.run(None, {"x": np.ones((1, 8192), np.float32)})[0]
print(f"    onnx.checker ok, {len(offs)} tensors 4096-aligned, ONNX Runtime ran it: y[0,:3] = {y[0, :3]}")
PYEOF
rm -f "$WORK/out.onnx" "$WORK/out.onnx.data"; sync
measure "dlconvert (automatic switch)" "$BIN/dlconvert" "$WORK/big.ckpt" "$WORK/auto.onnx"
rm -f "$WORK/auto.onnx" "$WORK/auto.onnx.data"
