#!/usr/bin/env python3
"""Decoder tokens per second at batch 1: `dlconvert generate` (KV cache, greedy) vs transformers'
`generate(do_sample=False)` in PyTorch, on the same threads.

    .venv/bin/python scripts/bench/hf_decoder_bench.py [--bin .build/release] [--threads 1,2] [--prompt 32] [--new 64] [--rounds 3]

No hub downloads: the models are made here from configs with seeded random weights (sizes of
small real checkpoints, no eos so both sides generate every token) and written with
`save_pretrained`; the prompt is tokenized with the gpt2 fixture's tokenizer.json on both sides.
Decode speed is the tokens after the first over their time (`dlconvert generate --timing` on our
side; on transformers' side the time of generate(N) minus generate(1), over N - 1), so neither the
prompt nor loading counts; best of `--rounds` rounds each. At the lowest thread count it also runs
our side with `DLKIT_PACK_MAPPED_MIN_ROWS=0` (the mapped weights packed into panels, a second
copy; by default they are read in place, with the same bits) and gives both peak memories, then
the prompt's time (first token) at each `--prefill` length with and without those packs.
Appends the tables to scripts/bench/RESULTS-hf.md (replacing an earlier decoder section) and prints it.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time


# DLKIT_PACK_MAPPED_MIN_ROWS for "never pack a mapped weight" (more rows than any plan has).
NEVER = str(2**62)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "scripts", "bench", "RESULTS-hf.md")
HEADER = "# Decoder tokens per second"

MODELS = {
    # name: (architecture, config) — sizes of small real checkpoints
    "gpt2 (124M, gpt2's own sizes)": ("gpt2", dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)),
    "llama (GQA, 8 layers, 512 wide, 32k vocab)": ("llama", dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                                                          num_attention_heads=8, num_key_value_heads=4, vocab_size=32000,
                                                          max_position_embeddings=2048, tie_word_embeddings=False)),
}


def make_folder(tmp, arch, config):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig
    cfg = (GPT2Config if arch == "gpt2" else LlamaConfig)(**config, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    d = os.path.join(tmp, arch)
    model.save_pretrained(d)
    shutil.copy(os.path.join(ROOT, "fixtures", "hf", "gpt2", "tokenizer.json"), d)
    return d, model


def run_measured(cmd, stdin, env=None):
    """Runs `cmd` on `stdin`; returns its stdout, stderr and the peaks of its anonymous memory
    (copies and buffers) and of its resident file pages (the mapped weights), in bytes, from
    /proc/PID/status polled every 10 ms. (wait4's ru_maxrss would count the pages of this Python,
    torch and all, that the child had before exec.)"""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    got = {}
    readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read().decode())) for k, f in (("out", p.stdout), ("err", p.stderr))]
    for t in readers:
        t.start()
    p.stdin.write(stdin.encode())
    p.stdin.close()
    peak = {"RssAnon": 0, "RssFile": 0}
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in peak:
                        peak[key] = max(peak[key], int(value.split()[0]) * 1024)
        except OSError:
            pass
        time.sleep(0.01)
    for t in readers:
        t.join()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {got['err']}")
    return got["out"], got["err"], peak["RssAnon"], peak["RssFile"]


def ours(dlconvert, folder, prompt, new, threads, rounds, extra=(), env=None):
    """Decode tokens/s, first-token seconds, the ids, and the peaks of anonymous memory and of file pages (bytes)."""
    out, err, anon, file_pages = run_measured([dlconvert, "generate", folder, "--max-tokens", str(new), "--threads", str(threads), "--timing", *extra],
                                 (prompt + "\n") * (rounds + 1), env)
    stats = [json.loads(line) for line in err.splitlines() if line.startswith("{")][1:]  # the first round warms up
    ids = json.loads(out.splitlines()[0])["token_ids"]
    best = min(s["decode_seconds"] / (s["new_tokens"] - 1) for s in stats)
    first = min(s["first_token_seconds"] for s in stats)
    return 1 / best, first, ids, (anon, file_pages)


def transformers_side(model, ids, new, threads, rounds):
    import torch
    torch.set_num_threads(threads)
    x = torch.tensor([ids])
    mask = torch.ones_like(x)

    def timed(n):
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=n, do_sample=False)
        return time.perf_counter() - t, out[0, len(ids):].tolist()
    timed(new)  # warm-up
    one = min(timed(1)[0] for _ in range(rounds))
    runs = [timed(new) for _ in range(rounds)]
    full = min(t for t, _ in runs)
    return (new - 1) / (full - one), one, runs[0][1]


def machine():
    """The architecture, core count and CPU model name."""
    cpu = "?"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).strip()
    except (OSError, AttributeError):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores: {cpu}"


def load_text(before):
    """The load average at the start (`before`, os.getloadavg()) and now."""
    return (f"load average before {before[0]:.2f}, {before[1]:.2f}, {before[2]:.2f}; after "
            + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (the cores are shared with other work)")


def blas_core(dlconvert):
    r = subprocess.run([dlconvert, "bench", os.path.join(ROOT, "fixtures", "models", "mlp.onnx"), "--json", "--seconds", "0.1"],
                       capture_output=True, text=True)
    try:
        return json.loads(r.stdout).get("blas_core", "?")
    except json.JSONDecodeError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    ap.add_argument("--new", type=int, default=64, help="new tokens")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prefill", default="8,32,128,512", help="prompt lengths timed with and without packs, comma-separated")
    a = ap.parse_args()
    import torch
    import transformers
    from tokenizers import Tokenizer
    dlconvert = os.path.join(a.bin, "dlconvert")
    tok = Tokenizer.from_file(os.path.join(ROOT, "fixtures", "hf", "gpt2", "tokenizer.json"))
    words = "the quick brown fox jumps over the lazy dog while a small cat watches from the old wooden fence".split()

    def prompt_of(n):
        prompt = ""
        for w in words * (n // 4 + 8):
            if len(tok.encode(prompt + " " + w).ids) > n:
                break
            prompt = (prompt + " " + w).strip()
        return prompt
    prompt = prompt_of(a.prompt)
    ids = tok.encode(prompt).ids
    load = os.getloadavg()
    mapped_env = {"DLKIT_PACK_MAPPED_MIN_ROWS": NEVER}  # the default, asked for explicitly
    packed_env = {"DLKIT_PACK_MAPPED_MIN_ROWS": "0"}
    rows, packing, prefill = [], [], []
    with tempfile.TemporaryDirectory(prefix="dlkit-hf-decoder-") as tmp:
        for name, (arch, config) in MODELS.items():
            folder, model = make_folder(tmp, arch, config)
            weights = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors"))
            for threads in [int(t) for t in a.threads.split(",")]:
                o, o_first, o_ids, o_rss = ours(dlconvert, folder, prompt, a.new, threads, a.rounds, env=mapped_env)
                g, _, g_ids, _ = ours(dlconvert, folder, prompt, a.new, threads, a.rounds, ["--growing-cache"], env=mapped_env)
                if threads == min(int(t) for t in a.threads.split(",")):
                    pk, _, pk_ids, pk_rss = ours(dlconvert, folder, prompt, a.new, threads, a.rounds, env=packed_env)
                    packing.append(f"| {name} | {threads} | {weights / 1e6:.0f} MB | {o:.1f} | {o_rss[0] / 1e6:.0f} MB | {o_rss[1] / 1e6:.0f} MB | "
                                   f"{pk:.1f} | {pk_rss[0] / 1e6:.0f} MB | {pk_rss[1] / 1e6:.0f} MB | {o / pk:.2f} |"
                                   + ("" if pk_ids == o_ids else " (tokens differ)"))
                    print(packing[-1], flush=True)
                    for n in [int(x) for x in a.prefill.split(",") if x]:
                        text_n = prompt_of(n)
                        _, u_first, u_ids, _ = ours(dlconvert, folder, text_n, 2, threads, a.rounds, env=mapped_env)
                        _, p_first, p_ids, _ = ours(dlconvert, folder, text_n, 2, threads, a.rounds, env=packed_env)
                        prefill.append(f"| {name} | {threads} | {len(tok.encode(text_n).ids)} | {u_first * 1000:.1f} | {p_first * 1000:.1f} | "
                                       f"**{p_first / u_first:.2f}** |" + ("" if p_ids == u_ids else " (tokens differ)"))
                        print(prefill[-1], flush=True)
                t, t_first, t_ids = transformers_side(model, ids, a.new, threads, a.rounds)
                same = "yes" if o_ids == t_ids else f"first {next((i for i, (p, q) in enumerate(zip(o_ids, t_ids)) if p != q), len(o_ids))} equal"
                if g_ids != o_ids:
                    same += " (the growing cache's differ)"
                rows.append(f"| {name} | {threads} | {len(ids)} | {a.new} | {o:.1f} | {g:.1f} | {o / g:.2f} | {t:.1f} | **{o / t:.2f}** | "
                            f"{o_first * 1000:.0f} | {t_first * 1000:.0f} | {same} |")
                print(rows[-1], flush=True)
    text = "\n".join([
        HEADER + ": DLKit vs transformers (PyTorch)",
        "",
        f"Made by `scripts/bench/hf_decoder_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"({machine()}).",
        "",
        f"- OpenBLAS core (openblas_get_corename): **{blas_core(dlconvert)}**; torch {torch.__version__} "
        f"(intra-op threads = T), transformers {transformers.__version__}",
        f"- {load_text(load)}",
        "- batch 1, greedy, KV cache on both sides; decode tokens/s = tokens after the first over their time "
        "(prompt and loading excluded); best of "
        f"{a.rounds} rounds after a warm-up. Ratio > 1: DLKit is faster. First-token ms: the prompt's run.",
        "- models made from configs with seeded random weights (no eos: every token is generated); "
        "same tokens: whether both sides chose the same greedy ids.",
        "- DLKit's KV cache has a fixed capacity grown 32 slots at a time, so decode steps share one plan; "
        "`grown per token`: `dlconvert generate --growing-cache`, the cache concatenated one slot per step "
        "(new shapes, so a new plan, every step: how it ran before), in the same run.",
        "",
        "| model | threads | prompt | new tokens | DLKit tok/s | DLKit tok/s, grown per token | fixed / grown | transformers tok/s | DLKit / transformers | DLKit first-token ms | transformers first-token ms | same tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows, "",
        "**Mapped weights, packed or not** (the same binary, the same run): by default the Gemm/MatMul weights mapped "
        "from model.safetensors stay mapped, never copied: the AVX-512 kernels read them in place with the packed "
        "kernel's sums in its order, so the bits are those of the model from any other format "
        "(`DLKIT_PACK_MAPPED_MIN_ROWS=" + NEVER + "` asks for it explicitly); `DLKIT_PACK_MAPPED_MIN_ROWS=0` packs them "
        "into panels, a second copy beside the mapped file. Peaks of the `dlconvert generate` process's anonymous "
        "memory (packs, activations, KV cache: what is copied or computed) and of its resident file pages (the mapped "
        "weights), from /proc/PID/status.",
        "",
        "| model | threads | weights file | mapped tok/s | mapped: anonymous | mapped: file pages | packed tok/s | "
        "packed: anonymous | packed: file pages | mapped / packed speed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *packing, "",
        "The prompt's run (first-token ms, best of the rounds after a warm-up that builds the plan and any packs) on "
        "the mapped weights (the default) and on packed copies (`DLKIT_PACK_MAPPED_MIN_ROWS=0`). Ratio > 1: the mapped "
        "weights are faster.",
        "",
        "| model | threads | prompt tokens | mapped first-token ms | packed first-token ms | packed / mapped time |",
        "|---|---:|---:|---:|---:|---:|",
        *prefill, ""])
    old = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    keep = old.split(HEADER)[0].rstrip() + "\n\n" if old else ""
    with open(RESULTS, "w") as f:
        f.write(keep + text)
    print(text)


if __name__ == "__main__":
    main()
