"""Runs the ONNX backend node test suite through DLKit and reports per op.

    .venv/bin/python scripts/conformance/conformance.py BIN_DIR [--data DIR] [--only REGEX]
        [--manifest scripts/conformance/passing.txt] [--check-manifest] [--write-manifest]
        [--report scripts/conformance/RESULTS.md]

Generates the cases from the pinned onnx wheel (generate.py) once into DATA (default
.build/conformance/<onnx version>), runs them with BIN_DIR/dlconformance, restarting it after a
crash or a hang (the case is recorded as failed and the run goes on), writes a per-op table to the
report, and ends with `conformance: N passed, N failed` and the pass rate.

--check-manifest runs only the cases listed in the manifest and fails (exit 1) when any of them
does not pass: the guard scripts/test runs. --write-manifest rewrites the manifest from this run.
"""
import argparse
import collections
import json
import os
import re
import select
import subprocess
import sys
import time

import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HANG_SECONDS = 60


def ensure_data(data):
    stamp = os.path.join(data, ".complete")
    if os.path.exists(stamp):
        return
    subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), data], check=True,
                   stderr=subprocess.DEVNULL)
    ops = {}
    for case in sorted(os.listdir(data)):
        m = onnx.load(os.path.join(data, case, "model.onnx"), load_external_data=False)
        ops[case] = m.graph.node[0].op_type if len(m.graph.node) == 1 else None
    # An expanded case (a function body) is counted under the op it expands.
    for case in ops:
        if ops[case] is None:
            base = re.sub(r"_expanded(_ver\d+)?$", "", case)
            ops[case] = ops.get(base) or "(graph)"
    with open(os.path.join(data, "ops.json"), "w") as f:
        json.dump(ops, f, indent=0, sort_keys=True)
    open(stamp, "w").close()


def run_cases(binary, data, cases):
    """Runs cases in one process at a time; a crash or hang fails the current case only."""
    results = {}
    pending = list(cases)
    while pending:
        proc = subprocess.Popen([binary] + [os.path.join(data, c) for c in pending],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        current = None
        last = time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 5)
            if not ready:
                if time.monotonic() - last > HANG_SECONDS:
                    proc.kill()
                    if current:
                        results[current] = ("fail", "hang", f"no answer in {HANG_SECONDS} s")
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                if current and current not in results:
                    results[current] = ("fail", "crash", f"the runner died (exit {proc.returncode})")
                break
            last = time.monotonic()
            line = line.rstrip("\n")
            if line.startswith("begin "):
                current = line[6:]
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            results[r["case"]] = (r["status"], r.get("stage", ""), r.get("reason", ""))
        proc.stdout.close()
        pending = [c for c in pending if c not in results]
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--data", default=os.path.join(ROOT, ".build", "conformance", onnx.__version__))
    ap.add_argument("--only")
    ap.add_argument("--manifest", default=os.path.join(HERE, "passing.txt"))
    ap.add_argument("--check-manifest", action="store_true")
    ap.add_argument("--write-manifest", action="store_true")
    ap.add_argument("--report", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()

    ensure_data(args.data)
    with open(os.path.join(args.data, "ops.json")) as f:
        ops = json.load(f)
    cases = sorted(ops)
    if args.check_manifest:
        with open(args.manifest) as f:
            listed = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        unknown = [c for c in listed if c not in ops]
        cases = [c for c in listed if c in ops]
    if args.only:
        cases = [c for c in cases if re.search(args.only, c)]

    start = time.monotonic()
    results = run_cases(os.path.join(args.bin, "dlconformance"), args.data, cases)
    elapsed = time.monotonic() - start
    passed = sorted(c for c in cases if results[c][0] == "pass")
    failed = sorted(c for c in cases if results[c][0] != "pass")

    if args.check_manifest:
        for c in failed:
            print(f"FAIL {c}: {results[c][1]}: {results[c][2]}")
        for c in unknown:
            print(f"FAIL {c}: listed in the manifest but not generated by onnx {onnx.__version__}")
        print(f"conformance-guard: {len(passed)} passed, {len(failed) + len(unknown)} failed")
        sys.exit(1 if failed or unknown else 0)

    by_op = collections.defaultdict(lambda: [0, 0, collections.Counter()])
    for c in cases:
        row = by_op[ops[c]]
        if results[c][0] == "pass":
            row[0] += 1
        else:
            row[1] += 1
            reason = results[c][2].replace(args.data + "/", "")
            row[2][f"{results[c][1]}: {reason[:120]}"] += 1
    lines = [f"# ONNX backend node suite (onnx {onnx.__version__})", "",
             f"{len(passed)} of {len(cases)} cases pass ({100.0 * len(passed) / max(len(cases), 1):.1f}%), "
             f"run in {elapsed:.0f} s. Made by `scripts/conformance/run`.", "",
             "| op | passed | failed | most common failure |", "|---|---:|---:|---|"]
    for op in sorted(by_op):
        p, f_, why = by_op[op]
        common = why.most_common(1)[0][0].replace("|", "\\|") if why else ""
        lines.append(f"| {op} | {p} | {f_} | {common} |")
    with open(args.report, "w") as f:
        f.write("\n".join(lines) + "\n")
    if args.write_manifest:
        with open(args.manifest, "w") as f:
            f.write(f"# Cases of the onnx {onnx.__version__} node suite that pass; scripts/test fails if one stops passing.\n")
            f.write("\n".join(passed) + "\n")
    print(f"per-op table: {os.path.relpath(args.report, ROOT)}")
    print(f"conformance: {len(passed)} passed, {len(failed)} failed")
    print(f"pass rate: {100.0 * len(passed) / max(len(cases), 1):.1f}% of {len(cases)} cases in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
