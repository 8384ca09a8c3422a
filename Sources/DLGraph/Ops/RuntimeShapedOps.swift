import DLTensor

extension OpSchema {
    /// A schema that checks arity only and leaves output types to the run: for ops whose output
    /// shape depends on input values (NonZero, Unique, Range...) or whose static rules are not
    /// written yet. Static inference reports their outputs as unknown.
    public static func runtimeShaped(_ name: String, inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1) -> OpSchema {
        OpSchema(name, inputs: inputs, outputs: outputs) { ctx throws(GraphError) in
            Array(repeating: nil, count: ctx.node.outputs.count)
        }
    }
}

/// Ops of the breadth families (math, logic, reductions, movement, creation) whose types the
/// runtime decides. Arity is from the ONNX spec of the newest version of each op.
enum RuntimeShapedOps {
    static let unary = [
        "Abs", "Neg", "Sqrt", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
        "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Round", "Reciprocal", "Sign", "Erf", "Softplus",
        "Softsign", "HardSwish", "Mish", "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid",
        "ThresholdedRelu", "Shrink", "Gelu", "IsNaN", "IsInf", "Not", "BitwiseNot", "Swish",
    ]
    static let binary = [
        "Mod", "Pow", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor",
        "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu",
    ]
    static let variadic = ["Max", "Min", "Sum", "Mean"]

    static var schemas: [OpSchema] {
        var s: [OpSchema] = []
        for n in unary { s.append(.runtimeShaped(n, inputs: 1...1)) }
        for n in binary { s.append(.runtimeShaped(n, inputs: 2...2)) }
        for n in variadic { s.append(.runtimeShaped(n, inputs: 1...Int.max)) }
        s.append(.runtimeShaped("Where", inputs: 3...3))
        s.append(.runtimeShaped("Clip", inputs: 1...3))
        return s
    }
}
