"""Checks DLKit's output with the real tools: onnx.checker, ONNX Runtime, safetensors.

Run by scripts/test after the Swift tests, with the built dlconvert and dlserve:
    .venv/bin/python scripts/peer_checks.py .build/debug
Ends with the line "peer-checks: N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

import checks
from checks import check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug"))
MODELS = ["mlp", "cnn", "ops"]
RTOL, ATOL = 1e-5, 1e-6


def run(*args, stdin=None):
    r = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def reference(model):
    io = load_file(os.path.join(ROOT, "fixtures", "models", f"{model}.io.safetensors"))
    ins = {k[6:]: v for k, v in io.items() if k.startswith("input.")}
    outs = {k[7:]: v for k, v in io.items() if k.startswith("output.")}
    return ins, outs


def close(got, want, what):
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != {want.shape}")
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        raise AssertionError(f"{what}: max abs diff {np.abs(got - want).max()}")


def main():
    tmp = tempfile.mkdtemp(prefix="dlkit-peer-")
    for model in MODELS:
        src = os.path.join(ROOT, "fixtures", "models", f"{model}.onnx")
        ckpt = os.path.join(tmp, f"{model}.ckpt")
        back = os.path.join(tmp, f"{model}.onnx")
        st = os.path.join(tmp, f"{model}.safetensors")
        ins, outs = reference(model)

        def convert():
            run(os.path.join(BIN, "dlconvert"), src, ckpt)
            run(os.path.join(BIN, "dlconvert"), ckpt, back)
            run(os.path.join(BIN, "dlconvert"), src, st)
        check(f"{model}: dlconvert onnx -> ckpt -> onnx, onnx -> safetensors", convert)

        def checker():
            m = onnx.load(back)
            onnx.checker.check_model(m, full_check=True)
            if m.ir_version > 13:
                raise AssertionError(f"IR {m.ir_version} is newer than ONNX Runtime 1.31 loads")
        check(f"{model}: re-exported model passes onnx.checker full_check", checker)

        def ort_runs():
            sess = ort.InferenceSession(back, providers=["CPUExecutionProvider"])
            names = list(outs)
            for name, g in zip(names, sess.run(names, ins)):
                close(g, outs[name], name)
        check(f"{model}: re-exported model runs in ONNX Runtime with the same outputs", ort_runs)

        def weights_equal(path, what):
            original = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(src).graph.initializer}
            loaded = load_file(path)
            if set(loaded) != set(original):
                raise AssertionError(f"{what} names {sorted(loaded)} != {sorted(original)}")
            for k, v in original.items():
                if loaded[k].dtype != v.dtype or not np.array_equal(loaded[k], v):
                    raise AssertionError(f"{what} tensor {k} differs")
        check(f"{model}: safetensors.numpy.load_file opens the .ckpt with the ONNX weights",
              lambda: weights_equal(ckpt, "ckpt"))
        check(f"{model}: safetensors.numpy.load_file opens the .safetensors with the ONNX weights",
              lambda: weights_equal(st, "safetensors"))

        def serve():
            lines = []
            for n in range(ins[next(iter(ins))].shape[0]):
                inputs = [{"name": k, "shape": [1, *v.shape[1:]], "datatype": "FP32",
                           "data": v[n:n + 1].reshape(-1).tolist()} for k, v in ins.items()]
                lines.append(json.dumps({"id": str(n), "inputs": inputs}))
            out = run(os.path.join(BIN, "dlserve"), back, stdin="\n".join(lines) + "\n")
            answers = [json.loads(l) for l in out.splitlines()]
            if len(answers) != len(lines):
                raise AssertionError(f"{len(answers)} answers for {len(lines)} requests")
            for n, a in enumerate(answers):
                if a.get("id") != str(n) or "error" in a:
                    raise AssertionError(f"answer {n}: {a}")
                for o in a["outputs"]:
                    got = np.array(o["data"], dtype=np.float32).reshape(o["shape"])
                    close(got, outs[o["name"]][n:n + 1], f"request {n} output {o['name']}")
        check(f"{model}: dlserve answers match ONNX Runtime", serve)

    onnx_out_checks(tmp)
    torch_checks(tmp)
    keras_checks(tmp)
    training_checks(tmp)
    tensorflow_checks(tmp)

    return checks.summary("peer-checks")


# ---------------------------------------------------------------------------------------------
# ONNX out (issue 10): round trips at several opsets and with external data, weights bound onto a
# graph, and `dlconvert verify`. The round trip itself lives in scripts/onnx_roundtrip.py, which
# also takes any folder of models (the conformance suite).
# ---------------------------------------------------------------------------------------------
ROUNDTRIP_OPSETS = [7, 9, 11, 13, 18, 21, 26]


def onnx_out_checks(tmp):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx_roundtrip
    from safetensors.numpy import save_file

    dlconvert = os.path.join(BIN, "dlconvert")
    for model in MODELS:
        src = os.path.join(ROOT, "fixtures", "models", f"{model}.onnx")
        out_dir = os.path.join(tmp, f"roundtrip-{model}")
        os.makedirs(out_dir, exist_ok=True)
        for what, status, msg in onnx_roundtrip.roundtrip(src, BIN, ROUNDTRIP_OPSETS, True, out_dir):
            def result(status=status, msg=msg):
                if status != "ok":
                    raise AssertionError(f"{status}: {msg}")
            check(f"{what}: onnx.checker full_check, IR <= 13, ONNX Runtime outputs equal", result)

        feeds = onnx_roundtrip.inputs_for(src, onnx.load(src))
        want = onnx_roundtrip.run_ort(src, feeds)

        def all_external():
            # Threshold 0: every tensor in the data file but small integer ones (shapes), which
            # ONNX Runtime must read while loading.
            d = os.path.join(tmp, f"ext0-{model}")
            os.makedirs(d, exist_ok=True)
            out = os.path.join(d, f"{model}.onnx")
            run(dlconvert, src, out, "--external-data", "--external-threshold", "0")
            m = onnx.load(out, load_external_data=False)
            ext = [i for i in m.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
            inline = [i.name for i in m.graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL
                      and not (i.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and len(i.raw_data) <= 1024)]
            if inline or not ext:
                raise AssertionError(f"inline: {inline}, external: {len(ext)}")
            for i in ext:
                kv = {e.key: e.value for e in i.external_data}
                if kv["location"] != f"{model}.onnx.data" or int(kv["offset"]) % 4096:
                    raise AssertionError(f"{i.name}: {kv}")
            onnx.checker.check_model(out)
            onnx_roundtrip.same_outputs(onnx_roundtrip.run_ort(out, feeds), want, "external data")
        check(f"{model}: ONNX Runtime runs the model with all weights as 4096-aligned external data", all_external)

        def bound_weights():
            # New weights (the originals halved) bound onto the graph by name must give what
            # ONNX Runtime gives for the original model with those initializers swapped in.
            orig = onnx.load(src)
            halves = {i.name: onnx.numpy_helper.to_array(i) for i in orig.graph.initializer}
            halves = {k: (v * 0.5).astype(v.dtype) if v.dtype.kind == "f" else v for k, v in halves.items()}
            st = os.path.join(tmp, f"{model}-half.safetensors")
            save_file(halves, st)
            out = os.path.join(tmp, f"{model}-half.onnx")
            run(dlconvert, st, out, "--graph", src)
            for i in orig.graph.initializer:
                i.CopyFrom(onnx.numpy_helper.from_array(halves[i.name], i.name))
            ref = os.path.join(tmp, f"{model}-half-ref.onnx")
            onnx.save(orig, ref)
            onnx.checker.check_model(out, full_check=True)
            onnx_roundtrip.same_outputs(onnx_roundtrip.run_ort(out, feeds), onnx_roundtrip.run_ort(ref, feeds), "bound")
            # dlconvert verify agrees: same model passes, the halved one differs (exit 1).
            shapes = []
            for vi in orig.graph.input:
                if vi.name in halves:
                    continue
                dims = [str(d.dim_value) if d.HasField("dim_value") else "2" for d in vi.type.tensor_type.shape.dim]
                shapes += ["--input-shape", f"{vi.name}={','.join(dims)}"]
            run(dlconvert, "verify", out, ref, *shapes)
            r = subprocess.run([dlconvert, "verify", src, out, *shapes], capture_output=True, text=True)
            if r.returncode != 1 or "OVER TOLERANCE" not in r.stdout:
                raise AssertionError(f"verify of different weights exited {r.returncode}: {r.stdout}")
        check(f"{model}: weights bound with --graph run in ONNX Runtime like swapped initializers; verify tells", bound_weights)

        def binding_errors():
            orig = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(src).graph.initializer}
            names = list(orig)
            bad = dict(orig)
            del bad[names[0]]
            bad["not.in.graph"] = np.zeros(3, np.float32)
            bad[names[1]] = np.zeros((7, 7), np.float32)
            st = os.path.join(tmp, f"{model}-bad.safetensors")
            save_file(bad, st)
            out = os.path.join(tmp, f"{model}-bad.onnx")
            r = subprocess.run([dlconvert, st, out, "--graph", src], capture_output=True, text=True)
            if r.returncode != 1 or os.path.exists(out) or r.stderr.count("\n") != 1:
                raise AssertionError(f"exit {r.returncode}, file left: {os.path.exists(out)}, stderr {r.stderr!r}")
            for n in (names[0], "not.in.graph", names[1]):
                if f"'{n}'" not in r.stderr:
                    raise AssertionError(f"{n} not named in {r.stderr!r}")
        check(f"{model}: one error names every missing, extra and mismatched weight; no file left", binding_errors)


# ---------------------------------------------------------------------------------------------
# PyTorch (issue 4): files dlconvert writes load with torch.load(weights_only=True) and with the
# safetensors package to the values torch itself reads from the source; optimizer state survives
# a trip through DLKit into optimizer.load_state_dict.
# ---------------------------------------------------------------------------------------------

def torch_checks(tmp):
    try:
        import torch
        from safetensors.torch import load_file as torch_load_file
    except ImportError as e:  # torch is in scripts/requirements.txt; report rather than skip
        check("torch: import torch", lambda: (_ for _ in ()).throw(e))
        return
    dlconvert = os.path.join(BIN, "dlconvert")
    fixtures = os.path.join(ROOT, "fixtures", "torch")

    def same(got, want, what):
        if list(got.keys()) != list(want.keys()) and set(got.keys()) != set(want.keys()):
            raise AssertionError(f"{what}: names {sorted(got)} != {sorted(want)}")
        for k, w in want.items():
            g = got[k]
            if g.dtype != w.dtype or g.shape != w.shape:
                raise AssertionError(f"{what}: {k} is {g.dtype} {tuple(g.shape)}, torch reads {w.dtype} {tuple(w.shape)}")
            if not torch.equal(g, w):
                raise AssertionError(f"{what}: {k} differs")

    def torch_reference(name, key=None):
        """What torch reads from a fixture: contiguous tensors, complex as view_as_real."""
        if name == "scripted.pt":
            sd = torch.jit.load(os.path.join(fixtures, name)).state_dict()
        else:
            sd = torch.load(os.path.join(fixtures, name), weights_only=True, map_location="cpu")
        if key:
            for part in key.split("."):
                sd = sd[part]
        return {k: (torch.view_as_real(v) if v.is_complex() else v).detach().contiguous() for k, v in sd.items()}

    for name, key in [("state_dict.pt", None), ("legacy.pt", None), ("python2.pt", None), ("scripted.pt", None),
                      ("checkpoint.pt", "model"), ("bigendian.pt", None)]:
        src = os.path.join(fixtures, name)
        base = name[:-3]
        pt = os.path.join(tmp, f"{base}.out.pt")
        st = os.path.join(tmp, f"{base}.out.safetensors")

        def convert(src=src, pt=pt, st=st, key=key):
            extra = ["--key", key] if key else []
            run(dlconvert, src, pt, *extra)
            run(dlconvert, src, st, *extra)
        check(f"torch {name}: dlconvert -> .pt and -> .safetensors", convert)
        check(f"torch {name}: torch.load(weights_only=True) of our .pt equals torch's own read",
              lambda pt=pt, name=name, key=key: same(torch.load(pt, weights_only=True), torch_reference(name, key), pt))
        check(f"torch {name}: safetensors.torch.load_file of our .safetensors equals torch's own read",
              lambda st=st, name=name, key=key: same(torch_load_file(st), torch_reference(name, key), st))

    def sharded():
        out = os.path.join(tmp, "sharded.pt")
        run(dlconvert, os.path.join(fixtures, "sharded", "model.safetensors.index.json"), out)
        want = {}
        for f in sorted(os.listdir(os.path.join(fixtures, "sharded"))):
            if f.endswith(".safetensors"):
                want.update(torch_load_file(os.path.join(fixtures, "sharded", f)))
        same(torch.load(out, weights_only=True), want, out)
    check("torch: sharded safetensors -> .pt loads in torch with every shard's tensors", sharded)

    def optimizer_round_trip():
        # dlconvert keeps the whole checkpoint's tensors under dotted names; rebuild the optimizer
        # state from them the way a resumed run would and load it into a fresh torch optimizer.
        src = os.path.join(fixtures, "checkpoint.pt")
        flat = os.path.join(tmp, "ckpt.flat.safetensors")
        run(dlconvert, src, flat)
        got = torch_load_file(flat)
        ref = torch.load(src, weights_only=True)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        model.load_state_dict({k[6:]: v for k, v in got.items() if k.startswith("model.")})
        opt = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
        state = {}
        for k, v in got.items():
            if k.startswith("optimizer.state."):
                i, slot = k[len("optimizer.state."):].split(".", 1)
                state.setdefault(int(i), {})[slot] = v
        opt.load_state_dict({"state": state, "param_groups": ref["optimizer"]["param_groups"]})
        for i, st in ref["optimizer"]["state"].items():
            for k, v in st.items():
                if not torch.equal(opt.state_dict()["state"][i][k], v):
                    raise AssertionError(f"optimizer state {i}.{k} differs")
        model(torch.randn(2, 3)).sum().backward()
        opt.step()
    check("torch: Adam state read by dlconvert loads into optimizer.load_state_dict and steps", optimizer_round_trip)



# ---------------------------------------------------------------------------------------------
# Keras (issue 5): the fixtures in fixtures/keras converted by dlconvert to ONNX (run in ONNX
# Runtime), served by dlserve, and their weights written back as .weights.h5 / .h5 (directly and
# through a .ckpt) loaded by Keras 3 and tf_keras: weights bit-identical, outputs as Keras's.
# ---------------------------------------------------------------------------------------------
KERAS_MODELS = ["cnn", "functional", "separable", "bigru", "nested", "attention"]


def keras_checks(tmp):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tf_keras
    except Exception as e:  # noqa: BLE001 - report the missing peer as a failure
        check("keras: import keras and tf_keras", lambda: (_ for _ in ()).throw(e))
        return
    fx = os.path.join(ROOT, "fixtures", "keras")
    dlconvert, dlserve = os.path.join(BIN, "dlconvert"), os.path.join(BIN, "dlserve")

    def io(m):
        d = load_file(os.path.join(fx, f"{m}.io.safetensors"))
        ins = {k[6:]: v for k, v in d.items() if k.startswith("input:")}
        outs = dict(sorted((k[7:], v) for k, v in d.items() if k.startswith("output:")))
        return ins, outs

    def predict(model, ins):
        """Keras's outputs in the order of `outs` (sorted names), inputs fed in the model's order."""
        names = getattr(model, "input_names", None) or [t.name for t in model.inputs]
        xs = [ins[n] for n in names]
        ys = model.predict(xs[0] if len(xs) == 1 else xs, verbose=0)
        ys = ys if isinstance(ys, list) else [ys]
        by_name = dict(zip(model.output_names, ys))
        return [by_name[n] for n in sorted(by_name)]

    def leaf_weights(model):
        """Weights layer by layer through nested models (a nested model's get_weights order
        differs between Keras 3 and tf_keras: tf_keras lists its trainable weights first)."""
        out = []
        for layer in model.layers:
            out += leaf_weights(layer) if hasattr(layer, "layers") else layer.get_weights()
        return out

    for m in KERAS_MODELS:
        ins, outs = io(m)
        reference = leaf_weights(keras.saving.load_model(os.path.join(fx, f"{m}.keras")))

        def loads_exactly(src, out, loader, m=m, ins=ins, outs=outs, reference=reference):
            path = os.path.join(tmp, out)
            run(dlconvert, src, path)
            model = loader()
            model.set_weights([np.zeros_like(w) for w in model.get_weights()])
            model.load_weights(path)
            got_weights = leaf_weights(model)
            if len(got_weights) != len(reference):
                raise AssertionError(f"{len(got_weights)} weights, expected {len(reference)}")
            for i, (a, b) in enumerate(zip(got_weights, reference)):
                if a.shape != b.shape or not np.array_equal(a, b):
                    raise AssertionError(f"weight {i} differs after load_weights")
            for got, (name, want) in zip(predict(model, ins), outs.items()):
                close(np.asarray(got), want, name)

        k3 = lambda m=m: keras.saving.load_model(os.path.join(fx, f"{m}.keras"))
        k2 = lambda m=m: tf_keras.models.load_model(os.path.join(fx, f"{m}.tf.h5"))
        src_h5, src_keras, src_tf = (os.path.join(fx, f"{m}.{v}") for v in ["h5", "keras", "tf.h5"])
        check(f"keras: {m}.h5 -> .weights.h5 loads in Keras 3 exactly",
              lambda: loads_exactly(src_h5, f"{m}.a.weights.h5", k3))
        check(f"keras: {m}.keras -> legacy .h5 loads in Keras 3 exactly",
              lambda: loads_exactly(src_keras, f"{m}.b.h5", k3))
        check(f"keras: {m}.tf.h5 -> legacy .h5 loads in tf_keras exactly",
              lambda: loads_exactly(src_tf, f"{m}.c.h5", k2))

        def via_ckpt(m=m, src=src_keras):
            ck = os.path.join(tmp, f"{m}.keras.ckpt")
            run(dlconvert, src, ck)
            loads_exactly(ck, f"{m}.d.weights.h5", k3)
        check(f"keras: {m}.keras -> .ckpt -> .weights.h5 loads in Keras 3 exactly", via_ckpt)

        def onnx_in_ort(m=m, ins=ins, outs=outs):
            for v in ["h5", "keras", "tf.h5"]:
                path = os.path.join(tmp, f"{m}.{v}.onnx")
                run(dlconvert, os.path.join(fx, f"{m}.{v}"), path)
                onnx.checker.check_model(onnx.load(path))
                s = ort.InferenceSession(path)
                got = s.run(list(outs), {i.name: ins[i.name] for i in s.get_inputs()})
                for g, (name, want) in zip(got, outs.items()):
                    close(g, want, f"{v} {name}")
        check(f"keras: {m} (.h5, .keras, .tf.h5) -> ONNX passes onnx.checker and matches Keras in ONNX Runtime", onnx_in_ort)

        def served(m=m, ins=ins, outs=outs):
            req = {"id": "k", "inputs": [{"name": n, "shape": list(x.shape),
                                          "datatype": "INT32" if x.dtype == np.int32 else "FP32",
                                          "data": x.flatten().tolist()} for n, x in ins.items()]}
            for args in [[os.path.join(fx, f"{m}.keras")],
                         [os.path.join(fx, f"{m}.weights.h5"), "--graph", os.path.join(fx, f"{m}.h5")]]:
                answer = json.loads(run(dlserve, *args, stdin=json.dumps(req) + "\n").strip())
                if "error" in answer:
                    raise AssertionError(answer["error"])
                got = {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in answer["outputs"]}
                for name, want in outs.items():
                    close(got[name], want, f"dlserve {name}")
        check(f"keras: dlserve {m}.keras and {m}.weights.h5 --graph {m}.h5 answer as Keras", served)

    # The layer zoos: every weight layout (Conv2DTranspose, PReLU, TimeDistributed, SimpleRNN,
    # Bidirectional LSTM, shared layers, GroupNormalization, Conv3D, ...) written back exactly.
    for m in ["zoo_sequence", "zoo_image", "zoo_merge", "zoo_volume", "zoo_resize"]:
        ins, outs = io(m)
        src = os.path.join(fx, f"{m}.keras")
        reference = keras.saving.load_model(src).get_weights()
        loaders = [("Keras 3", ".weights.h5", lambda src=src: keras.saving.load_model(src)),
                   ("Keras 3", ".h5", lambda src=src: keras.saving.load_model(src))]
        if m != "zoo_volume":  # its tf_keras file holds a bytecode Lambda DLKit refuses
            loaders.append(("tf_keras", ".h5", lambda m=m: tf_keras.models.load_model(os.path.join(fx, f"{m}.tf.h5"))))
        for who, ext, loader in loaders:
            def zoo(m=m, ext=ext, loader=loader, src=src, reference=reference, ins=ins, outs=outs, who=who):
                path = os.path.join(tmp, f"{m}.{who.replace(' ', '')}{ext}")
                run(dlconvert, src, path)
                model = loader()
                model.set_weights([np.zeros_like(w) for w in model.get_weights()])
                model.load_weights(path)
                for i, (a, b) in enumerate(zip(model.get_weights(), reference)):
                    if a.shape != b.shape or not np.array_equal(a, b):
                        raise AssertionError(f"weight {i} differs after load_weights")
                if who == "Keras 3":
                    for got, (name, want) in zip(predict(model, ins), outs.items()):
                        close(np.asarray(got), want, name)
            check(f"keras: {m}.keras -> {ext} loads in {who} exactly", zoo)
# ---------------------------------------------------------------------------------------------
# Training (issue 6): a run trained by dltrain and handed back with `dlconvert run.ckpt model.pt
# --optimizer-out opt.pt` continues in torch (model.load_state_dict + optimizer.load_state_dict)
# to PyTorch's own numbers (fixtures/training, scripts/fixtures/make_training.py).
# ---------------------------------------------------------------------------------------------
def training_checks(tmp):
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location("make_training", os.path.join(ROOT, "scripts", "fixtures", "make_training.py"))
    mt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mt)
    fixtures = os.path.join(ROOT, "fixtures", "training")
    torch.set_num_threads(1)

    def hand_back(model, kind):
        hyper = mt.HYPER[kind]
        run_ckpt = os.path.join(tmp, f"train.{model}.{kind}.ckpt")
        flags = ["--lr", str(hyper["lr"]), "--weight-decay", str(hyper["weight_decay"])]
        if kind == "sgd":
            flags += ["--momentum", str(hyper["momentum"]), "--nesterov"]
        elif kind == "rmsprop":
            flags += ["--alpha", str(hyper["alpha"]), "--eps", str(hyper["eps"]), "--momentum", str(hyper["momentum"]), "--centered"]
        else:
            flags += ["--betas", ",".join(str(b) for b in hyper["betas"]), "--eps", str(hyper["eps"])]
            if hyper.get("amsgrad"):
                flags += ["--amsgrad"]
        run(os.path.join(BIN, "dltrain"), os.path.join(fixtures, f"{model}.onnx"), "--data",
            os.path.join(fixtures, f"{model}.data.safetensors"), "--input", "x", "--target", "y", "--loss", "cross_entropy",
            "--batch-size", "16", "--no-shuffle", "--steps", "20", "--optimizer", kind, *flags, "--out", run_ckpt)
        pt, opt_pt = os.path.join(tmp, f"train.{model}.{kind}.pt"), os.path.join(tmp, f"train.{model}.{kind}.opt.pt")
        run(os.path.join(BIN, "dlconvert"), run_ckpt, pt, "--optimizer-out", opt_pt)
        net = {"mlp": mt.MLP, "cnn": mt.CNN}[model]()
        net.load_state_dict(torch.load(pt, weights_only=True))
        opt = mt.make_optimizer(kind, net.parameters())
        opt.load_state_dict(torch.load(opt_pt, weights_only=True))
        data = load_file(os.path.join(fixtures, f"{model}.data.safetensors"))
        x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
        for step in range(20, 40):
            lo = (step % (mt.N // mt.BATCH)) * mt.BATCH
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[lo:lo + mt.BATCH]), y[lo:lo + mt.BATCH]).backward()
            opt.step()
        want = load_file(os.path.join(fixtures, f"{model}.{kind}.safetensors"))
        worst = 0.0
        for k, v in net.state_dict().items():
            w = want[f"step40.{k}"]
            worst = max(worst, float(np.abs(v.numpy() - w).max() / np.abs(w).max()))
        if worst > 1e-5:
            raise AssertionError(f"step 40 differs from torch by {worst:.2e} (relative)")

    for model in ["mlp", "cnn"]:
        for kind in ["sgd", "rmsprop", "adam", "adamw"]:
            check(f"training: {model} {kind}: dltrain 20 steps, handed to torch by --optimizer-out, 20 more match torch",
                  lambda model=model, kind=kind: hand_back(model, kind))


# ---------------------------------------------------------------------------------------------
# TensorFlow (issue 22): SavedModels with TF1 while_loop frames, TF1 partitioned variables and TF2
# While/If, converted to ONNX, pass onnx.checker and give TensorFlow's outputs in ONNX Runtime
# (fixtures/tensorflow/NAME.expected.safetensors, written by TensorFlow 2.21).
# ---------------------------------------------------------------------------------------------
def tensorflow_checks(tmp):
    for name in ["tf1_loop", "tf1_partitioned", "control"]:
        def onnx_runs(name=name):
            out = os.path.join(tmp, f"tf_{name}.onnx")
            run(os.path.join(BIN, "dlconvert"), os.path.join(ROOT, "fixtures", "tensorflow", name), out)
            onnx.checker.check_model(onnx.load(out), full_check=True)
            io = load_file(os.path.join(ROOT, "fixtures", "tensorflow", f"{name}.expected.safetensors"))
            ins = {k[6:]: v for k, v in io.items() if k.startswith("input:")}
            sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            for n, got in zip(names, sess.run(names, ins)):
                want = io[f"output:{n}"]
                if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                    raise AssertionError(f"{n}: max abs diff {np.abs(got - want).max() if got.shape == want.shape else got.shape}")
        check(f"tensorflow: {name} SavedModel -> ONNX passes onnx.checker, ONNX Runtime gives TensorFlow's outputs", onnx_runs)


if __name__ == "__main__":
    sys.exit(main())
