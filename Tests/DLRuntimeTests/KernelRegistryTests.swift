import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// One kernel table: a key listed twice is refused, each fast variant says what it takes and sits
/// in front of a general kernel for the same op.
struct KernelRegistryTests {
    static let identity: Kernel = { ctx throws(RuntimeError) in [try ctx.input(0)] }

    @Test func theRuntimesTableHasNoDuplicateAndEveryFastVariantAGeneralKernel() throws {
        let registry = try OpKernels.registry()
        _ = try registry.table()
        #expect(Set(registry.fast.keys) == ["Relu", "Sigmoid", "Tanh", "Erf", "Add", "Sub", "Mul", "Div", "Conv", "MaxPool",
                                            "AveragePool", "GlobalAveragePool", "BatchNormalization", "Gemm", "MatMul", "LSTM",
                                            "HardSwish", "HardSigmoid", "LeakyRelu", "Clip", "Max", "Min",
                                            "Where", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "IsNaN", "Cast",
                                            "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ConvInteger",
                                            "Abs", "Neg", "Floor", "Ceil", "Round", "Sqrt", "Reciprocal"])
        for (op, f) in registry.fast { #expect(!f.takes.isEmpty, "\(op)") }
    }

    @Test func aSecondGeneralKernelForAnOpIsRefused() {
        var r = KernelRegistry()
        #expect(throws: KernelRegistry.Problem.duplicate("Relu")) {
            try r.add([KernelEntry("Relu", Self.identity), KernelEntry("Relu", Self.identity)])
        }
    }

    @Test func aSecondFastVariantOrOneWithoutAGeneralKernelIsRefused() throws {
        var r = KernelRegistry()
        try r.add([KernelEntry("Relu", Self.identity)])
        try r.addFast([FastEntry("Relu", "float32") { _ throws(RuntimeError) in nil }])
        #expect(throws: KernelRegistry.Problem.duplicateFast("Relu")) {
            try r.addFast([FastEntry("Relu", "float32") { _ throws(RuntimeError) in nil }])
        }
        try r.addFast([FastEntry("Elu", "float32") { _ throws(RuntimeError) in nil }])
        #expect(throws: KernelRegistry.Problem.fastWithoutGeneral("Elu")) { try r.table() }
    }

    /// The fast variant runs first; where it declines (nil) the general kernel runs.
    @Test func theGeneralKernelRunsWhereTheFastVariantDeclines() throws {
        var r = KernelRegistry()
        try r.add([KernelEntry("Neg", { _ throws(RuntimeError) in [Tensor(shape: [1], scalars: [Float(1)])] })])
        try r.addFast([FastEntry("Neg", "float32") { ctx throws(RuntimeError) in
            try ctx.input(0).dtype == .float32 ? [Tensor(shape: [1], scalars: [Float(2)])] : nil
        }])
        let kernel = try #require(try r.table()["Neg"]?.run)
        func run(_ x: Tensor) throws -> [Float] {
            let ctx = KernelContext(node: Node(opType: "Neg", inputs: ["x"], outputs: ["y"]), inputs: [x], outputTypes: [])
            return try kernel(ctx)[0].scalars(as: Float.self)
        }
        #expect(try run(Tensor(shape: [1], scalars: [Float(5)])) == [2])
        #expect(try run(Tensor(shape: [1], scalars: [Double(5)])) == [1])
    }

    /// The float32 variants of the exact unary ops give the general kernel's bits (computed in
    /// Double, rounded once), signed zeros, NaN, infinities and halfway cases included.
    @Test(arguments: ["Abs", "Neg", "Floor", "Ceil", "Round", "Sqrt", "Reciprocal"])
    func float32UnaryVariantsGiveTheGeneralKernelsBits(op: String) throws {
        let special: [Float] = [0, -0.0, 1, -1, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, .infinity, -.infinity, .nan,
                                .leastNonzeroMagnitude, -.greatestFiniteMagnitude, 3e-39, 7.0000005]
        let values = special + (0..<1000).map { Float($0 - 500) * 0.0371 + 0.013 }
        let x = Tensor(shape: [values.count], scalars: values)
        let g = Graph(name: "u", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [values.count]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [Node(opType: op, inputs: ["x"], outputs: ["y"])])
        let got = try #require(try Executor(graph: g).run(["x": x])["y"]).scalars(as: Float.self)
        let f: (Double) -> Double = switch op {
        case "Abs": { Swift.abs($0) }
        case "Neg": { -$0 }
        case "Floor": { $0.rounded(.down) }
        case "Ceil": { $0.rounded(.up) }
        case "Round": { $0.rounded(.toNearestOrEven) }
        case "Sqrt": { $0.squareRoot() }
        default: { 1 / $0 }
        }
        let want = values.map { Float(f(Double($0))) }
        #expect(got.map(\.bitPattern) == want.map(\.bitPattern) || zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) },
                "\(op): \(zip(values, zip(got, want)).filter { $1.0.bitPattern != $1.1.bitPattern && !($1.0.isNaN && $1.1.isNaN) }.prefix(4))")
    }
}
