import DLKit
import DLSafeTensors
import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Keras files through DLKit's front doors: `Model`, `dlconvert` (to ONNX run in ONNX Runtime,
/// to Keras weights) and `dlserve`, compared with Keras's outputs.
@Suite struct KerasCLITests {
    let dlconvert = TestPackage.tool("dlconvert")

    static func io(_ model: String) throws -> (inputs: [(String, Tensor)], outputs: [String: Tensor]) {
        let f = try SafeTensorsFile(path: TestPackage.fixture("keras/\(model).io.safetensors"))
        var ins: [(String, Tensor)] = [], outs: [String: Tensor] = [:]
        for (name, t) in try f.tensors() {
            if name.hasPrefix("input:") { ins.append((String(name.dropFirst(6)), t)) }
            if name.hasPrefix("output:") { outs[String(name.dropFirst(7))] = t }
        }
        return (ins, outs)
    }

    static func expectKeras(_ got: [String: Tensor], _ model: String, _ what: String) throws {
        let (_, outs) = try io(model)
        for (name, want) in outs {
            let g = try #require(got[name], "\(what): no output \(name)")
            #expect(g.shape == want.shape)
            #expect(allClose(g.doubles(), want.doubles(), rtol: 1e-5, atol: 1e-6), "\(what) \(name): max rel \(maxRelativeError(g.doubles(), want.doubles()))")
        }
    }

