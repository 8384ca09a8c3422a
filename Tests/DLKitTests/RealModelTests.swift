import DLKit
import DLSafeTensors
import DLTestSupport
import Foundation
import Testing

/// Models made the way users make them (fixtures/models/real, written by
/// scripts/fixtures/make_real_models.py), run on the stored inputs and compared with the stored
/// ONNX Runtime 1.31.1 outputs. Each io file holds two runs: `input.`/`output.` and, with other
/// batch/sequence sizes, `input2.`/`output2.`.
struct RealModelTests {
    static let rtol = 1e-4
    static let atol = 1e-5

    /// The inputs and outputs of run `run` (1 or 2) of `<folder>/<stem>.io.safetensors`.
    static func run(_ stem: String, _ run: Int, folder: String = "real") throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let file = try SafeTensorsFile(path: TestPackage.fixture("models/\(folder)/\(stem).io.safetensors"))
        let suffix = run == 1 ? "" : String(run)
        var inputs: [String: Tensor] = [:], outputs: [String: Tensor] = [:]
        for (name, tensor) in try file.tensors() {
            if name.hasPrefix("input\(suffix).") { inputs[String(name.dropFirst(6 + suffix.count))] = tensor }
            if name.hasPrefix("output\(suffix).") { outputs[String(name.dropFirst(7 + suffix.count))] = tensor }
        }
        return (inputs, outputs)
    }

    static func model(_ stem: String) throws -> Model {
        try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/real/\(stem).onnx")))
    }

    @Test(arguments: ["encoder", "yolo", "paddle", "lstm_if"])
    func matchesONNXRuntimeOnBothRuns(_ stem: String) throws {
        let model = try Self.model(stem)
        for r in 1...2 {
            let io = try Self.run(stem, r)
            #expect(!io.inputs.isEmpty && !io.outputs.isEmpty, "\(stem) run \(r): no stored tensors")
            let got = try model.run(io.inputs)
            #expect(Set(got.keys) == Set(io.outputs.keys), "\(stem) run \(r)")
            for (name, want) in io.outputs.sorted(by: { $0.key < $1.key }) {
                guard let have = got[name] else { continue }
                #expect(have.dtype == want.dtype, "\(stem) run \(r) \(name)")
                #expect(have.shape == want.shape, "\(stem) run \(r) \(name)")
                let a = have.doubles(), b = want.doubles()
                let maxAbs = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
                print("real-model \(stem) run \(r) \(name) \(want.shape): max abs diff \(maxAbs), max rel diff \(maxRelativeError(a, b))")
                #expect(allClose(a, b, rtol: Self.rtol, atol: Self.atol),
                        "\(stem) run \(r) \(name): max abs diff \(maxAbs), max relative \(maxRelativeError(a, b))")
            }
        }
    }

    /// Converted to a checkpoint and back to ONNX (external data, Constant weights and If
    /// subgraphs carried over), each still matches ONNX Runtime.
    @Test(arguments: ["encoder", "yolo", "paddle", "lstm_if"])
    func conversionsStillMatchONNXRuntime(_ stem: String) throws {
        let dir = TemporaryFolder()
        let source = URL(fileURLWithPath: TestPackage.fixture("models/real/\(stem).onnx"))
        try Converter.convert(from: source, to: dir.url("m.ckpt"))
        try Converter.convert(from: dir.url("m.ckpt"), to: dir.url("m.onnx"))
        for url in [dir.url("m.ckpt"), dir.url("m.onnx")] {
            let model = try Model(contentsOf: url)
            for r in 1...2 {
                let io = try Self.run(stem, r)
                let got = try model.run(io.inputs)
                #expect(Set(got.keys) == Set(io.outputs.keys), "\(stem) via \(url.lastPathComponent) run \(r)")
                for (name, want) in io.outputs {
                    guard let have = got[name] else { continue }
                    #expect(have.shape == want.shape, "\(stem) via \(url.lastPathComponent) run \(r) \(name)")
                    #expect(allClose(have.doubles(), want.doubles(), rtol: Self.rtol, atol: Self.atol),
                            "\(stem) via \(url.lastPathComponent) run \(r) \(name): max relative \(maxRelativeError(have.doubles(), want.doubles()))")
                }
            }
        }
    }

    /// An opset-11 Softmax on axis 1 is read as Flatten → Softmax → Reshape; reading that graph
    /// again (from the checkpoint, or from the ONNX written from it) must neither nest a second
    /// Flatten nor reuse a node name (ONNX Runtime refused the duplicate).
    @Test func legacySoftmaxRewriteHappensOnceWithUniqueNodeNames() throws {
        let dir = TemporaryFolder()
        let source = URL(fileURLWithPath: TestPackage.fixture("models/real/paddle.onnx"))
        try Converter.convert(from: source, to: dir.url("m.ckpt"))
        try Converter.convert(from: dir.url("m.ckpt"), to: dir.url("m.onnx"))
        let first = try Model(contentsOf: source).graph
        for url in [dir.url("m.ckpt"), dir.url("m.onnx")] {
            let graph = try Model(contentsOf: url).graph
            let names = graph.nodes.map(\.name).filter { !$0.isEmpty }
            #expect(Set(names).count == names.count, "\(url.lastPathComponent): duplicate node names")
            #expect(graph.nodes.filter { $0.opType == "Flatten" }.count == 1, "\(url.lastPathComponent)")
            #expect(graph.nodes.count == first.nodes.count, "\(url.lastPathComponent)")
        }
    }

    /// The second run really has other symbolic sizes, so a model fixed to the first would fail.
    @Test(arguments: ["encoder", "yolo", "paddle", "lstm_if"])
    func secondRunUsesOtherSizes(_ stem: String) throws {
        let one = try Self.run(stem, 1), two = try Self.run(stem, 2)
        #expect(Set(one.inputs.keys) == Set(two.inputs.keys))
        let differs = one.outputs.contains { name, t in two.outputs[name].map { $0.shape != t.shape } ?? true }
        #expect(differs || stem == "lstm_if" && one.inputs["cond"]?.doubles() != two.inputs["cond"]?.doubles())
    }

    @Test func encoderWeightsAreExternalAndMissingDataIsNamed() throws {
        let data = TestPackage.fixture("models/real/encoder.onnx.data")
        #expect(FileManager.default.fileExists(atPath: data))
        let dir = TemporaryFolder()
        try FileManager.default.copyItem(atPath: TestPackage.fixture("models/real/encoder.onnx"), toPath: dir.file("encoder.onnx"))
        do { _ = try Model(contentsOf: dir.url("encoder.onnx")); Issue.record("expected an error: external data missing") } catch {
            #expect(error.description.contains(dir.file("encoder.onnx")), "\(error.description)")
            #expect(error.description.contains("external data"), "\(error.description)")
        }
    }
}

