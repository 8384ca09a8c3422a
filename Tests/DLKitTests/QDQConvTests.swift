import DLKit
import DLSafeTensors
import DLTestSupport
import Foundation
import Testing

/// An int8 QDQ model as onnxruntime.quantization writes it (per-channel int8 weights, uint8
/// activations; fixtures/models/runtime/qdq_convs.onnx from scripts/fixtures/make_runtime_models.py,
/// with ONNX Runtime 1.31.1 outputs): its convolutions run as QLinearConv on the integer path,
/// and every output is ONNX Runtime's or one quantum away, on both runs (the second with odd
/// sizes and batch 2).
struct QDQConvTests {
    @Test func integerConvolutionsAreWithinOneQuantumOfONNXRuntime() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/runtime/qdq_convs.onnx")))
        let file = try SafeTensorsFile(path: TestPackage.fixture("models/runtime/qdq_convs.io.safetensors"))
        let quantum = try #require(try file.tensors().first { $0.name == "quantum.y" }?.tensor.doubles().first)
        for run in 1...2 {
            let io = try RealModelTests.run("qdq_convs", run, folder: "runtime")
            let want = try #require(io.outputs["y"]), have = try #require(try model.run(io.inputs)["y"])
            #expect(have.shape == want.shape, "run \(run)")
            let diffs = zip(have.doubles(), want.doubles()).map { Swift.abs($0 - $1) }
            let off = diffs.filter { $0 > quantum * 0.5 }.count
            print("qdq_convs run \(run): \(off) of \(diffs.count) outputs one quantum (\(quantum)) off ONNX Runtime's, max diff \(diffs.max() ?? 0)")
            #expect(diffs.allSatisfy { $0 <= quantum * 1.001 }, "run \(run): max diff \(diffs.max() ?? 0), quantum \(quantum)")
        }
    }
}
