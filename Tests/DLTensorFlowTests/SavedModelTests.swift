import DLKit
import DLSafeTensors
import DLTensor
import DLTensorFlow
import DLTestSupport
import Foundation
import Testing

/// SavedModels translated to the IR give TensorFlow's outputs (fixtures/tensorflow, made by
/// scripts/fixtures/make_tensorflow.py with TensorFlow 2.21).
@Suite struct SavedModelTests {
    /// Runs `model` on the `input:` tensors of `expected` and compares every `output:` tensor.
    static func check(_ model: Model, expected: String) throws {
        let f = try SafeTensorsFile(path: TestPackage.fixture("tensorflow/\(expected)"))
        var inputs: [String: Tensor] = [:], want: [String: Tensor] = [:]
        for (n, t) in try f.tensors() {
            if n.hasPrefix("input:") { inputs[String(n.dropFirst(6))] = t }
            if n.hasPrefix("output:") { want[String(n.dropFirst(7))] = t }
        }
        #expect(Set(model.inputs.map(\.name)) == Set(inputs.keys))
        #expect(Set(model.outputs.map(\.name)) == Set(want.keys))
        let got = try model.run(inputs)
        for (name, w) in want {
            let g = try #require(got[name], "\(expected): no output \(name)")
            #expect(g.shape == w.shape, "\(expected): \(name) \(g.shape) vs \(w.shape)")
            #expect(allClose(g.doubles(), w.doubles(), rtol: 1e-4, atol: 1e-5),
                    "\(expected): \(name) differs by \(maxRelativeError(g.doubles(), w.doubles()))")
        }
    }

    @Test(arguments: ["module", "keras_mlp", "keras_cnn", "keras_rnn", "tf1", "tf1_partitioned", "tf1_loop", "ops", "control", "strided_masks"])
    func outputsMatchTensorFlow(name: String) throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tensorflow/\(name)")))
        #expect(model.format == .savedModel)
        try Self.check(model, expected: "\(name).expected.safetensors")
    }

    @Test func aSignatureIsPickedByName() throws {
        let path = TestPackage.fixture("tensorflow/module")
        #expect(try SavedModelReader.signatures(path: path) == ["double", "serving_default"])
        let g = try SavedModelReader.read(path: path, signature: "double")
        try Self.check(try Model(graph: g, name: "double"), expected: "module.double.expected.safetensors")
        do {
            _ = try SavedModelReader.read(path: path, signature: "nope")
            Issue.record("an unknown signature was accepted")
        } catch {
            #expect("\(error)".contains("has no signature 'nope' (it has double, serving_default)"), "\(error)")
        }
    }

    @Test func unsupportedOpsAreListedAtOnce() throws {
        do {
            _ = try SavedModelReader.read(path: TestPackage.fixture("tensorflow/unsupported"))
            Issue.record("accepted")
        } catch {
            let m = "\(error)"
            #expect(m.contains("2 TensorFlow ops have no DLKit translation yet") && m.contains("Cumsum (") && m.contains("MatrixDeterminant ("), "\(m)")
        }
    }

    @Test func dlconvertWritesONNXAndInspects() throws {
        let tmp = TemporaryFolder()
        let dlconvert = TestPackage.tool("dlconvert")
        var r = try runProcess(dlconvert, [TestPackage.fixture("tensorflow/keras_cnn"), tmp.file("cnn.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.check(try Model(contentsOf: tmp.url("cnn.onnx")), expected: "keras_cnn.expected.safetensors")
        r = try runProcess(dlconvert, [TestPackage.fixture("tensorflow/module"), tmp.file("double.onnx"), "--signature", "double"])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.check(try Model(contentsOf: tmp.url("double.onnx")), expected: "module.double.expected.safetensors")
        r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("tensorflow/module")])
        #expect(r.status == 0 && r.stdout.contains("format: savedmodel") && r.stdout.contains("probs: float32 [batch, 3]"), "\(r.stdout)\(r.stderr)")
        r = try runProcess(dlconvert, [TestPackage.fixture("tensorflow/unsupported"), tmp.file("u.onnx")])
        #expect(r.status == 1 && r.stderr.hasPrefix("dlconvert: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("u.onnx")))
    }

    /// dlserve takes a SavedModel folder and a model.json; served names are the signature's keys.
    @Test func dlserveAnswersWithTheSignaturesNames() throws {
        let request = #"{"id":"1","model_name":"module","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#
            + "\n" + #"{"id":"2","model_name":"tfjs_graph_mlp","inputs":[{"name":"features","shape":[1,6],"datatype":"FP32","data":[1,2,3,4,5,6]}]}"#
        let r = try runProcess(TestPackage.tool("dlserve"), [TestPackage.fixture("tensorflow/module"),
                                                             TestPackage.fixture("tensorflow/tfjs_graph_mlp/model.json")], input: request + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains(#""name":"hidden""#) == true && lines.first?.contains(#""name":"probs""#) == true, "\(r.stdout)")
        #expect(lines.last?.contains(#""name":"output_0""#) == true && lines.last?.contains(#""model_name":"tfjs_graph_mlp""#) == true, "\(r.stdout)")
    }

    /// A TF1 while_loop (Enter/Merge/Switch/NextIteration/Exit) becomes a Loop (checked against
    /// TensorFlow in outputsMatchTensorFlow, with trip counts other than the fixture's here); a
    /// loop nested in a loop is refused naming the frame and the node, in one line.
    @Test func tf1LoopsRunOrAreRefusedByFrame() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tensorflow/tf1_loop")))
        #expect(model.graph.nodes.contains { $0.opType == "Loop" })
        let x = Tensor(shape: [1, 3], scalars: [Float(0.5), -1, 2])
        let zero = try #require(try model.run(["x": x, "n": Tensor(shape: [], scalars: [Int32(0)])])["y"])
        // No iteration: the accumulator stays zero and the last value is x itself.
        #expect(zero.doubles() == x.doubles())
        let one = try #require(try model.run(["x": x, "n": Tensor(shape: [], scalars: [Int32(1)])])["y"])
        // One iteration: a = 0 * 0.9 + w * 0 = 0, b = tanh(x + x).
        #expect(allClose(one.doubles(), x.doubles().map { tanh(2 * $0) }, rtol: 1e-6, atol: 1e-6))
        let r = try runProcess(TestPackage.tool("dlconvert"), [TestPackage.fixture("tensorflow/tf1_nested_loop"), TemporaryFolder().file("n.onnx")])
        #expect(r.status == 1 && r.stderr.contains("TF1 while_loop frame 'while/while_context'") && r.stderr.contains("nested")
                && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
