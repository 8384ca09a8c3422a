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

    /// The inputs and outputs of run `run` (1 or 2) of `real/<stem>.io.safetensors`.
    static func run(_ stem: String, _ run: Int) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let file = try SafeTensorsFile(path: TestPackage.fixture("models/real/\(stem).io.safetensors"))
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
