@testable import DLKit
import DLTestSupport
import Foundation
import Testing

/// Weights bound onto a graph by name: strict by default, every problem in one error.
struct WeightBindingTests {
    static func graph() throws -> Graph { try Model.loadGraph(path: TestPackage.fixture("models/mlp.onnx")).0 }

    /// The graph's own weights as a state dict, each scaled by `factor`.
    static func weights(_ g: Graph, scaledBy factor: Float = 2) -> StateDict {
        var d = StateDict()
        for (n, t) in g.initializers { d[n] = Tensor(shape: t.shape, scalars: t.scalars(as: Float.self).map { $0 * factor }) }
        return d
    }

    @Test func matchingWeightsReplaceEveryInitializer() throws {
        let g = try Self.graph()
        let r = try WeightBinding.bind(Self.weights(g), onto: g)
        #expect(r.bound == g.initializers.names && r.missing.isEmpty && r.converted.isEmpty)
        for (n, t) in g.initializers {
            #expect(r.graph.initializers[n]?.scalars(as: Float.self) == t.scalars(as: Float.self).map { $0 * 2 })
        }
        #expect(r.graph.nodes.count == g.nodes.count && r.graph.inputs == g.inputs)
    }

    @Test func everyMissingExtraAndMismatchedTensorIsInOneError() throws {
        let g = try Self.graph()
        var w = Self.weights(g)
        w["fc1.bias"] = nil
        w["fc3.bias"] = nil
        w["head.weight"] = Tensor(shape: [2], scalars: [Float(1), 2])
        w["fc2.weight"] = Tensor(zeros: .float32, shape: [3, 3])
        w["fc2.bias"] = Tensor(zeros: .float64, shape: [512])
        do {
            _ = try WeightBinding.bind(w, onto: g, weightsName: "w.safetensors", graphName: "mlp.onnx")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "w.safetensors do not fit mlp.onnx: 2 missing ('fc1.bias', 'fc3.bias'); "
                + "1 extra, not in the graph ('head.weight'); 2 of another shape or type "
                + "('fc2.weight': graph float32[512,512], weights float32[3,3], 'fc2.bias': graph float32[512], weights float64[512])")
        }
    }

    @Test func floatsWidenByThemselvesAndNarrowOnlyWhenAskedEachConversionReported() throws {
        let g = try Self.graph()
        var w = Self.weights(g)
        let bias = try #require(g.initializers["fc1.bias"])
        let half = Self.weights(g)["fc1.bias"]!.converted(to: .float16)
        w["fc1.bias"] = half
        let r = try WeightBinding.bind(w, onto: g)
        #expect(r.converted == [.init(name: "fc1.bias", from: .float16, to: .float32)])
        #expect(r.graph.initializers["fc1.bias"]?.dtype == .float32 && r.bound.count == g.initializers.count)
        #expect(r.graph.initializers["fc1.bias"]?.scalars(as: Float.self) == half.converted(to: .float32).scalars(as: Float.self))

        w["fc1.bias"] = Self.weights(g)["fc1.bias"]!.converted(to: .float64)
        #expect(throws: DLKitError.self) { try WeightBinding.bind(w, onto: g) }
        let narrowed = try WeightBinding.bind(w, onto: g, policy: .init(convertNarrowingFloats: true))
        #expect(narrowed.converted == [.init(name: "fc1.bias", from: .float64, to: .float32)])

        w["fc1.bias"] = Tensor(shape: bias.shape, scalars: [Int32](repeating: 1, count: bias.elementCount))
        do { _ = try WeightBinding.bind(w, onto: g, policy: .init(convertNarrowingFloats: true)); Issue.record("expected an error") } catch {
            #expect(error.description.hasSuffix("1 of another shape or type ('fc1.bias': graph float32[512], weights int32[512])"))
        }
    }

    @Test func allowUnexpectedLeavesExtraWeightsOutAndReportsThem() throws {
        let g = try Self.graph()
        var w = Self.weights(g)
        w["head.weight"] = Tensor(scalar: Float(1))
        let r = try WeightBinding.bind(w, onto: g, policy: .init(allowUnexpected: true))
        #expect(r.unexpected == ["head.weight"] && r.bound.count == g.initializers.count)
    }

    @Test func allowMissingKeepsTheGraphsValuesButStillRefusesExtras() throws {
        let g = try Self.graph()
        var w = Self.weights(g)
        w["fc3.bias"] = nil
        let r = try WeightBinding.bind(w, onto: g, policy: .init(allowMissing: true))
        #expect(r.missing == ["fc3.bias"])
        #expect(r.graph.initializers["fc3.bias"]?.bitwiseEqual(g.initializers["fc3.bias"]!) == true)
        w["extra"] = Tensor(scalar: Float(1))
        do { _ = try WeightBinding.bind(w, onto: g, policy: .init(allowMissing: true)); Issue.record("expected an error") } catch {
            #expect(error.description == "the weights do not fit the graph: 1 extra, not in the graph ('extra')")
        }
    }

    @Test func convertWithGraphBindsSafetensorsAndWritesOnlyOnSuccess() throws {
        let dir = TemporaryFolder()
        let g = try Self.graph()
        try Self.weights(g).write(safetensorsTo: dir.url("w.safetensors"))
        let report = try Converter.convert(from: dir.url("w.safetensors"), to: dir.url("out.onnx"),
                                           options: ConversionOptions(graph: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))))
        #expect(report.binding?.bound.count == 6)
        let back = try Model.loadGraph(path: dir.file("out.onnx")).0
        #expect(back.initializers["fc1.bias"]?.scalars(as: Float.self) == g.initializers["fc1.bias"]!.scalars(as: Float.self).map { $0 * 2 })
        // A checkpoint as the output, and as the weights source.
        _ = try Converter.convert(from: dir.url("out.onnx"), to: dir.url("out.ckpt"),
                                  options: ConversionOptions(graph: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))))
        _ = try Converter.convert(from: dir.url("out.ckpt"), to: dir.url("again.onnx"),
                                  options: ConversionOptions(graph: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))))
        #expect(dir.contents() == ["again.onnx", "out.ckpt", "out.onnx", "w.safetensors"])
        var w = Self.weights(g)
        w["fc1.bias"] = nil
        try w.write(safetensorsTo: dir.url("bad.safetensors"))
        do {
            _ = try Converter.convert(from: dir.url("bad.safetensors"), to: dir.url("bad.onnx"),
                                      options: ConversionOptions(graph: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("1 missing ('fc1.bias')"))
        }
        #expect(!dir.contents().contains("bad.onnx"))
    }
}

