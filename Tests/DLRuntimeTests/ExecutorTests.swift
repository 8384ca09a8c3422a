import DLGraph
import Foundation
import DLRuntime
import DLTensor
import Testing

func f32(_ shape: [Int], _ values: [Float]) -> Tensor { Tensor(shape: shape, scalars: values) }

/// Runs a one-node graph whose inputs are `x0, x1, ...` (those in `weights` as initializers).
func runOne(_ op: String, _ inputs: [Tensor], weights: Set<Int> = [], attributes: [Attribute] = []) throws -> Tensor {
    var inits = NamedTensors()
    var infos: [ValueInfo] = []
    var feed: [String: Tensor] = [:]
    for (i, t) in inputs.enumerated() {
        if weights.contains(i) { inits["x\(i)"] = t } else {
            infos.append(ValueInfo(name: "x\(i)", type: TensorType(dtype: t.dtype, dims: t.shape.map { _ in .unknown })))
            feed["x\(i)"] = t
        }
    }
    let g = Graph(name: "g", inputs: infos, outputs: [ValueInfo(name: "y", type: nil)],
                  nodes: [Node(opType: op, inputs: inputs.indices.map { "x\($0)" }, outputs: ["y"], attributes: attributes)],
                  initializers: inits)
    let out = try Executor(graph: g).run(feed)
    return try #require(out["y"])
}

struct ExecutorTests {
    @Test func gemmAddsBroadcastBiasWithAlphaAndBeta() throws {
        let a = f32([2, 2], [1, 2, 3, 4]), b = f32([2, 2], [1, 0, 0, 1]), c = f32([2], [10, 20])
        let y = try runOne("Gemm", [a, b, c], attributes: [Attribute(name: "alpha", value: .float(2)), Attribute(name: "beta", value: .float(0.5))])
        #expect(y.scalars(as: Float.self) == [7, 14, 11, 18])
    }

    @Test func gemmTransposesB() throws {
        let a = f32([1, 3], [1, 2, 3]), b = f32([2, 3], [1, 1, 1, 0, 1, 0])
        let y = try runOne("Gemm", [a, b], attributes: [Attribute(name: "transB", value: .int(1))])
        #expect(y.shape == [1, 2] && y.scalars(as: Float.self) == [6, 2])
    }

    @Test func matmulBroadcastsBatchDims() throws {
        let a = f32([2, 1, 2], [1, 2, 3, 4]), b = f32([2, 1], [1, 1])
        let y = try runOne("MatMul", [a, b])
        #expect(y.shape == [2, 1, 1] && y.scalars(as: Float.self) == [3, 7])
        let c = f32([2, 2, 2], [1, 0, 0, 1, 2, 0, 0, 2]), d = f32([2, 2], [1, 2, 3, 4])
        #expect(try runOne("MatMul", [d, c]).scalars(as: Float.self) == [1, 2, 3, 4, 2, 4, 6, 8])
    }

    @Test func int64ArithmeticBroadcasts() throws {
        let a = Tensor(shape: [2, 2], scalars: [Int64](arrayLiteral: 7, -7, 9, 10)), b = Tensor(shape: [2], scalars: [Int64](arrayLiteral: 2, 3))
        #expect(try runOne("Div", [a, b]).scalars(as: Int64.self) == [3, -2, 4, 3])
        #expect(try runOne("Sub", [a, b]).scalars(as: Int64.self) == [5, -10, 7, 7])
    }

    @Test func softmaxOverAMiddleAxis() throws {
        let x = f32([1, 2, 2], [0, 0, 0, 1])
        let y = try runOne("Softmax", [x], attributes: [Attribute(name: "axis", value: .int(1))]).scalars(as: Float.self)
        let e = Float(1) / (1 + Float(M_E)), f = 1 - e
        #expect(Swift.abs(y[0] - 0.5) < 1e-6 && Swift.abs(y[1] - e) < 1e-6 && Swift.abs(y[3] - f) < 1e-6)
    }

