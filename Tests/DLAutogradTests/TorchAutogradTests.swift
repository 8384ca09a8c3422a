import DLAutograd
import DLGraph
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import Testing

/// Gradients of a model using many primitives against torch.autograd (fixtures/training/ops.*,
/// made by scripts/fixtures/make_training.py), with BatchNormalization in training mode.
struct TorchAutogradTests {
    @Test func gradientsMatchTorchAutograd() throws {
        let graph = try ONNXReader.read(path: TestPackage.fixture("training/ops.onnx"))
        let ref = try SafeTensorsFile(path: TestPackage.fixture("training/ops.grads.safetensors"))
        let params = Differentiator.trainableParameters(of: graph)
        #expect(Set(params) == ["w", "emb.weight", "fc.weight", "fc.bias", "ln.weight", "ln.bias", "bn.weight", "bn.bias"])
        let diff = try Differentiator(graph: graph, wrt: params + ["x"])
        var rng = TrainingRNG(seed: 1)
        let tape = try diff.forward(["tok": try ref.tensor(named: "input.tok"), "x": try ref.tensor(named: "input.x")], training: true, rng: &rng)
        func close(_ a: Tensor, _ b: Tensor, _ what: String, tol: Double = 1e-5) {
            let x = a.doubles(), y = b.doubles()
            #expect(a.shape == b.shape, "\(what) shape")
            let scale = max(y.map(abs).max() ?? 0, 1e-6)
            let err = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            #expect(err / scale < tol, "\(what): relative error \(err / scale)")
        }
        for o in ["out1", "out2"] { close(try #require(tape.value(o)), try ref.tensor(named: "output.\(o)"), o) }
        let grads = try diff.backward(tape, seeds: ["out1": try ref.tensor(named: "w1"), "out2": try ref.tensor(named: "w2")])
        for p in params + ["x"] { close(try #require(grads[p]), try ref.tensor(named: "grad.\(p)"), "grad \(p)", tol: 1e-4) }
        // Running statistics updated as PyTorch does (unbiased variance, momentum 0.1).
        close(try #require(tape.updatedState["bn.running_mean"]), try ref.tensor(named: "after.bn.running_mean"), "running_mean")
        close(try #require(tape.updatedState["bn.running_var"]), try ref.tensor(named: "after.bn.running_var"), "running_var")
    }

    @Test func missingRuleIsNamed() throws {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "Cos", inputs: ["x"], outputs: ["y"])])
        g.metadata.opsetImports = [(domain: "", version: 17)]
        do { _ = try Differentiator(graph: g, wrt: ["x"]); Issue.record("expected error") } catch {
            #expect("\(error)" == "no gradient rule for Cos (1x)")
        }
    }
}

extension TorchAutogradTests {
    /// A bidirectional LSTM feeding a GRU, exported by torch (gates reordered with Slice/Concat):
    /// outputs and the gradients of every parameter and of the input match torch.autograd.
    @Test func recurrentGradientsMatchTorchAutograd() throws {
        let graph = try ONNXReader.read(path: TestPackage.fixture("training/rnn.onnx"))
        let ref = try SafeTensorsFile(path: TestPackage.fixture("training/rnn.grads.safetensors"))
        let params = Differentiator.trainableParameters(of: graph)
        #expect(params.count == 12, "\(params)")
        let diff = try Differentiator(graph: graph, wrt: params + ["x"])
        var rng = TrainingRNG(seed: 1)
        let tape = try diff.forward(["x": try ref.tensor(named: "input.x")], training: true, rng: &rng)
        func close(_ a: Tensor, _ b: Tensor, _ what: String, tol: Double) {
            let x = a.doubles(), y = b.doubles()
            #expect(a.elementCount == b.elementCount, "\(what) size")
            let scale = max(y.map(abs).max() ?? 0, 1e-6)
            let err = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            #expect(err / scale < tol, "\(what): relative error \(err / scale)")
        }
        close(try #require(tape.value("y")), try ref.tensor(named: "output.y"), "y", tol: 1e-5)
        let grads = try diff.backward(tape, seeds: ["y": try ref.tensor(named: "w").reshaped(to: tape.value("y")!.shape)])
        for p in params + ["x"] { close(try #require(grads[p]), try ref.tensor(named: "grad.\(p)"), "grad \(p)", tol: 1e-4) }
    }
}