/// What DLKit writes back from the real models is read by the reference tools: onnx.checker
/// passes it and ONNX Runtime gets the stored outputs from it.
@Suite(.enabled(if: TestPackage.hasPython, "needs .venv/bin/python with onnx and onnxruntime: run scripts/bootstrap"))
struct RealModelPeerTests {
    static let script = """
        import sys
        import numpy as np
        import onnx
        import onnxruntime as ort
        from safetensors.numpy import load_file
        path, io = sys.argv[1], load_file(sys.argv[2])
        onnx.checker.check_model(path, full_check=True)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        worst = 0.0
        for prefix in ("", "2"):
            feed = {k[len("input" + prefix) + 1:]: v for k, v in io.items() if k.startswith("input" + prefix + ".")}
            names = [o.name for o in session.get_outputs()]
            for name, got in zip(names, session.run(names, feed)):
                want = io["output" + prefix + "." + name]
                assert got.shape == want.shape, (name, got.shape, want.shape)
                assert np.allclose(got, want, rtol=1e-4, atol=1e-5), (name, np.abs(got - want).max())
                worst = max(worst, float(np.abs(got - want).max()))
        print(worst)
        """

    @Test(arguments: ["encoder", "yolo", "paddle", "lstm_if"])
    func onnxRuntimeRunsWhatWeWrite(_ stem: String) throws {
        let dir = TemporaryFolder()
        try Converter.convert(from: URL(fileURLWithPath: TestPackage.fixture("models/real/\(stem).onnx")), to: dir.url("m.ckpt"))
        try Converter.convert(from: dir.url("m.ckpt"), to: dir.url("m.onnx"))
        let result = try runProcess(TestPackage.python, ["-c", Self.script, dir.file("m.onnx"),
                                                         TestPackage.fixture("models/real/\(stem).io.safetensors")])
        #expect(result.status == 0, "\(stem): \(result.stderr)")
    }
}
