import DLGraph
import DLTensor
import DLTraining
import Testing

/// A model with several inputs (as a text model's `input_ids` and `attention_mask`) trains with
/// every input fed from the data by name (`Dataset.namedInputs`, `dltrain --input a,b`).
@Suite struct MultiInputTests {
    /// y = x·W + z, with W [2, 1] the one parameter.
    static let graph = Graph(name: "two-inputs",
                             inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("n"), .fixed(2)])),
                                      ValueInfo(name: "z", type: TensorType(dtype: .float32, dims: [.symbolic("n"), .fixed(1)]))],
                             outputs: [ValueInfo(name: "y", type: TensorType(dtype: .float32, dims: [.symbolic("n"), .fixed(1)]))],
                             nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["xw"]),
                                     Node(name: "add", opType: "Add", inputs: ["xw", "z"], outputs: ["y"])],
                             initializers: NamedTensors([("W", Tensor(shape: [2, 1], scalars: [Float(0.5), -0.25]))]))
    static let x: [Float] = [1, 2, -1, 0.5, 3, -2, 0, 1]
    static let z: [Float] = [0.5, -1, 2, 0.25]
    static let t: [Float] = [1, 0, -1, 2]

    static func trainer() throws -> Trainer {
        var config = OptimizerConfig(kind: .sgd)
        config.lr = 0.1
        return try Trainer(graph: graph, optimizer: Optimizer(config: config),
                           options: TrainerOptions(inputName: "x", loss: .mse, batchSize: 4),
                           progress: TrainingProgress(seed: 0, shuffle: false))
    }

    @Test func theSecondInputIsFedAndShapesTheGradient() throws {
        var trainer = try Self.trainer()
        let data = try Dataset(inputs: Tensor(shape: [4, 2], scalars: Self.x), targets: Tensor(shape: [4, 1], scalars: Self.t),
                               namedInputs: ["z": Tensor(shape: [4, 1], scalars: Self.z)])
        try trainer.check(data)
        _ = try trainer.step(data)
        // mse over 4 values: dL/dW = (2 / 4) xᵀ(xW + z - t); W' = W - 0.1 dL/dW.
        var w: [Double] = [0.5, -0.25], g: [Double] = [0, 0]
        for i in 0..<4 {
            let r = Double(Self.x[2 * i]) * w[0] + Double(Self.x[2 * i + 1]) * w[1] + Double(Self.z[i]) - Double(Self.t[i])
            g[0] += 0.5 * Double(Self.x[2 * i]) * r
            g[1] += 0.5 * Double(Self.x[2 * i + 1]) * r
        }
        w = [w[0] - 0.1 * g[0], w[1] - 0.1 * g[1]]
        let got = try #require(trainer.weights["W"]).doubles()
        #expect(abs(got[0] - w[0]) < 1e-6 && abs(got[1] - w[1]) < 1e-6, "\(got) vs \(w)")
    }

    @Test func aMissingOrMistypedInputIsNamed() throws {
        let trainer = try Self.trainer()
        let without = try Dataset(inputs: Tensor(shape: [4, 2], scalars: Self.x), targets: Tensor(shape: [4, 1], scalars: Self.t))
        #expect(throws: TrainingError.self) { try trainer.check(without) }
        do { try trainer.check(without) } catch { #expect("\(error)".contains("'z'") && "\(error)".contains("not in the data"), "\(error)") }
        let ints = try Dataset(inputs: Tensor(shape: [4, 2], scalars: Self.x), targets: Tensor(shape: [4, 1], scalars: Self.t),
                               namedInputs: ["z": Tensor(shape: [4, 1], scalars: [Int64(1), 2, 3, 4])])
        do { try trainer.check(ints); Issue.record("int64 z accepted") } catch { #expect("\(error)".contains("'z'") && "\(error)".contains("int64"), "\(error)") }
        #expect(throws: TrainingError.self) {
            try Dataset(inputs: Tensor(shape: [4, 2], scalars: Self.x), targets: Tensor(shape: [4, 1], scalars: Self.t),
                        namedInputs: ["z": Tensor(shape: [3, 1], scalars: [Float(1), 2, 3])])
        }
    }
}
