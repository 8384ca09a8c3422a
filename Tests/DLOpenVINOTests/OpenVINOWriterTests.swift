import DLGraph
import DLKit
import DLOpenVINO
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// The IR writer, read back by the reader (OpenVINO's own reading of it is in
/// scripts/openvino_checks.py).
@Suite struct OpenVINOWriterTests {
    func io(_ stem: String) throws -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: try SafeTensorsFile(path: TestPackage.fixture("openvino/\(stem).io.safetensors")).tensors().map { ($0.name, $0.tensor) })
    }

    func run(_ graph: Graph, _ io: [String: Tensor]) throws -> [Tensor] {
        let model = try Model(graph: graph, name: graph.name)
        var feeds: [String: Tensor] = [:]
        for (i, v) in graph.inputs.enumerated() { feeds[v.name] = try #require(io["input.\(i)"]) }
        let out = try model.run(feeds)
        return try graph.outputs.map { (v) throws -> Tensor in try #require(out[v.name]) }
    }

    @Test(arguments: ["cnn", "yolo", "opset", "convnet", "shapes", "lstm"])
    func writtenIRReadsBackToTheSameOutputs(stem: String) throws {
        let tmp = TemporaryFolder()
        let graph = try OpenVINOReader.read(path: TestPackage.fixture("openvino/\(stem).xml"))
        try OpenVINOWriter.write(graph, to: tmp.file("m.xml"))
        #expect(Set(tmp.contents()) == ["m.xml", "m.bin"])
        let again = try OpenVINOReader.read(path: tmp.file("m.xml"))
        let data = try io(stem)
        for (i, t) in try run(again, data).enumerated() {
            let want = try #require(data["output.\(i)"])
            #expect(t.shape == want.shape)
            #expect(allClose(t.doubles(), want.doubles(), rtol: 1e-4, atol: 1e-5), "\(stem) output \(i): \(maxRelativeError(t.doubles(), want.doubles()))")
        }
    }

    @Test func compressToFP16StoresHalvesAndAConvert() throws {
        let tmp = TemporaryFolder()
        let graph = try OpenVINOReader.read(path: TestPackage.fixture("openvino/mlp2.xml"))
        try OpenVINOWriter.write(graph, to: tmp.file("f32.xml"))
        try OpenVINOWriter.write(graph, to: tmp.file("f16.xml"), compressToFP16: true)
        let size = { (name: String) in (try? FileManager.default.attributesOfItem(atPath: tmp.file(name))[.size] as? Int) ?? 0 }
        #expect(size("f16.bin") < size("f32.bin") * 6 / 10)
        let half = try OpenVINOReader.read(path: tmp.file("f16.xml"))
        let weights = half.initializers.filter { $0.tensor.dtype == .float16 }
        #expect(!weights.isEmpty)
        // Each f16 weight is its f32 original rounded once to half precision.
        for (name, t) in weights {
            let base = String(name.dropLast("_compressed".count))
            let original = try #require(graph.initializers[base], "\(name)")
            #expect(original.converted(to: .float16).bitwiseEqual(t), "\(name)")
        }
        #expect(half.nodes.contains { $0.opType == "Cast" })
    }

    @Test func unsupportedOpsAreListedAndNothingIsWritten() throws {
        let tmp = TemporaryFolder()
        let g = Graph(name: "u", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2]))],
                      outputs: [ValueInfo(name: "z", type: nil)],
                      nodes: [Node(opType: "Hardmax", inputs: ["x"], outputs: ["y"]), Node(opType: "Hardmax", inputs: ["y"], outputs: ["y2"]),
                              Node(opType: "LpNormalization", inputs: ["y2"], outputs: ["z"])])
        #expect(throws: OpenVINOError.unsupportedForWriting(path: tmp.file("u.xml"), ops: ["Hardmax": 2, "LpNormalization": 1])) {
            try OpenVINOWriter.write(g, to: tmp.file("u.xml"))
        }
        #expect(tmp.contents().isEmpty)
    }

    @Test func aFailedWriteLeavesNoFiles() throws {
        let tmp = TemporaryFolder()
        let graph = try OpenVINOReader.read(path: TestPackage.fixture("openvino/ops.xml"))
        #expect(throws: OpenVINOError.self) { try OpenVINOWriter.write(graph, to: tmp.file("missing/dir/m.xml")) }
        #expect(tmp.contents().isEmpty)
    }
}
