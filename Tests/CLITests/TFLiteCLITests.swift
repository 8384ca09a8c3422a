import DLKit
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// .tflite files through DLKit's front doors: `Model`, `dlconvert` (inspect, to ONNX run in ONNX
/// Runtime, verify) and `dlserve`, compared with tf.lite.Interpreter's outputs.
@Suite struct TFLiteCLITests {
    let dlconvert = TestPackage.tool("dlconvert")

    static func io(_ stem: String) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let f = try SafeTensorsFile(path: TestPackage.fixture("tflite/\(stem).io.safetensors"))
        var ins: [String: Tensor] = [:], outs: [String: Tensor] = [:]
        for (name, t) in try f.tensors() {
            if name.hasPrefix("input:") { ins[String(name.dropFirst(6))] = t }
            if name.hasPrefix("output:") { outs[String(name.dropFirst(7))] = t }
        }
        return (ins, outs)
    }

    @Test func modelLoadsATFLiteFileByItsBytes() throws {
        let m = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tflite/mobilenet.float.tflite")))
        #expect(m.format == .tflite)
        let (ins, outs) = try Self.io("mobilenet.float")
        let got = try m.run(ins)
        for (name, want) in outs {
            let g = try #require(got[name])
            #expect(allClose(g.doubles(), want.doubles(), rtol: 1e-4, atol: 1e-5))
        }
    }

    @Test func inspectDescribesATFLiteModel() throws {
        let r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("tflite/ops.float.tflite"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try parseJSON(r.stdout)
        #expect(j["format"] == .string("tflite"))
        #expect(j["inputs"]?.arrayValue?.first?["name"] == .string("x"))
        #expect(Set((j["outputs"]?.arrayValue ?? []).compactMap { if case .string(let s)? = $0["name"] { s } else { nil } }) == ["y", "mean"])
    }

    /// dlconvert to ONNX; ONNX Runtime gives the interpreter's outputs; verify agrees.
    /// Full-integer models export TFLite's integer arithmetic (ConvInteger, MatMulInteger, the
    /// fixed-point requantization in float64 ops, the 8-bit activations' fixed point in int64
    /// ops): ONNX Runtime gives the interpreter's int8 outputs exactly; dynamic-range ones their
    /// hybrid kernels' results. WHILE and IF export as Loop and If.
    @Test(.enabled(if: TestPackage.hasPython, "the peer half runs tf.lite / ONNX Runtime from .venv"), arguments: ["cnn.float", "mobilenet.fp16", "lstm.float", "ops.float", "segment.fp16", "mediapipe.float", "cnn.dynamic", "mobilenet.dynamic", "cnn.int8", "mobilenet.int8", "activations.int8", "control.float"])
    func toONNXRunsInONNXRuntime(stem: String) throws {
        let dir = TemporaryFolder()
        let onnx = dir.file("\(stem).onnx")
        let source = TestPackage.fixture("tflite/\(stem).tflite")
        var r = try runProcess(dlconvert, [source, onnx])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, ["verify", source, onnx])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let tolerance = stem.hasSuffix("int8") ? "rtol=0, atol=0" : "rtol=1e-4, atol=1e-5"
        let script = """
            import sys, numpy as np, onnxruntime as ort
            from safetensors.numpy import load_file
            io = load_file(sys.argv[2])
            s = ort.InferenceSession(sys.argv[1])
            outs = [k[7:] for k in io if k.startswith("output:")]
            got = s.run(outs, {i.name: io["input:" + i.name] for i in s.get_inputs()})
            ok = True
            for g, n in zip(got, outs):
                want = io["output:" + n]
                ok = ok and np.allclose(g, want, \(tolerance))
            sys.exit(0 if ok else 1)
            """
        let o = try runProcess(TestPackage.python, ["-c", script, onnx, TestPackage.fixture("tflite/\(stem).io.safetensors")])
        #expect(o.status == 0, "ONNX Runtime: \(o.stdout) \(o.stderr)")
    }

    @Test func unsupportedOperatorsAreListedInOneLine() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("tflite/unsupported.tflite"), dir.file("u.onnx")])
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("unsupported.tflite: unsupported TFLite operators: CUSTOM 'FlexMatrixDeterminant', TOPK_V2\n"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && dir.contents().isEmpty)
    }

    /// dlconvert X OUT.tflite: tf.lite.Interpreter loads the file and gives the source's expected
    /// outputs (rtol 1e-4); DLKit reads its own file back to the same numbers. NCHW ONNX models
    /// keep their interface, Keras and TFLite sources stay NHWC.
    @Test(.enabled(if: TestPackage.hasPython, "the peer half runs tf.lite / ONNX Runtime from .venv")) func writtenTFLiteRunsInTheInterpreter() throws {
        let sources = ["tflite/cnn.float", "tflite/mobilenet.float", "tflite/mobilenet.fp16", "tflite/segment.fp16", "tflite/mediapipe.float", "keras/cnn", "keras/separable", "keras/nested", "models/mlp", "models/ops"]
        let dir = TemporaryFolder()
        var pairs: [String] = []
        for source in sources {
            let ext = source.hasPrefix("tflite/") ? "tflite" : source.hasPrefix("keras/") ? "keras" : "onnx"
            let io = TestPackage.fixture("\(source).io.safetensors")
            let out = dir.file(source.replacingOccurrences(of: "/", with: "_") + ".tflite")
            let r = try runProcess(dlconvert, [TestPackage.fixture("\(source).\(ext)"), out])
            #expect(r.status == 0, "\(r.stderr)")
            pairs += [out, io]
            // Back through DLKit's reader.
            let f = try SafeTensorsFile(path: io)
            var ins: [String: Tensor] = [:], want: [String: Tensor] = [:]
            for (name, t) in try f.tensors() {
                for p in ["input:", "input."] where name.hasPrefix(p) { ins[String(name.dropFirst(p.count))] = t }
                for p in ["output:", "output."] where name.hasPrefix(p) { want[String(name.dropFirst(p.count))] = t }
            }
            let got = try Model(contentsOf: URL(fileURLWithPath: out)).run(ins)
            for (name, w) in want {
                let g = try #require(got[name], "\(source): no output \(name) in \(got.keys.sorted())")
                #expect(allClose(g.doubles(), w.doubles(), rtol: 1e-4, atol: 1e-5), "\(source) \(name) read back")
            }
        }
        // One interpreter process for all files (importing TensorFlow takes seconds).
        let script = """
            import sys, numpy as np, tensorflow as tf
            from safetensors.numpy import load_file
            bad = []
            for model, iof in zip(sys.argv[1::2], sys.argv[2::2]):
                io = load_file(iof)
                feeds = {k[6:]: v for k, v in io.items() if k.startswith(("input:", "input."))}
                got = tf.lite.Interpreter(model_path=model).get_signature_runner("serving_default")(**feeds)
                for k, v in got.items():
                    w = io.get("output:" + k, io.get("output." + k))
                    if w is None or not np.allclose(v, w, rtol=1e-4, atol=1e-5):
                        bad.append(f"{model} {k}")
                if not got:
                    bad.append(f"{model}: no outputs")
            print("; ".join(bad))
            sys.exit(1 if bad else 0)
            """
        let o = try runProcess(TestPackage.python, ["-c", script] + pairs)
        #expect(o.status == 0, "tf.lite.Interpreter: \(o.stdout) \(o.stderr.suffix(600))")
    }

    @Test func opsWithoutATFLiteFormAreListedAndNothingIsWritten() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("keras/zoo_sequence.keras"), dir.file("z.tflite")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot write TFLite: no TFLite form yet for: GRU, GlobalMaxPool, LayerNormalization, RNN, Selu, Slice, Softplus"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && dir.contents().isEmpty)
    }

    /// --quantize float16 / dynamic-int8: the files shrink to about a half / a quarter of the
    /// float32 file and tf.lite.Interpreter runs them close to the float outputs: float16 within
    /// 0.1% of the largest output, dynamic-int8 (weights rounded to 1/127 of their channel's
    /// range, activations quantized by TFLite's hybrid kernels) within 5% and the same argmax.
    @Test(.enabled(if: TestPackage.hasPython, "the peer half runs tf.lite / ONNX Runtime from .venv")) func quantizedWeightsRunInTheInterpreter() throws {
        let dir = TemporaryFolder()
        var args: [String] = []
        for source in ["models/mlp.onnx", "tflite/mobilenet.float.tflite"] {
            let io = TestPackage.fixture(source.replacingOccurrences(of: ".onnx", with: "").replacingOccurrences(of: ".tflite", with: "") + ".io.safetensors")
            let plain = dir.file("plain.tflite")
            var r = try runProcess(dlconvert, [TestPackage.fixture(source), plain])
            #expect(r.status == 0, "\(r.stderr)")
            let size = { (p: String) in ((try? FileManager.default.attributesOfItem(atPath: p)[.size]) as? Int) ?? 0 }
            for (q, ratio) in [("float16", 0.6), ("dynamic-int8", 0.4)] {
                let out = dir.file("\(q)-\(args.count).tflite")
                r = try runProcess(dlconvert, [TestPackage.fixture(source), out, "--quantize", q])
                #expect(r.status == 0, "\(r.stderr)")
                if source.hasSuffix(".onnx") { #expect(Double(size(out)) < ratio * Double(size(plain)), "\(q): \(size(out)) vs \(size(plain)) bytes") }
                args += [out, io, q == "float16" ? "0.001" : "0.05"]
            }
        }
        let bad = try runProcess(dlconvert, [TestPackage.fixture("models/mlp.onnx"), dir.file("m.onnx"), "--quantize", "float16"])
        #expect(bad.status == 1 && bad.stderr.contains("--quantize applies to .tflite output only"), "\(bad.stderr)")
        let script = """
            import sys, numpy as np, tensorflow as tf
            from safetensors.numpy import load_file
            bad = []
            a = sys.argv[1:]
            for model, iof, tol in zip(a[0::3], a[1::3], a[2::3]):
                io = load_file(iof)
                feeds = {k[6:]: v for k, v in io.items() if k.startswith(("input:", "input."))}
                got = tf.lite.Interpreter(model_path=model).get_signature_runner("serving_default")(**feeds)
                for k, v in got.items():
                    w = io.get("output:" + k, io.get("output." + k))
                    scale = float(np.max(np.abs(w)))
                    if np.max(np.abs(v - w)) > float(tol) * scale or np.argmax(v) != np.argmax(w):
                        bad.append(f"{model} {k}: {np.max(np.abs(v - w))} over {tol} x {scale}")
            print("; ".join(bad))
            sys.exit(1 if bad else 0)
            """
        let o = try runProcess(TestPackage.python, ["-c", script] + args)
        #expect(o.status == 0, "tf.lite.Interpreter: \(o.stdout) \(o.stderr.suffix(600))")
    }
}
