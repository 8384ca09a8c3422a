import DLAutograd
import DLGraph
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import DLTraining
import Foundation
import Testing

/// Training the fixture models reproduces PyTorch's weights (fixtures/training, made by
/// scripts/fixtures/make_training.py with torch 2.13).
struct ParityTests {
    static let hyper: [OptimizerKind: OptimizerConfig] = {
        var sgd = OptimizerConfig(kind: .sgd)
        sgd.lr = 0.05; sgd.momentum = 0.9; sgd.nesterov = true; sgd.weightDecay = 1e-4
        var rms = OptimizerConfig(kind: .rmsprop)
        rms.lr = 0.005; rms.alpha = 0.95; rms.eps = 1e-8; rms.momentum = 0.5; rms.centered = true; rms.weightDecay = 1e-4
        var adam = OptimizerConfig(kind: .adam)
        adam.lr = 0.01; adam.beta1 = 0.9; adam.beta2 = 0.99; adam.eps = 1e-8; adam.weightDecay = 1e-4
        var adamw = OptimizerConfig(kind: .adamw)
        adamw.lr = 0.01; adamw.beta1 = 0.85; adamw.beta2 = 0.995; adamw.eps = 1e-7; adamw.weightDecay = 0.02; adamw.amsgrad = true
        return [.sgd: sgd, .rmsprop: rms, .adam: adam, .adamw: adamw]
    }()

    static func data(_ model: String) throws -> Dataset {
        let f = try SafeTensorsFile(path: TestPackage.fixture("training/\(model).data.safetensors"))
        return try Dataset(inputs: try f.tensor(named: "x"), targets: try f.tensor(named: "y"))
    }

    static func trainer(_ model: String, _ kind: OptimizerKind) throws -> Trainer {
        let graph = try ONNXReader.read(path: TestPackage.fixture("training/\(model).onnx"))
        return try Trainer(graph: graph, optimizer: Optimizer(config: hyper[kind]!),
                           options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 16),
                           progress: TrainingProgress(seed: 0, shuffle: false))
    }

    /// The largest over parameters of max|ours - torch| / max|torch|.
    static func difference(_ t: Trainer, expected: SafeTensorsFile, prefix: String) throws -> Double {
        var worst = 0.0
        for name in t.trainable {
            let ours = t.weights[name]!.doubles()
            let theirs = try expected.tensor(named: "\(prefix).\(name)").doubles()
            let scale = theirs.map(abs).max() ?? 1
            let diff = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, diff / max(scale, 1e-12))
        }
        return worst
    }

    static let cases: [(String, OptimizerKind)] = ["mlp", "cnn"].flatMap { m in OptimizerKind.allCases.map { (m, $0) } }

    @Test(arguments: cases)
    func fortyStepsMatchTorch(model: String, kind: OptimizerKind) throws {
        var t = try Self.trainer(model, kind)
        let d = try Self.data(model)
        let expected = try SafeTensorsFile(path: TestPackage.fixture("training/\(model).\(kind.rawValue).safetensors"))
        for _ in 0..<20 { try t.step(d) }
        let at20 = try Self.difference(t, expected: expected, prefix: "step20")
        var last = 0.0
        for _ in 0..<20 { last = try t.step(d) }
        let at40 = try Self.difference(t, expected: expected, prefix: "step40")
        print("parity \(model) \(kind.rawValue): step20 \(at20), step40 \(at40), loss \(last)")
        #expect(at20 < 1e-5)
        #expect(at40 < 1e-5)
        let torchLoss = try expected.tensor(named: "loss40").doubles()[0]
        #expect(abs(last - torchLoss) <= 1e-5 * max(1, abs(torchLoss)))
    }
}
