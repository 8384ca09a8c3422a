import DLKit
import DLServe
import DLTestSupport
import Foundation
import Testing

/// The code of the DocC article `GettingStarted.md`, run on the repository's fixtures: when the
/// API moves, this fails and the article is mended with it. Paths are the only difference.
@Suite(.serialized)
struct GettingStartedTests {
    let mlp = URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))
    let trainingModel = URL(fileURLWithPath: TestPackage.fixture("training/mlp.onnx"))
    let trainingData = URL(fileURLWithPath: TestPackage.fixture("training/mlp.data.safetensors"))

    @Test func loadAndRun() throws {
        let model = try Model(contentsOf: mlp)
        #expect(model.inputs.map(\.name) == ["x"])
        let pixels = [Float](repeating: 0.5, count: 784)
        let outputs = try model.run(["x": Tensor(shape: [1, 784], scalars: pixels)])
        let y = try #require(outputs["y"])
        #expect(y.shape == [1, 10])

        var options = RuntimeOptions.default
        options.threads = 2
        let fast = try Model(contentsOf: mlp, options: options)
        #expect(try fast.run(["x": Tensor(shape: [1, 784], scalars: pixels)])["y"] == y)
    }

    @Test func aWrongInputIsNotAnUnsupportedOne() throws {
        let model = try Model(contentsOf: mlp)
        var caught: RuntimeError?
        do throws(DLKitError) {
            _ = try model.run(["x": Tensor(shape: [1, 3], scalars: [Float](repeating: 0, count: 3))])
        } catch .runtime(let error) {
            caught = error
        } catch {
            Issue.record("expected a runtime error, got \(error)")
        }
        let error = try #require(caught)
        #expect(!error.isUnsupported, "\(error)")
    }

    @Test func convertAndWeights() throws {
        let tmp = TemporaryFolder()
        let report = try Converter.convert(from: mlp, to: URL(fileURLWithPath: tmp.file("mlp.ckpt")), options: ConversionOptions())
        #expect(report.inputFormat == .onnx)
        let x = Tensor(shape: [1, 784], scalars: (0..<784).map { Float($0 % 7) / 7 })
        #expect(try Model(contentsOf: URL(fileURLWithPath: tmp.file("mlp.ckpt"))).run(["x": x]) == Model(contentsOf: mlp).run(["x": x]))

        let weights = try StateDict(contentsOf: mlp)
        #expect(weights.count > 0)
        try weights.write(to: URL(fileURLWithPath: tmp.file("mlp.pt")))
        let back = try StateDict(contentsOf: URL(fileURLWithPath: tmp.file("mlp.pt")))
        for (name, tensor) in weights { #expect(back.tensors[name] == tensor, "\(name)") }
    }

    @Test func trainFurther() throws {
        let tmp = TemporaryFolder()
        let graph = try Model(contentsOf: trainingModel).graph
        let data = try StateDict(contentsOf: trainingData)
        let x = try #require(data.tensors["x"]), y = try #require(data.tensors["y"])
        let all = try Dataset(inputs: x, targets: y)
        let (train, validation) = try Trainer.split(all, validationFraction: 0.25)

        var sgd = OptimizerConfig(kind: .sgd)
        sgd.lr = 0.1
        let trainer = try Trainer(graph: graph, optimizer: Optimizer(config: sgd),
                                  options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 16),
                                  progress: TrainingProgress(seed: 0, shuffle: true))
        var loop = TrainingLoop(trainer: trainer, metrics: [.accuracy], validation: validation)
        var epochs = 0
        try loop.run(train, epochs: 2, save: { _, _ in }, report: { if case .epochEnded = $0 { epochs += 1 } })
        #expect(epochs == 2)

        let trained = loop.trainer.trainable.compactMap { name in loop.trainer.weights[name].map { (name, $0) } }
        try StateDict(NamedTensors(trained)).write(to: URL(fileURLWithPath: tmp.file("trained.safetensors")))
        let saved = try StateDict(contentsOf: URL(fileURLWithPath: tmp.file("trained.safetensors")))
        #expect(saved.count == trained.count && trained.count > 0)
        #expect(trained.contains { name, t in graph.initializers[name].map { $0 != t } ?? false }, "training moved no weight")
    }

    @Test func serve() throws {
        let model = try Model(contentsOf: mlp)
        let server = try InferenceServer(models: [model])
        let data = [String](repeating: "0.5", count: 784).joined(separator: ",")
        let answer = server.handle(line: #"{"id":"1","inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":[\#(data)]}]}"#)
        #expect(answer.contains(#""id":"1""#) && answer.contains(#""name":"y""#), "\(answer)")
    }
}