    @Test(arguments: ["cnn", "functional", "separable", "bigru", "nested", "attention"])
    func modelsLoadFromEveryKerasFile(model: String) throws {
        let (ins, _) = try Self.io(model)
        let feed = Dictionary(uniqueKeysWithValues: ins)
        for v in ["h5", "tf.h5", "keras"] {
            let url = URL(fileURLWithPath: TestPackage.fixture("keras/\(model).\(v)"))
            let m = try Model(contentsOf: url)
            #expect(m.format == (v == "keras" ? .keras : .hdf5))
            try Self.expectKeras(try m.run(feed), model, "\(model).\(v)")
        }
        let w = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("keras/\(model).weights.h5")),
                          graph: URL(fileURLWithPath: TestPackage.fixture("keras/\(model).h5")))
        #expect(w.name == model)
        try Self.expectKeras(try w.run(feed), model, "\(model).weights.h5 --graph")
    }

    /// Issue 17: legacy .h5 files whose model_config puts a layer after an input of a rank it
    /// cannot take ended dlconvert with SIGILL; now one line naming layer and class, exit 1.
    @Test(arguments: [("keras_flatten_rank0.h5", "layer 'flat' (Flatten): input 'in' has rank 0"),
                      ("keras_gap1d_rank1.h5", "layer 'gap' (GlobalAveragePooling1D): input 'in' has rank 1"),
                      ("keras_gmp2d_rank1.h5", "layer 'gmp' (GlobalMaxPooling2D): input 'in' has rank 1")])
    func hostileConfigIsOneLineNotACrash(file: String, expected: String) throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("bad/\(file)"), dir.file("out.onnx")])
        #expect(r.status == 1, "\(r.status): \(r.stderr)")
        #expect(r.stderr.contains(expected) && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.onnx")))
    }

    @Test func weightsOnlyFileAsAModelSaysWhatToDo() throws {
        do {
            _ = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("keras/cnn.tfweights.h5")))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("no model config; give the model"))
        }
    }

    static let onnxModels = ["cnn", "functional", "separable", "bigru", "zoo_sequence", "zoo_image", "zoo_merge", "zoo_volume", "nested", "attention", "zoo_resize"]

    /// dlconvert to ONNX; the file runs in DLKit with Keras's outputs.
    @Test(arguments: onnxModels)
    func toONNX(model: String) throws {
        let dir = TemporaryFolder()
        let onnx = dir.file("\(model).onnx")
        let r = try runProcess(dlconvert, [TestPackage.fixture("keras/\(model).keras"), onnx])
        #expect(r.status == 0, "\(r.stderr)")
        let (ins, _) = try Self.io(model)
        try Self.expectKeras(try Model(contentsOf: URL(fileURLWithPath: onnx)).run(Dictionary(uniqueKeysWithValues: ins)), model, "\(model).onnx")
    }

    /// The ONNX file dlconvert writes runs in ONNX Runtime with Keras's outputs.
    @Test(.enabled(if: TestPackage.hasPython, "needs the project venv (scripts/bootstrap) for ONNX Runtime"),
          arguments: onnxModels)
    func toONNXRunsInOnnxRuntime(model: String) throws {
        let dir = TemporaryFolder()
        let onnx = dir.file("\(model).onnx")
        let r = try runProcess(dlconvert, [TestPackage.fixture("keras/\(model).keras"), onnx])
        #expect(r.status == 0, "\(r.stderr)")
        let script = """
            import sys, numpy as np, onnxruntime as ort
            from safetensors.numpy import load_file
            io = load_file(sys.argv[2])
            s = ort.InferenceSession(sys.argv[1])
            outs = [k[7:] for k in io if k.startswith("output:")]
            got = s.run(outs, {i.name: io["input:" + i.name] for i in s.get_inputs()})
            worst = max(float(np.max(np.abs(g - io["output:" + n]) / np.maximum(np.abs(io["output:" + n]), 1e-6))) for g, n in zip(got, outs))
            print(worst)
            sys.exit(0 if all(np.allclose(g, io["output:" + n], rtol=1e-5, atol=1e-6) for g, n in zip(got, outs)) else 1)
            """
        let o = try runProcess(TestPackage.python, ["-c", script, onnx, TestPackage.fixture("keras/\(model).io.safetensors")])
        #expect(o.status == 0, "ONNX Runtime: \(o.stdout) \(o.stderr)")
        print("keras-onnxruntime \(model): max relative difference \(o.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    /// Keras weights out: .weights.h5 and .h5 read back as the same weights, also from a .ckpt.
    @Test func toKerasWeightsAndBack() throws {
        let dir = TemporaryFolder()
        let source = TestPackage.fixture("keras/functional.keras")
        var r = try runProcess(dlconvert, [source, dir.file("f.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        for out in ["f.weights.h5", "f.h5"] {
            r = try runProcess(dlconvert, [dir.file("f.ckpt"), dir.file(out)])
            #expect(r.status == 0, "\(r.stderr)")
            // Bound back onto the model, the written weights give Keras's outputs.
            let m = try Model(contentsOf: dir.url(out), graph: URL(fileURLWithPath: source))
            let (ins, _) = try Self.io("functional")
            try Self.expectKeras(try m.run(Dictionary(uniqueKeysWithValues: ins)), "functional", out)
        }
        // ONNX from the weights file and the model.
        r = try runProcess(dlconvert, [dir.file("f.weights.h5"), dir.file("f.onnx"), "--graph", source])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(dir.contents() == ["f.ckpt", "f.h5", "f.onnx", "f.weights.h5"])
    }

    @Test func inspectDescribesKerasFiles() throws {
        var r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("keras/functional.keras"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try parseJSON(r.stdout)
        #expect(j["format"] == .string("keras"))
        #expect(j["inputs"]?.arrayValue?.first?["name"] == .string("tokens"))
        #expect(j["outputs"]?.arrayValue?.count == 2)
        r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("keras/cnn.tfweights.h5"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try parseJSON(r.stdout)["parameters"] == .number("373"))
        // A trained model's optimizer variables are listed, named optimizer/vars/<i>, under "adam".
        for v in ["keras", "weights.h5"] {
            r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("keras/optimizer.\(v)")])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("  optimizer: adam\n    vars/0: int64 []\n") && r.stdout.contains("    vars/5: float32 [2]\n"), "\(r.stdout)")
            r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("keras/optimizer.\(v)"), "--json"])
            let names = try parseJSON(r.stdout)["tensors"]?.arrayValue?.compactMap { t -> String? in if case .string(let n)? = t["name"] { return n }; return nil } ?? []
            #expect(names.filter { $0.hasPrefix("optimizer/vars/") }.count == 6, "\(names)")
            #expect(try parseJSON(r.stdout)["parameters"] == .number("8"))
        }
    }

    @Test func kerasWeightsFromANonKerasModelFailWithNothingWritten() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("models/mlp.onnx"), dir.file("w.weights.h5")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("did not come from Keras") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(dir.contents().isEmpty)
    }

    @Test func dlserveAnswersAsKeras() throws {
        let (ins, outs) = try Self.io("separable")
        let inputs = ins.map { name, t in
            #"{"name":"\#(name)","shape":\#(t.shape),"datatype":"FP32","data":[\#(t.doubles().map { JSON.float(Float($0)).serialized() }.joined(separator: ","))]}"#
        }
        let request = #"{"id":"k","inputs":[\#(inputs.joined(separator: ","))]}"#
        for args in [[TestPackage.fixture("keras/separable.keras")],
                     [TestPackage.fixture("keras/separable.weights.h5"), "--graph", TestPackage.fixture("keras/separable.h5")]] {
            let (answers, status, err) = try serve(args, [request])
            #expect(status == 0, "\(err)")
            let out = try #require(answers.first?["outputs"]?.arrayValue?.first)
            let data = (out["data"]?.arrayValue ?? []).compactMap { $0.numberText.flatMap(Double.init) }
            let want = try #require(outs["out"]).doubles()
            #expect(allClose(data, want, rtol: 1e-5, atol: 1e-6), "\(args): \(data) vs \(want)")
        }
    }
}

extension JSON {
    var arrayValue: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    var numberText: String? { if case .number(let n) = self { return n } else { return nil } }
}
