import DLKit
import DLSafeTensors
import DLSupport
import DLTensor
import DLTensorFlow
import DLTestSupport
import Foundation
import Testing

/// `dlconvert MODEL OUT/model.json` (TF.js layers-models). What tensorflowjs itself makes of the
/// written files is checked by scripts/tfjs_checks.py; these tests need no Python: the reference
/// here is tensorflowjs 4.22's own conversion of a tf_keras model (fixtures/tensorflow/tfjs_keras2_cnn/)
/// and Keras's outputs.
@Suite struct TFJSWriterTests {
    static func json(_ path: String) throws -> JSON {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return try data.withUnsafeBytes { try JSONParser.parse($0) }
    }

    /// The same model config as tensorflowjs writes for the .h5, and the same weights by name,
    /// shape and bytes; read back, the model gives tf_keras's outputs.
    @Test func matchesTensorFlowJSOwnConversion() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(TestPackage.tool("dlconvert"), [TestPackage.fixture("tensorflow/tfjs_keras2_cnn.h5"), tmp.file("out/model.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.json(tmp.file("out/model.json")), theirs = try Self.json(TestPackage.fixture("tensorflow/tfjs_keras2_cnn/model.json"))
        #expect(ours["format"] == .string("layers-model"))
        #expect(ours["modelTopology"]?["model_config"] == theirs["modelTopology"]?["model_config"])
        let a = try TFJSModel(path: tmp.file("out/model.json")), b = try TFJSModel(path: TestPackage.fixture("tensorflow/tfjs_keras2_cnn/model.json"))
        let mine = Dictionary(uniqueKeysWithValues: a.weights.map { ($0.name, $0.tensor) })
        let tfjs = Dictionary(uniqueKeysWithValues: b.weights.map { ($0.name, $0.tensor) })
        #expect(Set(mine.keys) == Set(tfjs.keys) && mine.count == 13, "\(mine.keys.sorted()) vs \(tfjs.keys.sorted())")
        for (name, t) in tfjs {
            let m = try #require(mine[name], "\(name)")
            #expect(m.dtype == t.dtype && m.shape == t.shape && m.withUnsafeBytes { Array($0) } == t.withUnsafeBytes { Array($0) }, "\(name)")
        }
        try SavedModelTests.check(try Model(contentsOf: tmp.url("out/model.json")), expected: "tfjs_keras2_cnn.expected.safetensors")
    }

    /// Keras 3 and tf_keras fixtures written as TF.js and read back agree with Keras's outputs.
    @Test(arguments: ["cnn.keras", "functional.keras", "bigru.keras", "separable.tf.h5", "zoo_image.keras", "zoo_sequence.tf.h5"])
    func writtenModelsGiveKerasOutputs(file: String) throws {
        let tmp = TemporaryFolder()
        _ = try Converter.convert(from: URL(fileURLWithPath: TestPackage.fixture("keras/\(file)")), to: tmp.url("m/model.json"))
        let model = try Model(contentsOf: tmp.url("m/model.json"))
        #expect(model.format == .tfjs)
        let name = String(file.prefix(while: { $0 != "." }))
        let io = try SafeTensorsFile(path: TestPackage.fixture("keras/\(name).io.safetensors"))
        var inputs: [String: Tensor] = [:], want: [String: Tensor] = [:]
        let prefix = file.hasSuffix(".tf.h5") ? "tf_output:" : "output:"
        for (n, t) in try io.tensors() {
            if n.hasPrefix("input:") { inputs[String(n.dropFirst(6))] = t }
            if n.hasPrefix(prefix) { want[String(n.dropFirst(prefix.count))] = t }
        }
        let got = try model.run(inputs)
        for (n, w) in want {
            let g = try #require(got[n], "\(file): no output \(n) in \(got.keys.sorted())")
            #expect(allClose(g.doubles(), w.doubles(), rtol: 1e-4, atol: 1e-5), "\(file) \(n): \(maxRelativeError(g.doubles(), w.doubles()))")
        }
    }

    /// Weights past the shard size continue in the next shard; the reader joins them again.
    @Test func weightsSpanShards() throws {
        let tmp = TemporaryFolder()
        let weights: [(name: String, tensor: Tensor)] = [("a/kernel", Tensor(shape: [50, 7], scalars: (0..<350).map { Float($0) * 0.5 })),
                                                         ("a/bias", Tensor(shape: [7], scalars: (0..<7).map { Int32($0) - 3 })),
                                                         ("b/count", Tensor(shape: [], scalars: [Int64(9)]))]
        let topology = JSON.object([("model_config", .object([("class_name", .string("Sequential")), ("config", .object([("layers", .array([]))]))]))])
        try TFJSWriter.writeLayersModel(topology: topology, weights: weights, to: tmp.file("w/model.json"), shardBytes: 512)
        let sizes = try (1...3).map { try FileManager.default.attributesOfItem(atPath: tmp.file("w/group1-shard\($0)of3.bin"))[.size] as? Int }
        #expect(sizes == [512, 512, 1400 + 28 + 4 - 1024])
        let back = try TFJSModel(path: tmp.file("w/model.json"))
        #expect(back.weights.map(\.name) == ["a/kernel", "a/bias", "b/count"])
        #expect(back.weights[0].tensor.doubles() == weights[0].tensor.doubles())
        #expect(back.weights[1].tensor.dtype == .int32 && back.weights[2].tensor.dtype == .int32 && back.weights[2].tensor.doubles() == [9])
    }

    /// Models that cannot be written are refused with one line naming the reason, and nothing is written.
    @Test(arguments: [("models/mlp.onnx", "did not come from a Keras model file"),
                      ("keras/nested.keras", "both named 'dense/kernel'"),
                      ("keras/zoo_merge.keras", "layer 'hs': Activation activation 'hard_sigmoid'"),
                      ("keras/zoo_volume.keras", "layer 'lam': a Lambda layer")])
    func refusals(input: String, message: String) throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(TestPackage.tool("dlconvert"), [TestPackage.fixture(input), tmp.file("o/model.json")])
        #expect(r.status == 1 && r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("o/model.json")))
        #expect(!FileManager.default.fileExists(atPath: tmp.file("o/group1-shard1of1.bin")))
    }
}
