import DLCheckpoint
import DLGraph
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

struct CheckpointTests {
    @Test(arguments: ["mlp", "cnn", "ops"])
    func onnxToCheckpointToONNXLosesNothing(_ name: String) throws {
        let dir = TemporaryFolder()
        let original = try ONNXReader.read(path: TestPackage.fixture("models/\(name).onnx"))
        try Checkpoint(graph: original).write(to: dir.file("m.ckpt"))
        let loaded = try Checkpoint(contentsOf: dir.file("m.ckpt")).graph
        #expect(loaded.inputs == original.inputs)
        #expect(loaded.outputs == original.outputs)
        #expect(loaded.valueInfo == original.valueInfo)
        #expect(loaded.nodes.map(\.opType) == original.nodes.map(\.opType))
        #expect(loaded.nodes.map(\.inputs) == original.nodes.map(\.inputs))
        #expect(loaded.nodes.map(\.outputs) == original.nodes.map(\.outputs))
        #expect(loaded.initializers.names == original.initializers.names)
        for (n, t) in original.initializers {
            let u = try #require(loaded.initializers[n])
            #expect(u.bitwiseEqual(t), "\(n)")
            #expect(u.isMapped, "\(n) should be a view into the checkpoint")
        }
        #expect(loaded.metadata.onnxOpset == original.metadata.onnxOpset)
        #expect(loaded.metadata.producerName == original.metadata.producerName)
        #expect(loaded.metadata.irVersion == original.metadata.irVersion)
        #expect(loaded.metadata.metadataProps.map(\.value) == original.metadata.metadataProps.map(\.value))
    }

    @Test func checkpointIsPlainSafetensorsWithSourceNames() throws {
        let dir = TemporaryFolder()
        let g = try ONNXReader.read(path: TestPackage.fixture("models/mlp.onnx"))
        try Checkpoint(graph: g).write(to: dir.file("m.ckpt"))
        let st = try SafeTensorsFile(path: dir.file("m.ckpt"))
        #expect(Set(st.names) == Set(g.initializers.names))
        #expect(st.metadata["dlkit.ckpt_version"] == "1")
        #expect(st.metadata["format"] == "dlkit")
    }

    @Test func plainSafetensorsIsNotACheckpoint() throws {
        let dir = TemporaryFolder()
        try SafeTensorsWriter.write([("w", Tensor(scalar: Float(1)))], metadata: ["format": "pt"], to: dir.file("w.safetensors"))
        do { _ = try Checkpoint(contentsOf: dir.file("w.safetensors")); Issue.record("expected an error") } catch {
            #expect(error.description.contains("a safetensors file without a DLKit graph"))
        }
    }

    @Test func newerVersionIsRefusedWithAMessage() throws {
        let dir = TemporaryFolder()
        try SafeTensorsWriter.write([("w", Tensor(scalar: Float(1)))],
                                    metadata: ["dlkit.ckpt_version": "9", "dlkit.graph": ""], to: dir.file("n.ckpt"))
        do { _ = try Checkpoint(contentsOf: dir.file("n.ckpt")); Issue.record("expected an error") } catch {
            #expect(error.description == "\(dir.file("n.ckpt")): checkpoint version 9 is newer than this DLKit reads (1); update DLKit")
        }
    }

    @Test func missingWeightIsNamed() throws {
        let dir = TemporaryFolder()
        let g = try ONNXReader.read(path: TestPackage.fixture("models/mlp.onnx"))
        try Checkpoint(graph: g).write(to: dir.file("m.ckpt"))
        let st = try SafeTensorsFile(path: dir.file("m.ckpt"))
        var meta = st.metadata
        meta["dlkit.initializers"] = #"["fc1.weight","gone"]"#
        try SafeTensorsWriter.write(try st.tensors(), metadata: meta, to: dir.file("broken.ckpt"))
        do { _ = try Checkpoint(contentsOf: dir.file("broken.ckpt")); Issue.record("expected an error") } catch {
            #expect(error.description == "\(dir.file("broken.ckpt")): the graph needs tensor 'gone', which the file does not hold")
        }
    }

    /// Training state round-trips through the strict JSON parser, and a damaged field is named
    /// (not swallowed as "not the JSON object").
    @Test func trainingStateReadsStrictlyAndNamesTheBadField() throws {
        let dir = TemporaryFolder()
        let g = try ONNXReader.read(path: TestPackage.fixture("models/mlp.onnx"))
        var ck = Checkpoint(graph: g)
        var state = TrainingState(optimizer: "adam", hyperparameters: ["lr": 1e-3, "beta1": 0.9], slots: [:], parameters: ["fc1.weight"],
                                  step: 7, epoch: 2, batchInEpoch: 3, rngState: [1, 0xFFFF_FFFF_FFFF_FFFF], shuffleSeed: 42,
                                  settings: ["loss": "mse"])
        state.callbacks = ["early_stopping": ["best": "0.5"]]
        ck.training = state
        try ck.write(to: dir.file("t.ckpt"))
        #expect(try Checkpoint(contentsOf: dir.file("t.ckpt")).training == state)

        let st = try SafeTensorsFile(path: dir.file("t.ckpt"))
        var meta = st.metadata
        meta["dlkit.progress"] = meta["dlkit.progress"]?.replacingOccurrences(of: #""epoch":2"#, with: #""epoch":"2""#)
        try SafeTensorsWriter.write(try st.tensors(), metadata: meta, to: dir.file("bad.ckpt"))
        do { _ = try Checkpoint(contentsOf: dir.file("bad.ckpt")); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("'dlkit.progress'") && "\(error)".contains("field 'epoch' is a string, not an integer"), "\(error)")
        }
    }
}
