#!/usr/bin/env bash
# Benchmark (not a test): convert a ~1 GB torch.save file to safetensors and compare with cp;
# time listing its tensors; peak resident memory from /usr/bin/time -v.
#
#   scripts/bench/torch_convert.sh [size_mb]      (default 1024; needs .venv with torch)
#
# Builds dlconvert in release once. Files go to a temporary folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb="${1:-1024}"
[ -x /usr/bin/time ] || { echo "torch_convert: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
swift build -c release --product dlconvert >/dev/null
bin="$(swift build -c release --show-bin-path)/dlconvert"
work="$(mktemp -d "${TMPDIR:-/tmp}/dlkit-bench-XXXXXX")"
trap 'rm -rf "$work"' EXIT

.venv/bin/python - "$work/x.pt" "$size_mb" <<'PY'
import sys, torch
path, mb = sys.argv[1], int(sys.argv[2])
n = 64
per = mb * 1024 * 1024 // 4 // n
torch.manual_seed(0)
sd = {f"layers.{i}.weight": torch.randn(per // 1024, 1024) for i in range(n)}
torch.save(sd, path)
PY
bytes=$(stat -c %s "$work/x.pt")
echo "input: $(( bytes / 1024 / 1024 )) MiB, 64 tensors"

measure() {  # label, command...: best wall time of 3 runs and the largest max RSS (warm page cache)
  local label="$1"; shift
  local best="" rss=0
  for _ in 1 2 3; do
    rm -f "$work"/out.*
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>&1
    read -r wall kb < "$work/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; fi
    [ "$kb" -gt "$rss" ] && rss=$kb
  done
  printf "%-40s %6.2f s   max RSS %5d MiB\n" "$label" "$best" $(( rss / 1024 ))
}

cat "$work/x.pt" > /dev/null
measure "cp x.pt (no fsync)" cp "$work/x.pt" "$work/out.pt"
measure "cp x.pt + sync (fsync, as we do)" sh -c "cp '$work/x.pt' '$work/out.pt' && sync '$work/out.pt'"
"$bin" "$work/x.pt" "$work/y.safetensors"
"$bin" "$work/y.safetensors" "$work/z.pt"
measure "dlconvert x.pt y.safetensors" "$bin" "$work/x.pt" "$work/out.safetensors"
measure "dlconvert y.safetensors z.pt" "$bin" "$work/y.safetensors" "$work/out.pt"
measure "dlconvert inspect x.pt (list tensors)" "$bin" inspect "$work/x.pt"
measure "dlconvert inspect y.safetensors" "$bin" inspect "$work/y.safetensors"
.venv/bin/python - "$work/x.pt" "$work/y.safetensors" "$work/z.pt" <<'PY'
import sys, torch
from safetensors.torch import load_file
a = torch.load(sys.argv[1], weights_only=True, mmap=True)
b = load_file(sys.argv[2])
c = torch.load(sys.argv[3], weights_only=True, mmap=True)
assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a), "converted values differ"
print("outputs verified against torch.load")
PY
