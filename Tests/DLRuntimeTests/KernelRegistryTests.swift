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
                                            "ReduceSum", "ReduceMean", "ConvInteger"])
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
}
