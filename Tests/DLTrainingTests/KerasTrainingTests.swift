import DLCheckpoint
import DLKit
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// `dltrain` on a Keras model (`.h5` with a config, and `.keras`): the weights after 5 SGD steps
/// match Keras/TensorFlow training the same steps (fixtures/training/keras_mlp.*, made by
/// scripts/fixtures/make_keras_training.py), and a split run resumes bit for bit.
@Suite(.serialized)
struct KerasTrainingTests {
    static let data = TestPackage.fixture("training/keras_mlp.data.safetensors")
    static let flags = ["--data", data, "--input", "x", "--target", "y", "--loss", "mse", "--batch-size", "16",
                        "--no-shuffle", "--optimizer", "sgd", "--lr", "0.05"]

    static func weights(_ path: String) throws -> NamedTensors {
        try Checkpoint(contentsOf: path).graph.initializers
    }

    @Test(arguments: ["keras_mlp.h5", "keras_mlp.keras"])
    func sgdStepsMatchKeras(file: String) throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        let r = try runProcess(tool, [TestPackage.fixture("training/\(file)")] + Self.flags + ["--steps", "5", "--out", tmp.file("a.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.weights(tmp.file("a.ckpt"))
        let (refGraph, _) = try Model.loadGraph(path: TestPackage.fixture("training/keras_mlp.sgd.step5.h5"))
        let (startGraph, _) = try Model.loadGraph(path: TestPackage.fixture("training/\(file)"))
        let ref = refGraph.initializers
        #expect(ref.names.sorted() == ours.names.sorted())
        #expect(ours.names.count >= 4)
        var moved = false
        for name in ref.names {
            let a = try #require(ours[name]).doubles(), b = try #require(ref[name]).doubles()
            #expect(allClose(a, b, rtol: 1e-5, atol: 1e-6), "\(name): \(a) vs Keras \(b)")
            if let s = startGraph.initializers[name]?.doubles(), !allClose(s, b, rtol: 1e-3, atol: 1e-4) { moved = true }
        }
        #expect(moved, "training did not change the weights")
    }

    @Test func splitRunResumesBitIdentical() throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        let model = TestPackage.fixture("training/keras_mlp.h5")
        let momentum = ["--momentum", "0.9", "--nesterov"]
        let full = try runProcess(tool, [model] + Self.flags + momentum + ["--steps", "6", "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        let first = try runProcess(tool, [model] + Self.flags + momentum + ["--steps", "2", "--out", tmp.file("part.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try runProcess(tool, [tmp.file("part.ckpt"), "--data", Self.data, "--steps", "4", "--out", tmp.file("part.ckpt")])
        #expect(second.status == 0, "\(second.stderr)")
        let a = try Self.weights(tmp.file("full.ckpt")), b = try Self.weights(tmp.file("part.ckpt"))
        #expect(a.names == b.names)
        for name in a.names { #expect(try b[name].map { $0.bitwiseEqual(try #require(a[name])) } == true, "\(name) differs") }
        #expect(try Checkpoint(contentsOf: tmp.file("full.ckpt")).training == Checkpoint(contentsOf: tmp.file("part.ckpt")).training)
    }
}
