#!/usr/bin/env python3
"""TF.js layers-models written by `dlconvert MODEL OUT/model.json`, checked with tensorflowjs itself.

For Keras 3 `.keras` files and tf_keras `.h5` files made here (Sequential, Functional with
branches and merges, nested models, several inputs and outputs, BatchNormalization, depthwise and
separable convolutions, Embedding, LSTM, GRU, Bidirectional, and a model whose weights span two
4 MiB shards), each written model.json is loaded by tensorflowjs 4.22's own loader
(`tensorflowjs.converters.keras_tfjs_loader.load_keras_model`, which builds the model in tf_keras
and sets the weights by name from the shards; the loader behind
`tensorflowjs_converter --input_format tfjs_layers_model`), and its outputs are compared with the
source model's (rtol 1e-5). For the `.h5` models, tensorflowjs's own `save_keras_model` output is
compared too: the same model config, and the same weights by name, shape, dtype and value.

tensorflowjs is not in the project's lock (its requirements pull TF Decision Forests, JAX and TF
Hub). This script fetches its wheel (pure Python) with `pip download --no-deps`, pinned by sha256,
unpacks it under .build/tfjs/ and imports it from there, with the three unused imports stubbed.

What this does not prove: that tfjs-layers in JavaScript loads the files (no Node registry here);
the files follow the layout tensorflowjs writes for the same models, which is what it reads.

    .venv/bin/python scripts/tfjs_checks.py "$(swift build --show-bin-path)"
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL = ("tensorflowjs", "4.22.0", "bd4deb1e7feab538ee7f2625fe85446742bb4765bebab345b534688ab41e3e1c")
SITE = os.path.join(ROOT, ".build", "tfjs", f"{WHEEL[0]}-{WHEEL[1]}")
SHARD = 4 * 1024 * 1024
# What cannot be written, and the words of the one-line refusal: layers of nested models that
# tf_keras names alike (TF.js matches weights by name), Keras 3's redefined hard_sigmoid, Lambdas.
REFUSED = {("nested", "keras"): "both named 'dense/kernel'", ("nested", "tf.h5"): "both named 'dense/kernel'",
           ("zoo_merge", "keras"): "'hard_sigmoid' is Keras 3's", ("zoo_volume", "keras"): "Lambda",
           ("zoo_volume", "tf.h5"): "Lambda"}
KERAS_FIXTURES = ["cnn", "functional", "separable", "bigru", "nested", "zoo_image", "zoo_merge", "zoo_resize", "zoo_sequence", "zoo_volume"]


def import_tensorflowjs():
    """tensorflowjs from its pinned wheel, unpacked once under .build/tfjs/."""
    marker = os.path.join(SITE, ".sha256")
    if not (os.path.exists(marker) and open(marker).read() == WHEEL[2]):
        tmp = tempfile.mkdtemp(prefix="dlkit-tfjs-")
        try:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
                                "--disable-pip-version-check", f"{WHEEL[0]}=={WHEEL[1]}", "-d", tmp], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"pip download {WHEEL[0]}=={WHEEL[1]} failed: {r.stderr.strip()[-400:]}")
            (wheel,) = [os.path.join(tmp, f) for f in os.listdir(tmp)]
            got = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
            if got != WHEEL[2]:
                raise RuntimeError(f"{wheel}: sha256 {got} != pinned {WHEEL[2]}")
            shutil.rmtree(SITE, ignore_errors=True)
            with zipfile.ZipFile(wheel) as z:
                z.extractall(SITE)
            with open(marker, "w") as f:
                f.write(WHEEL[2])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for name in ["tensorflow_decision_forests", "tensorflow_hub"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    jax_stub = types.ModuleType("tensorflowjs.converters.jax_conversion")
    jax_stub.convert_jax = None
    sys.modules.setdefault("tensorflowjs.converters.jax_conversion", jax_stub)
    sys.path.insert(0, SITE)
    import tensorflowjs
    from tensorflowjs.converters import keras_tfjs_loader
    from tensorflowjs import read_weights
    assert tensorflowjs.__version__ == WHEEL[1], tensorflowjs.__version__
    return tensorflowjs, keras_tfjs_loader, read_weights


rng = np.random.default_rng(22)


def randomise(model):
    """Every weight random (BatchNormalization variances positive), so every weight matters."""
    for w in model.weights:
        v = rng.standard_normal(tuple(w.shape)).astype(w.dtype.name if hasattr(w.dtype, "name") else w.dtype) * 0.5
        if "variance" in w.name:
            v = np.abs(v) + 0.5
        w.assign(v)


def keras3_models():
    import keras
    from keras import layers as L
    out = {}
    out["k3_mlp"] = keras.Sequential([keras.Input((6,), name="features"), L.Dense(16, activation="tanh", name="d1"),
                                      L.Dropout(0.2), L.Dense(8, activation="sigmoid", name="d2"), L.Dense(3, name="d3")], name="mlp")
    x = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    a = L.BatchNormalization(name="bn")(a)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(a)
    c = L.SeparableConv2D(8, 3, padding="same", name="sep")(a)
    m = L.Add(name="add")([b, c])
    m = L.LeakyReLU(negative_slope=0.2, name="leaky")(m)
    m = L.ZeroPadding2D(1, name="pad")(m)
    m = L.MaxPooling2D(2, name="pool")(m)
    m = L.Concatenate(name="cat")([m, L.AveragePooling2D(2, name="avg")(L.ZeroPadding2D(1, name="pad2")(L.Conv2D(3, 1, name="proj")(a)))])
    y = L.Dense(4, activation="softmax", name="head")(L.GlobalAveragePooling2D(name="gap")(m))
    out["k3_cnn"] = keras.Model(x, y, name="cnn")
    t = keras.Input((7,), dtype="int32", name="tokens")
    e = L.Embedding(11, 4, name="emb")(t)
    r = L.LSTM(6, return_sequences=True, name="lstm")(e)
    r = L.Bidirectional(L.GRU(3, name="gru"), name="bi")(r)
    out["k3_rnn"] = keras.Model(t, L.Dense(2, name="out")(r), name="rnn")
    inner = keras.Sequential([keras.Input((4,)), L.Dense(5, activation="relu", name="in1"), L.Dense(3, name="in2")], name="inner")
    x1, x2 = keras.Input((4,), name="x1"), keras.Input((2,), name="x2")
    h = L.Concatenate(name="join")([inner(x1), L.Dense(3, name="side")(x2)])
    out["k3_nested"] = keras.Model([x1, x2], [L.Dense(2, name="p")(h), L.Dense(1, activation="sigmoid", name="q")(h)], name="nested")
    x = keras.Input((12, 6), name="signal")
    a = L.Conv1D(8, 3, padding="same", name="c1d")(x)
    a = L.LayerNormalization(name="ln")(a)
    a = L.PReLU(name="prelu")(a)
    b = L.SimpleRNN(8, return_sequences=True, name="srnn")(x)
    a = L.Multiply(name="mul")([a, L.Activation("sigmoid", name="gate")(b)])
    a = L.TimeDistributed(L.Dense(4, name="td_dense"), name="td")(a)
    a = L.Reshape((12, 4, 1), name="to2d")(a)
    a = L.UpSampling2D((1, 2), name="up")(a)
    a = L.Conv2DTranspose(3, 3, strides=(1, 1), padding="same", name="deconv")(a)
    a = L.Cropping2D(((1, 1), (2, 2)), name="crop")(a)
    a = L.ELU(name="elu")(a)
    a = L.GroupNormalization(groups=3, name="gn")(a)
    p = L.Permute((2, 1, 3), name="perm")(a)
    g1, g2 = L.GlobalMaxPooling2D(name="gmp")(p), L.GlobalAveragePooling2D(name="gap2")(a)
    m = L.Average(name="avg")([L.Maximum(name="max")([g1, g2]), L.Minimum(name="min")([g1, g2]), L.Subtract(name="sub")([g1, g2])])
    m = L.Rescaling(0.5, offset=0.1, name="rescale")(L.ReLU(max_value=6.0, name="relu6")(m))
    d = L.Dot(axes=1, name="dot")([L.Dense(3, name="da")(m), L.Dense(3, name="db")(g1)])
    y = L.Softmax(name="soft")(L.Concatenate(name="cat")([m, d, L.Flatten(name="flat")(L.RepeatVector(2, name="rep")(d))]))
    out["k3_zoo"] = keras.Model(x, y, name="zoo")
    out["k3_big"] = keras.Sequential([keras.Input((1100,), name="wide"), L.Dense(1000, name="big"), L.Dense(2, name="small")], name="big")
    return out


def tf_keras_models():
    import tf_keras as keras
    from tf_keras import layers as L
    out = {}
    out["tk_cnn"] = keras.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3), name="c1"), L.BatchNormalization(name="bn"),
                                      L.DepthwiseConv2D(3, padding="same", name="dw"), L.MaxPooling2D(name="mp"), L.Flatten(name="flat"),
                                      L.Dense(5, activation="softmax", name="fc")], name="tk_cnn")
    inner = keras.Sequential([L.Dense(5, activation="relu", input_shape=(4,), name="a"), L.Dense(3, name="b")], name="inner")
    x = keras.Input((4,), name="x")
    h = inner(x)
    out["tk_nested"] = keras.Model(x, [L.Dense(2, name="p")(h), L.Add(name="sum")([h, L.Dense(3, name="q")(x)])], name="tk_nested")
    t = keras.Input((6, 3), name="seq")
    r = L.LSTM(5, return_sequences=True, name="lstm")(t)
    out["tk_rnn"] = keras.Model(t, L.Dense(2, name="out")(L.GRU(4, name="gru")(r)), name="tk_rnn")
    return out


def sample_inputs(model):
    xs = []
    for i in model.inputs:
        shape = [2 if d is None else d for d in i.shape]
        dtype = i.dtype if isinstance(i.dtype, str) else i.dtype.name
        xs.append(rng.integers(0, 11, shape).astype(dtype) if "int" in dtype else rng.standard_normal(shape).astype("float32"))
    return xs


def outputs(model, xs):
    y = model(xs if len(xs) > 1 else xs[0])
    return [np.asarray(v) for v in (y if isinstance(y, (list, tuple)) else [y])]


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug")
    dlconvert = os.path.join(bin_dir, "dlconvert")
    tfjs, loader, read_weights = import_tensorflowjs()
    passed, failed = 0, 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        passed += ok
        failed += not ok

    work = tempfile.mkdtemp(prefix="dlkit-tfjs-checks-")
    try:
        models = {}
        for name, m in keras3_models().items():
            randomise(m)
            path = os.path.join(work, name + ".keras")
            m.save(path)
            models[name] = (m, path)
        for name, m in tf_keras_models().items():
            randomise(m)
            path = os.path.join(work, name + ".h5")
            m.save(path)
            models[name] = (m, path)
        for name, (m, path) in models.items():
            out_json = os.path.join(work, name, "model.json")
            r = subprocess.run([dlconvert, path, out_json], capture_output=True, text=True)
            if r.returncode != 0:
                check(f"{name}: dlconvert", False, r.stderr.strip()[-400:])
                continue
            try:
                loaded = loader.load_keras_model(out_json)
            except Exception as e:  # noqa: BLE001 - report any loader refusal as a failure
                check(f"{name}: tensorflowjs loads it", False, f"{type(e).__name__}: {str(e)[:400]}")
                continue
            xs = sample_inputs(m)
            want, got = outputs(m, xs), outputs(loaded, xs)
            ok = len(want) == len(got) and all(w.shape == g.shape and np.allclose(g, w, rtol=1e-5, atol=1e-6) for w, g in zip(want, got))
            diff = max((float(np.max(np.abs(g - w))) for w, g in zip(want, got) if w.shape == g.shape), default=-1.0)
            check(f"{name}: tensorflowjs loads it, outputs equal the source model's", ok, f"max |diff| {diff:.2e}")
            manifest = json.load(open(out_json))["weightsManifest"]
            paths = [p for g in manifest for p in g["paths"]]
            sizes = [os.path.getsize(os.path.join(work, name, p)) for p in paths]
            total = sum(int(np.prod(w["shape"])) * 4 for g in manifest for w in g["weights"])
            want_n = max(1, -(-total // SHARD))
            ok = paths == [f"group1-shard{i}of{want_n}.bin" for i in range(1, want_n + 1)] and sum(sizes) == total \
                and all(s == SHARD for s in sizes[:-1])
            check(f"{name}: {want_n} shard(s) of at most 4 MiB", ok, f"{sizes}")
            if name.startswith("tk_"):
                theirs = os.path.join(work, name + "_tfjs")
                tfjs.converters.save_keras_model(m, theirs)
                t_json = json.load(open(os.path.join(theirs, "model.json")))
                o_json = json.load(open(out_json))
                check(f"{name}: model_config equals tensorflowjs's own",
                      o_json["modelTopology"]["model_config"] == t_json["modelTopology"]["model_config"])
                ours = {w["name"]: w for g in read_weights.read_weights(o_json["weightsManifest"], os.path.join(work, name)) for w in g}
                them = {w["name"]: w for g in read_weights.read_weights(t_json["weightsManifest"], theirs) for w in g}
                same = ours.keys() == them.keys() and all(ours[k]["data"].dtype == them[k]["data"].dtype and
                                                          np.array_equal(ours[k]["data"], them[k]["data"]) for k in ours)
                check(f"{name}: weights equal tensorflowjs's own by name, dtype and value", same,
                      "" if same else f"ours {sorted(ours)} theirs {sorted(them)}")
        # Through DLKit's ONNX export of a Keras model: the Keras config travels in the metadata.
        m, path = models["k3_cnn"]
        onnx_out, out_json = os.path.join(work, "via.onnx"), os.path.join(work, "via_onnx", "model.json")
        r = subprocess.run([dlconvert, path, onnx_out], capture_output=True, text=True)
        r = r if r.returncode else subprocess.run([dlconvert, onnx_out, out_json], capture_output=True, text=True)
        ok = r.returncode == 0
        if ok:
            xs = sample_inputs(m)
            ok = np.allclose(outputs(loader.load_keras_model(out_json), xs)[0], outputs(m, xs)[0], rtol=1e-5, atol=1e-6)
        check("k3_cnn via DLKit's .onnx: tensorflowjs loads it, outputs equal", ok, r.stderr.strip()[-300:])
        # tensorflowjs 4.22 writes Keras 3 models' configs as Keras 3 writes them, which its own
        # tf_keras loader refuses (InputLayer batch_shape); rewritten by dlconvert they load.
        for name in ["tfjs_layers_cnn", "tfjs_layers_mlp"]:
            io = load_file(os.path.join(ROOT, "fixtures", "tensorflow", f"{name}.expected.safetensors"))
            out_json = os.path.join(work, "re_" + name, "model.json")
            r = subprocess.run([dlconvert, os.path.join(ROOT, "fixtures", "tensorflow", name, "model.json"), out_json], capture_output=True, text=True)
            ok = r.returncode == 0
            if ok:
                x = next(v for k, v in io.items() if k.startswith("input:"))
                y = next(v for k, v in io.items() if k.startswith("output:"))
                ok = np.allclose(outputs(loader.load_keras_model(out_json), [x])[0], y, rtol=1e-5, atol=1e-6)
            check(f"fixtures/tensorflow/{name} (tensorflowjs's Keras 3 output) rewritten: tensorflowjs loads it, outputs equal Keras's",
                  ok, r.stderr.strip()[-300:])
        # The committed Keras fixtures (scripts/fixtures/make_keras.py: zoos of most layer classes,
        # Keras 3 .keras and tf_keras .tf.h5): loaded by tensorflowjs, against Keras's own outputs.
        for model in KERAS_FIXTURES:
            io = load_file(os.path.join(ROOT, "fixtures", "keras", f"{model}.io.safetensors"))
            for variant, prefix in [("keras", "output:"), ("tf.h5", "tf_output:")]:
                src = os.path.join(ROOT, "fixtures", "keras", f"{model}.{variant}")
                if not os.path.exists(src):
                    continue
                out_json = os.path.join(work, f"{model}_{variant}", "model.json")
                r = subprocess.run([dlconvert, src, out_json], capture_output=True, text=True)
                refusal = REFUSED.get((model, variant))
                if refusal:
                    check(f"fixtures/keras/{model}.{variant}: refused ({refusal}), nothing written",
                          r.returncode == 1 and refusal in r.stderr and len(r.stderr.strip().splitlines()) == 1
                          and not os.path.exists(out_json), r.stderr.strip())
                    continue
                if r.returncode != 0:
                    check(f"fixtures/keras/{model}.{variant}: dlconvert", False, r.stderr.strip()[-400:])
                    continue
                loaded = loader.load_keras_model(out_json)
                ins = {k[6:]: v for k, v in io.items() if k.startswith("input:")}
                want = {k[len(prefix):]: v for k, v in io.items() if k.startswith(prefix)}
                xs = [ins[t.name.split(":")[0]] if t.name.split(":")[0] in ins else list(ins.values())[i] for i, t in enumerate(loaded.inputs)]
                got = outputs(loaded, xs)
                names = [t.name.split("/")[0].split(":")[0] for t in loaded.outputs]
                ok = len(got) == len(want) and all(n in want and np.allclose(g, want[n], rtol=1e-4, atol=1e-5) for n, g in zip(names, got))
                check(f"fixtures/keras/{model}.{variant}: tensorflowjs loads it, outputs equal Keras's", ok,
                      "" if ok else f"outputs {names} vs {sorted(want)}")
        # Third-party .h5 files from the corpus (Keras 2.0.5 and 2.4 model.save): loaded by
        # tensorflowjs against tf_keras's own load of the .h5, and compared with tensorflowjs's own
        # conversion of the same file.
        sys.path.insert(0, os.path.join(ROOT, "scripts", "corpus"))
        import fetch as corpus
        import tf_keras
        from tensorflowjs.converters import keras_h5_conversion
        entries = [e for e in corpus.load_manifest() if e["kind"] == "keras"]
        errors = corpus.fetch(entries, log=lambda m: None)
        for i, e in enumerate(entries):
            name = f"corpus {e['package']} {os.path.basename(e['member'])}"
            if i in errors:
                check(f"{name}: fetched", False, errors[i])
                continue
            path = corpus.local_path(e)
            out_dir = os.path.join(work, f"corpus{i}")
            r = subprocess.run([dlconvert, path, os.path.join(out_dir, "model.json")], capture_output=True, text=True)
            if r.returncode != 0:
                check(f"{name}: dlconvert", False, r.stderr.strip()[-400:])
                continue
            source = tf_keras.models.load_model(path, compile=False)
            loaded = loader.load_keras_model(os.path.join(out_dir, "model.json"))
            xs = [rng.standard_normal(spec["shape"]).astype("float32") for spec in e["inputs"].values()]
            want, got = outputs(source, xs), outputs(loaded, xs)
            ok = all(w.shape == g.shape and np.allclose(g, w, rtol=1e-5, atol=1e-6) for w, g in zip(want, got))
            check(f"{name}: tensorflowjs loads it, outputs equal tf_keras's load of the .h5", ok)
            topology, groups = keras_h5_conversion.h5_merged_saved_model_to_tfjs_format(path)
            o_json = json.load(open(os.path.join(out_dir, "model.json")))
            ours = {w["name"]: w["data"] for g in read_weights.read_weights(o_json["weightsManifest"], out_dir) for w in g}
            them = {w["name"]: w["data"] for g in groups for w in g}
            # Names: ours are the variable names tf_keras gives the rebuilt model (what the loader
            # looks up); tensorflowjs copies the names stored in the .h5, which Keras 2.0 wrote with
            # name-scope suffixes (`conv2d_1_1/kernel` for layer conv2d_1). So values are compared
            # as a multiset, and the names only where the file's own names are tf_keras's.
            def key(a):
                return (a.dtype.str, a.shape, a.tobytes())
            same = sorted(map(key, ours.values())) == sorted(map(key, them.values()))
            same_config = o_json["modelTopology"]["model_config"] == topology["model_config"]
            check(f"{name}: model_config and weight values equal tensorflowjs's own conversion", same and same_config)
            renamed = sorted(set(them) - set(ours))
            if renamed:
                print(f"note {name}: {len(renamed)} weights are named as tf_keras names them, not as stored (e.g. {renamed[0]})")
            else:
                check(f"{name}: weight names equal tensorflowjs's own conversion", ours.keys() == them.keys())
        # A model not read from Keras is refused with one line and nothing written.
        onnx_in = os.path.join(ROOT, "fixtures", "models", "mlp.onnx")
        if os.path.exists(onnx_in):
            out_json = os.path.join(work, "from_onnx", "model.json")
            r = subprocess.run([dlconvert, onnx_in, out_json], capture_output=True, text=True)
            check("ONNX not from Keras: refused, nothing written", r.returncode != 0 and not os.path.exists(out_json)
                  and len(r.stderr.strip().splitlines()) == 1, r.stderr.strip())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
