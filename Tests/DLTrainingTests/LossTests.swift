import DLAutograd
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import DLTraining
import Testing

/// Losses and their gradients against torch.autograd (fixtures/training/losses.safetensors).
struct LossTests {
    static let cases: [(String, Loss)] = [
        ("mse", .mse), ("l1", .l1), ("smooth_l1", .smoothL1(beta: 1)), ("huber", .huber(delta: 1)),
        ("cross_entropy", .crossEntropy(labelSmoothing: 0)), ("cross_entropy_smooth", .crossEntropy(labelSmoothing: 0.2)),
        ("cross_entropy_probs", .crossEntropy(labelSmoothing: 0.1)), ("nll", .nll), ("bce", .bce), ("bce_with_logits", .bceWithLogits),
    ]

    @Test(arguments: cases)
    func matchesTorch(name: String, loss: Loss) throws {
        let f = try SafeTensorsFile(path: TestPackage.fixture("training/losses.safetensors"))
        let (value, grad) = try loss.evaluate(output: try f.tensor(named: "\(name).input"), target: try f.tensor(named: "\(name).target"))
        let want = try f.tensor(named: "\(name).loss").doubles()[0]
        #expect(abs(value - want) <= 1e-5 * max(1, abs(want)), "\(name): \(value) vs \(want)")
        let g = grad.doubles(), wg = try f.tensor(named: "\(name).grad").doubles()
        let err = zip(g, wg).map { abs($0 - $1) }.max() ?? 1
        #expect(err <= 1e-6 + 1e-5 * (wg.map(abs).max() ?? 0), "\(name): gradient error \(err)")
    }

    @Test func freezingKeepsMatchingParameters() throws {
        let graph = try ONNXReader.read(path: TestPackage.fixture("training/mlp.onnx"))
        let d = try ParityTests.data("mlp")
        var t = try Trainer(graph: graph, optimizer: Optimizer(config: OptimizerConfig(kind: .adam)),
                            options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 16),
                            progress: TrainingProgress(seed: 3, shuffle: true), frozen: ["fc1.*"])
        #expect(t.trainable == ["fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"])
        for _ in 0..<3 { try t.step(d) }
        #expect(t.weights["fc1.weight"]!.bitwiseEqual(graph.initializers["fc1.weight"]!))
        #expect(!t.weights["fc2.weight"]!.bitwiseEqual(graph.initializers["fc2.weight"]!))
        do {
            _ = try Trainer(graph: graph, optimizer: Optimizer(config: OptimizerConfig(kind: .adam)),
                            options: TrainerOptions(inputName: "x", loss: .mse, batchSize: 16),
                            progress: TrainingProgress(seed: 3, shuffle: true), frozen: ["encoder.*"])
            Issue.record("expected error")
        } catch {
            #expect("\(error)" == "the frozen pattern 'encoder.*' matches no parameter")
        }
        #expect(Differentiator.glob("a.*.w?", matches: "a.b.c.w1"))
        #expect(!Differentiator.glob("a.*", matches: "b.a"))
        // A seeded shuffle: a permutation, the same for the same seed and epoch, different across epochs.
        let o1 = t.order(epoch: 1, count: 64), o2 = t.order(epoch: 2, count: 64)
        #expect(o1.sorted() == Array(0..<64) && o1 != o2 && o1 == t.order(epoch: 1, count: 64))
    }
}
