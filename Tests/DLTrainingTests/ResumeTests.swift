import DLAutograd
import DLCheckpoint
import DLGraph
import DLKit
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import DLTraining
import Foundation
import Testing

/// Stopping and resuming, through our .ckpt and from PyTorch's saved state, ends where an
/// uninterrupted run (and PyTorch) ends.
struct ResumeTests {
    typealias P = ParityTests

    static func resumed(from path: String, options: TrainerOptions) throws -> Trainer {
        let ckpt = try Checkpoint(contentsOf: path)
        let state = try #require(ckpt.training)
        let config = try TrainingSession.config(from: state)
        return try Trainer(graph: ckpt.graph, optimizer: Optimizer(config: config, slots: state.slots), options: options,
                           progress: TrainingSession.progress(from: state, seed: 0, shuffle: false))
    }

    @Test(arguments: P.cases)
    func twentySaveResumeTwenty(model: String, kind: OptimizerKind) throws {
        let d = try P.data(model)
        var t = try P.trainer(model, kind)
        for _ in 0..<20 { try t.step(d) }
        let tmp = TemporaryFolder()
        try TrainingSession.checkpoint(of: t, settings: ["loss": "cross_entropy"]).write(to: tmp.file("run.ckpt"))
        var r = try Self.resumed(from: tmp.file("run.ckpt"), options: t.options)
        #expect(r.progress == t.progress)
        for _ in 0..<20 { try r.step(d) }
        for _ in 0..<20 { try t.step(d) }
        for name in t.trainable {
            #expect(r.weights[name]!.bitwiseEqual(t.weights[name]!), "\(name) differs after resuming")
        }
        let expected = try SafeTensorsFile(path: TestPackage.fixture("training/\(model).\(kind.rawValue).safetensors"))
        #expect(try P.difference(r, expected: expected, prefix: "step40") < 1e-5)
    }

    @Test(arguments: P.cases)
    func fromTorchStepTwentyState(model: String, kind: OptimizerKind) throws {
        let d = try P.data(model)
        var graph = try ONNXReader.read(path: TestPackage.fixture("training/\(model).onnx"))
        let weights = try StateDict(contentsOf: URL(fileURLWithPath: TestPackage.fixture("training/\(model).\(kind.rawValue).step20.pt")))
        for (name, t) in weights { graph.initializers[name] = t }
        let params = Differentiator.trainableParameters(of: graph)
        var shapes: [String: [Int]] = [:]
        for p in params { shapes[p] = graph.initializers[p]?.shape }
        let state = try TrainingSession.importTorch(path: TestPackage.fixture("training/\(model).\(kind.rawValue).opt20.pt"),
                                                    parameters: params, shapes: shapes)
        let config = try TrainingSession.config(from: state)
        #expect(config == P.hyper[kind]!)
        var progress = TrainingProgress(seed: 0, shuffle: false)
        progress.step = state.step
        var t = try Trainer(graph: graph, optimizer: Optimizer(config: config, slots: state.slots),
                            options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 16), progress: progress)
        for _ in 0..<20 { try t.step(d) }
        let expected = try SafeTensorsFile(path: TestPackage.fixture("training/\(model).\(kind.rawValue).safetensors"))
        let diff = try P.difference(t, expected: expected, prefix: "step40")
        print("from-torch \(model) \(kind.rawValue): step40 \(diff)")
        #expect(diff < 1e-5)
    }

    @Test func optimizerStateRoundTripsThroughTorchFormat() throws {
        let d = try P.data("mlp")
        var t = try P.trainer("mlp", .adamw)
        for _ in 0..<3 { try t.step(d) }
        let tmp = TemporaryFolder()
        let state = TrainingSession.state(of: t, settings: [:])
        try TrainingSession.exportTorch(state, to: tmp.file("opt.pt"))
        var shapes: [String: [Int]] = [:]
        for p in t.trainable { shapes[p] = t.weights[p]?.shape }
        let back = try TrainingSession.importTorch(path: tmp.file("opt.pt"), parameters: t.trainable, shapes: shapes)
        #expect(back.hyperparameters == state.hyperparameters)
        #expect(back.step == 3)
        for p in t.trainable {
            for (k, v) in state.slots[p] ?? [:] { #expect(back.slots[p]?[k]?.bitwiseEqual(v) == true, "\(p).\(k)") }
        }
    }

    @Test func badInputsGiveClearErrors() throws {
        let d = try P.data("mlp")
        // A target out of range for cross-entropy.
        var t = try P.trainer("mlp", .sgd)
        let bad = try Dataset(inputs: try d.inputs, targets: Tensor(shape: [64], scalars: [Int64](repeating: 9, count: 64)))
        do { try t.step(bad); Issue.record("expected error") } catch {
            #expect("\(error)".contains("target 9"), "\(error)")
        }
        #expect(t.progress.step == 0)
        // Data whose samples do not fit the model input.
        let wrong = try Dataset(inputs: Tensor(zeros: .float32, shape: [8, 5]), targets: Tensor(zeros: .int64, shape: [8]))
        do { try t.check(wrong); Issue.record("expected error") } catch {
            #expect("\(error)".contains("[5]"), "\(error)")
        }
        // An optimizer state for another model.
        var shapes: [String: [Int]] = [:]
        let cnn = try ONNXReader.read(path: TestPackage.fixture("training/cnn.onnx"))
        let params = Differentiator.trainableParameters(of: cnn)
        for p in params { shapes[p] = cnn.initializers[p]?.shape }
        do {
            _ = try TrainingSession.importTorch(path: TestPackage.fixture("training/mlp.adam.opt20.pt"), parameters: params, shapes: shapes)
            Issue.record("expected error")
        } catch {
            #expect("\(error)".contains("conv1.weight"), "\(error)")
        }
        // A NaN loss stops before updating.
        let graph = try ONNXReader.read(path: TestPackage.fixture("training/mlp.onnx"))
        var n = try Trainer(graph: graph, optimizer: Optimizer(config: OptimizerConfig(kind: .sgd)),
                            options: TrainerOptions(inputName: "x", loss: .mse, batchSize: 16), progress: TrainingProgress(seed: 0, shuffle: false))
        var ys = [Float](repeating: 0, count: 64 * 4)
        ys[70] = .nan
        let nanData = try Dataset(inputs: try d.inputs, targets: Tensor(shape: [64, 4], scalars: ys))
        try n.step(nanData)
        let before = n.weights
        do { try n.step(nanData); Issue.record("expected error") } catch {
            #expect("\(error)" == "the loss became nan at step 2; stopped", "\(error)")
        }
        #expect(n.progress.step == 1)
        for name in n.trainable { #expect(n.weights[name]!.bitwiseEqual(before[name]!)) }
        // A NaN input that the loss does not see still stops at the gradient.
        var m = try P.trainer("mlp", .sgd)
        var xs = try d.inputs.scalars(as: Float.self)
        xs[0] = .nan
        let nanInput = try Dataset(inputs: Tensor(shape: try d.inputs.shape, scalars: xs), targets: d.targets)
        do { try m.step(nanInput); Issue.record("expected error") } catch {
            #expect("\(error)".contains("step 1"), "\(error)")
        }
    }
}