    @Test func convOneDimensionalWithPadding() throws {
        let x = f32([1, 1, 4], [1, 2, 3, 4]), w = f32([1, 1, 3], [1, 1, 1])
        let y = try runOne("Conv", [x, w], weights: [1], attributes: [Attribute(name: "pads", value: .ints([1, 1]))])
        #expect(y.shape == [1, 1, 4] && y.scalars(as: Float.self) == [3, 6, 9, 7])
    }

    @Test func maxAndAveragePool() throws {
        let x = f32([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8])
        let k = [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))]
        #expect(try runOne("MaxPool", [x], attributes: k).scalars(as: Float.self) == [6, 8])
        #expect(try runOne("AveragePool", [x], attributes: k).scalars(as: Float.self) == [3.5, 5.5])
        #expect(try runOne("GlobalAveragePool", [x]).scalars(as: Float.self) == [4.5])
    }

    @Test func batchNormUsesRunningStatistics() throws {
        let x = f32([1, 2, 1, 1], [3, 4])
        let y = try runOne("BatchNormalization", [x, f32([2], [2, 1]), f32([2], [1, 0]), f32([2], [1, 2]), f32([2], [4, 1])],
                           weights: [1, 2, 3, 4], attributes: [Attribute(name: "epsilon", value: .float(0))])
        #expect(y.scalars(as: Float.self) == [3, 2])
    }

    @Test func transposeConcatReshape() throws {
        let x = f32([2, 3], [1, 2, 3, 4, 5, 6])
        #expect(try runOne("Transpose", [x]).scalars(as: Float.self) == [1, 4, 2, 5, 3, 6])
        #expect(try runOne("Concat", [x, x], attributes: [Attribute(name: "axis", value: .int(1))]).shape == [2, 6])
        let shape = Tensor(shape: [1], scalars: [Int64(-1)])
        #expect(try runOne("Reshape", [x, shape], weights: [1]).shape == [6])
        #expect(try runOne("Flatten", [x], attributes: [Attribute(name: "axis", value: .int(0))]).shape == [1, 6])
    }

    @Test func missingInputIsNamed() throws {
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])])
        let e = try Executor(graph: g)
        #expect(throws: RuntimeError.self) { try e.run([:]) }
        do { _ = try e.run([:]) } catch { #expect(error.description == "input 'x' is missing") }
        do { _ = try e.run(["x": f32([2], [1, 2])]) } catch { #expect(error.description == "input 'x' has shape [2], expected [1]") }
        do { _ = try e.run(["x": Tensor(shape: [1], scalars: [Int64(1)])]) } catch {
            #expect(error.description == "input 'x' must be float32, got int64")
        }
        do { _ = try e.run(["x": f32([1], [1]), "z": f32([1], [1])]) } catch {
            #expect(error.description == "'z' is not an input of the model (inputs: x)")
        }
    }

    /// Axes sharing a symbolic name may differ at run time (ONNX Runtime runs such models); the
    /// kernel that combines them checks the shapes.
    @Test func symbolicDimNamesAreHintsNotConstraints() throws {
        let t = TensorType(dtype: .float32, dims: [.symbolic("n")])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "a", type: t), ValueInfo(name: "b", type: t)],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [Node(opType: "Add", inputs: ["a", "b"], outputs: ["y"])])
        let e = try Executor(graph: g)
        let y = try e.run(["a": f32([2], [1, 2]), "b": f32([1], [10])])["y"]
        #expect(y?.shape == [2])
        #expect(y?.scalars(as: Float.self) == [11, 12])
        do {
            _ = try e.run(["a": f32([2], [1, 2]), "b": f32([3], [1, 2, 3])])
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("earlier input"), "\(error.description)")
        }
    }

    @Test func executorListsEveryOpWithoutAKernel() {
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: nil)], outputs: [],
                      nodes: [Node(opType: "FancyEinsum", inputs: ["x"], outputs: ["a"]), Node(opType: "FancyErf", inputs: ["a"], outputs: ["b"])])
        do { _ = try Executor(graph: g); Issue.record("expected an error") } catch {
            #expect(error.description == "unsupported ops: FancyEinsum, FancyErf")
        }
    }
}
