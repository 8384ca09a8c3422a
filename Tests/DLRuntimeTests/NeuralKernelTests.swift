import DLGraph
import DLRuntime
import DLTensor
import Foundation
import Testing

/// Kernels of the neural-network families on small hand-checked cases, and their refusals of bad
/// input (a typed error, never a crash).
struct NeuralKernelTests {
    func f64(_ shape: [Int], _ values: [Double]) -> Tensor { Tensor(shape: shape, scalars: values) }
    func i64(_ shape: [Int], _ values: [Int64]) -> Tensor { Tensor(shape: shape, scalars: values) }
    func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(v)) }

    @Test func hardmaxPicksTheFirstMaximumAlongTheAxis() throws {
        let y = try runOne("Hardmax", [f64([2, 3], [1, 3, 3, 5, 0, 5])], attributes: [attr("axis", 1)])
        #expect(y.dtype == .float64 && y.scalars(as: Double.self) == [0, 1, 0, 1, 0, 0])
    }

    @Test func logSoftmaxOnFloat64AlongTheFirstAxis() throws {
        let y = try runOne("LogSoftmax", [f64([2, 1], [0, 0])], attributes: [attr("axis", 0)])
        #expect(y.scalars(as: Double.self).allSatisfy { abs($0 - log(0.5)) < 1e-12 })
    }

    @Test func nllLossMeanSkipsIgnoredLabelsAndDividesByTheirWeights() throws {
        // log-probs of 2 samples x 2 classes; the second label is ignored.
        let x = f64([2, 2], [-1, -2, -3, -4]), labels = i64([2], [1, 7])
        let y = try runOne("NegativeLogLikelihoodLoss", [x, labels], attributes: [attr("ignore_index", 7)])
        #expect(y.shape == [] && y.scalars(as: Double.self) == [2])
    }

    @Test func nllLossRejectsALabelOutsideTheClasses() throws {
        do {
            _ = try runOne("NegativeLogLikelihoodLoss", [f64([1, 2], [-1, -2]), i64([1], [5])])
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("label 5")) }
    }

    @Test func layerNormReturnsStatisticsPerRow() throws {
        let x = f64([2, 2], [1, 3, 0, 4]), scale = f64([2], [1, 1])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float64, shape: [2, 2]))],
                      outputs: ["y", "mean", "inv"].map { ValueInfo(name: $0, type: nil) },
                      nodes: [Node(opType: "LayerNormalization", inputs: ["x", "s"], outputs: ["y", "mean", "inv"],
                                   attributes: [Attribute(name: "epsilon", value: .float(0))])],
                      initializers: NamedTensors([("s", scale)]))
        let out = try Executor(graph: g).run(["x": x])
        #expect(out["y"]?.scalars(as: Double.self) == [-1, 1, -1, 1])
        #expect(out["mean"]?.shape == [2, 1] && out["mean"]?.dtype == .float32)
        #expect(out["mean"]?.scalars(as: Float.self) == [2, 2])
        #expect(out["inv"]?.scalars(as: Float.self) == [1, 0.5])
    }

    @Test func layerNormRejectsAScaleThatDoesNotBroadcast() throws {
        do {
            _ = try runOne("LayerNormalization", [f64([2, 3], [1, 2, 3, 4, 5, 6]), f64([2], [1, 1])])
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("scale")) }
    }

    @Test func attentionZeroesAFullyMaskedRow() throws {
        let q = f32([1, 1, 2, 2], [1, 0, 0, 1]), k = f32([1, 1, 2, 2], [1, 0, 0, 1]), v = f32([1, 1, 2, 2], [1, 2, 3, 4])
        let mask = Tensor.init(shape: [2, 2], scalars: [Float(0), 0, -.infinity, -.infinity])
        let y = try runOne("Attention", [q, k, v, mask])
        let values = y.scalars(as: Float.self)
        #expect(values[2] == 0 && values[3] == 0)
        #expect(values[0] > 1 && values[0] < 3)
    }

    @Test func quantizeLinearRoundsHalfToEvenAndSaturates() throws {
        let x = f32([4], [0.5, 1.5, 2.5, 1000]), scale = f32([], [1])
        let y = try runOne("QuantizeLinear", [x, scale])
        #expect(y.dtype == .uint8 && y.scalars(as: UInt8.self) == [0, 2, 2, 255])
    }

    @Test func quantizeLinearRejectsAScalePerAxisOfTheWrongLength() throws {
        do {
            _ = try runOne("QuantizeLinear", [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([2], [1, 1])])
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("y_scale")) }
    }

    @Test func einsumImplicitOutputIsAMatrixProduct() throws {
        let a = f64([2, 2], [1, 2, 3, 4]), b = f64([2, 2], [5, 6, 7, 8])
        let y = try runOne("Einsum", [a, b], attributes: [Attribute(name: "equation", value: .string("ij,jk"))])
        #expect(y.shape == [2, 2] && y.scalars(as: Double.self) == [19, 22, 43, 50])
    }

    @Test func einsumTakesADiagonalWithAnEllipsis() throws {
        let x = f64([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        let y = try runOne("Einsum", [x], attributes: [Attribute(name: "equation", value: .string("...ii->...i"))])
        #expect(y.shape == [2, 2] && y.scalars(as: Double.self) == [1, 4, 5, 8])
    }

    @Test func seededTrainingDropoutFollowsNumpy() throws {
        // np.random.seed(0); np.random.uniform(0, 1, 4) >= 0.55 -> [F, T, T, F]
        let x = f32([4], [1, 1, 1, 1]), ratio = f32([], [0.55]), training = Tensor(shape: [], scalars: [true])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [4]))],
                      outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "m", type: nil)],
                      nodes: [Node(opType: "Dropout", inputs: ["x", "r", "t"], outputs: ["y", "m"], attributes: [attr("seed", 0)])],
                      initializers: NamedTensors([("r", ratio), ("t", training)]))
        let out = try Executor(graph: g).run(["x": x])
        #expect(out["m"]?.scalars(as: Bool.self) == [false, true, true, false])
        let y = try #require(out["y"]).scalars(as: Float.self)
        #expect(y[0] == 0 && abs(y[1] - 1 / 0.45) < 1e-5)
    }

    @Test func dftOfAConstantHasOnlyADcTerm() throws {
        let x = f32([1, 4, 1], [1, 1, 1, 1])
        let y = try runOne("DFT", [x], attributes: [attr("onesided", 1)])
        #expect(y.shape == [1, 3, 2])
        let v = y.scalars(as: Float.self)
        #expect(abs(v[0] - 4) < 1e-6 && v[1...].allSatisfy { abs($0) < 1e-6 })
    }
}
