import DLKit
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// TensorFlow.js models converted by tensorflowjs 4.22 (fixtures/tensorflow/tfjs_*, made by
/// scripts/fixtures/make_tensorflow.py) give TensorFlow's and Keras's outputs.
@Suite struct TFJSTests {
    static func model(_ name: String) -> URL { URL(fileURLWithPath: TestPackage.fixture("tensorflow/\(name)/model.json")) }

    @Test(arguments: ["tfjs_graph_cnn", "tfjs_graph_mlp", "tfjs_layers_cnn", "tfjs_layers_mlp"])
    func outputsMatch(name: String) throws {
        let m = try Model(contentsOf: Self.model(name))
        #expect(m.format == .tfjs)
        try SavedModelTests.check(m, expected: "\(name).expected.safetensors")
    }

    /// Weights as tensorflowjs's own reader decodes them (float32 as stored; uint8 affine and
    /// float16 quantization back to float32).
    @Test(arguments: ["tfjs_graph_mlp", "tfjs_graph_uint8_mlp", "tfjs_graph_float16_mlp", "tfjs_graph_cnn"])
    func weightsDecodeAsTensorFlowJSDoes(name: String) throws {
        let weights = try StateDict(contentsOf: Self.model(name))
        let f = try SafeTensorsFile(path: TestPackage.fixture("tensorflow/\(name).expected.safetensors"))
        var checked = 0
        for (n, want) in try f.tensors() where n.hasPrefix("var:") {
            let got = try #require(weights[String(n.dropFirst(4))], "\(name): \(n)")
            #expect(got.shape == want.shape && got.dtype == want.dtype, "\(name): \(n) \(got.dtype)\(got.shape) vs \(want.dtype)\(want.shape)")
            #expect(allClose(got.doubles(), want.doubles(), rtol: 1e-6, atol: 1e-7), "\(name): \(n)")
            checked += 1
        }
        #expect(checked == weights.count && checked >= 4)
    }

    /// Quantized weights run: outputs stay near the float model's.
    @Test(arguments: ["tfjs_graph_uint8_mlp", "tfjs_graph_float16_mlp"])
    func quantizedModelsRun(name: String) throws {
        let m = try Model(contentsOf: Self.model(name))
        let f = try SafeTensorsFile(path: TestPackage.fixture("tensorflow/tfjs_graph_mlp.expected.safetensors"))
        let x = try f.tensor(named: "input:features"), want = try f.tensor(named: "output:output_0")
        let got = try #require(try m.run(["features": x])["output_0"])
        #expect(allClose(got.doubles(), want.doubles(), rtol: 0, atol: 0.05), "\(name): \(maxRelativeError(got.doubles(), want.doubles()))")
    }

    @Test func dlconvertAndInspectTakeModelJSON() throws {
        let tmp = TemporaryFolder()
        var r = try runProcess(TestPackage.tool("dlconvert"), [Self.model("tfjs_graph_cnn").path, tmp.file("cnn.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        try SavedModelTests.check(try Model(contentsOf: tmp.url("cnn.onnx")), expected: "tfjs_graph_cnn.expected.safetensors")
        r = try runProcess(TestPackage.tool("dlconvert"), ["inspect", Self.model("tfjs_layers_mlp").path])
        #expect(r.status == 0 && r.stdout.contains("format: tfjs") && r.stdout.contains("features: float32 [batch, 6]"), "\(r.stdout)\(r.stderr)")
        // A shard path leaving the model's folder is refused.
        let json = try String(contentsOf: Self.model("tfjs_graph_mlp"), encoding: .utf8)
            .replacingOccurrences(of: "group1-shard1of1.bin", with: "../../etc/passwd")
        try json.write(toFile: tmp.file("model.json"), atomically: true, encoding: .utf8)
        r = try runProcess(TestPackage.tool("dlconvert"), [tmp.file("model.json"), tmp.file("x.onnx")])
        #expect(r.status == 1 && r.stderr.contains("leaves the model's folder"), "\(r.stderr)")
    }
}