/// `ModelComparison`: seeded inputs, tolerances, and the errors verify prints.
struct ModelComparisonTests {
    let mlp = TestPackage.fixture("models/mlp.onnx")

    @Test func sameSeedGivesSameInputsAndDynamicDimsNeedAShape() throws {
        let m = try Model(contentsOf: URL(fileURLWithPath: mlp))
        let a = try ModelComparison.randomInputs(for: m.inputs, shapes: ["x": [2, 784]], seed: 7)
        let b = try ModelComparison.randomInputs(for: m.inputs, shapes: ["x": [2, 784]], seed: 7)
        let c = try ModelComparison.randomInputs(for: m.inputs, shapes: ["x": [2, 784]], seed: 8)
        #expect(a["x"]!.bitwiseEqual(b["x"]!) && !a["x"]!.bitwiseEqual(c["x"]!))
        #expect(a["x"]!.scalars(as: Float.self).allSatisfy { $0 >= -1 && $0 < 1 })
        do { _ = try ModelComparison.randomInputs(for: m.inputs, shapes: [:], seed: 0); Issue.record("expected an error") } catch {
            #expect(error.description == "input 'x' has dynamic dims float32[batch,784]; give its shape, e.g. [1, 784]")
        }
        do { _ = try ModelComparison.randomInputs(for: m.inputs, shapes: ["x": [2, 3], "z": [1]], seed: 0); Issue.record("expected an error") } catch {
            #expect(error.description == "a shape is given for 'z', which is not an input (inputs: x); input 'x': shape [2, 3] does not fit its type float32[batch,784]")
        }
    }

    @Test func differencesFollowNumpyAllclose() throws {
        let x = Tensor(shape: [3], scalars: [Float(1), 2, 100])
        let y = Tensor(shape: [3], scalars: [Float(1), 2.0001, 100.02])
        let d = ModelComparison.difference(name: "y", x, y, rtol: 1e-4, atol: 1e-5)
        #expect(abs(d.maxAbsolute - 0.02) < 1e-4 && !d.withinTolerance)  // 0.02 > 1e-5 + 1e-4 * 100.02
        #expect(ModelComparison.difference(name: "y", x, y, rtol: 1e-3, atol: 1e-5).withinTolerance)
        let n = Tensor(shape: [1], scalars: [Float.nan])
        #expect(ModelComparison.difference(name: "n", n, n, rtol: 0, atol: 0).withinTolerance)
        #expect(!ModelComparison.difference(name: "n", n, Tensor(shape: [1], scalars: [Float(0)]), rtol: 1, atol: 1).withinTolerance)
    }
}
