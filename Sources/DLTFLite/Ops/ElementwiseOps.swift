import DLGraph
import DLTensor

/// Arithmetic with fused activations (AddOptions/SubOptions/MulOptions/DivOptions: 0 activation),
/// activations, unary math and comparisons: one IR op each, or a short composite.
extension TFLiteGraphBuilder {
    static let unary: [(String, String)] = [
        ("LOGISTIC", "Sigmoid"), ("TANH", "Tanh"), ("RELU", "Relu"), ("HARD_SWISH", "HardSwish"), ("EXP", "Exp"),
        ("LOG", "Log"), ("SQRT", "Sqrt"), ("ABS", "Abs"), ("NEG", "Neg"), ("FLOOR", "Floor"), ("CEIL", "Ceil"),
        ("SIN", "Sin"), ("COS", "Cos"), ("ROUND", "Round"), ("ELU", "Elu"), ("SIGN", "Sign"), ("LOGICAL_NOT", "Not"),
    ]
    static let binary: [(String, String, Bool)] = [
        ("ADD", "Add", true), ("SUB", "Sub", true), ("MUL", "Mul", true), ("DIV", "Div", true),
        ("MAXIMUM", "Max", false), ("MINIMUM", "Min", false), ("POW", "Pow", false), ("LESS", "Less", false),
        ("GREATER", "Greater", false), ("EQUAL", "Equal", false), ("LESS_EQUAL", "LessOrEqual", false),
        ("GREATER_EQUAL", "GreaterOrEqual", false), ("LOGICAL_AND", "And", false), ("LOGICAL_OR", "Or", false),
        ("FLOOR_MOD", "Mod", false), ("PRELU", "PRelu", false),
    ]

    static var elementwiseOps: [(String, TFLiteImporter.Translator)] {
        var ops: [(String, TFLiteImporter.Translator)] = []
        for (name, ir) in unary {
            ops.append((name, { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // 8-bit TANH, LOGISTIC and HARD_SWISH follow TFLite's integer kernels (IntegerActivations.swift).
                if ["TANH", "LOGISTIC", "HARD_SWISH"].contains(name), let y = try b.integerActivation(op) { return try b.bind(op, 0, y) }
                try b.bind(op, 0, b.emit(ir, [try b.input(op, 0)], base: b.base(op)))
            }))
        }
        for (name, ir, fused) in binary {
            ops.append((name, { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // 8-bit ADD, SUB and MUL follow TFLite's integer arithmetic (IntegerOps.swift).
                let integer = switch name {
                case "ADD", "SUB": try b.integerAddSub(op, subtract: name == "SUB")
                case "MUL": try b.integerMul(op)
                default: String?.none
                }
                if let integer {
                    try b.bind(op, 0, try b.activation(op, integer, optionId: 0))
                    return
                }
                var y = b.emit(ir, [try b.input(op, 0), try b.input(op, 1)], base: b.base(op))
                if fused { y = try b.activation(op, y, optionId: 0) }
                try b.bind(op, 0, y)
            }))
        }
        ops += [
            ("RELU6", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.bind(op, 0, b.activation(op, try b.input(op, 0), code: 3)) }),
            ("RELU_N1_TO_1", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.bind(op, 0, b.activation(op, try b.input(op, 0), code: 2)) }),
            ("RELU_0_TO_1", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let n = b.base(op)
                try b.bind(op, 0, b.emit("Clip", [try b.input(op, 0), b.scalar(0, base: n + "/min"), b.scalar(1, base: n + "/max")], base: n))
            }),
            ("RSQRT", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let n = b.base(op)
                try b.bind(op, 0, b.emit("Reciprocal", [b.emit("Sqrt", [try b.input(op, 0)], base: n + "/sqrt")], base: n))
            }),
            ("SQUARE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let x = try b.input(op, 0)
                try b.bind(op, 0, b.emit("Mul", [x, x], base: b.base(op)))
            }),
            ("SQUARED_DIFFERENCE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let n = b.base(op)
                let d = b.emit("Sub", [try b.input(op, 0), try b.input(op, 1)], base: n + "/diff")
                try b.bind(op, 0, b.emit("Mul", [d, d], base: n))
            }),
            ("NOT_EQUAL", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let n = b.base(op)
                try b.bind(op, 0, b.emit("Not", [b.emit("Equal", [try b.input(op, 0), try b.input(op, 1)], base: n + "/eq")], base: n))
            }),
            ("LEAKY_RELU", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let alpha = try b.options(op) { t throws(FlatBufferError) in try t.float(0, 0) } ?? 0
                try b.bind(op, 0, b.emit("LeakyRelu", [try b.input(op, 0)], [Attribute(name: "alpha", value: .float(alpha))], base: b.base(op)))
            }),
            ("GELU", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let approximate = try b.options(op) { t throws(FlatBufferError) in try t.bool(0) } ?? false
                try b.bind(op, 0, b.emit("Gelu", [try b.input(op, 0)], [Attribute(name: "approximate", value: .string(approximate ? "tanh" : "none"))], base: b.base(op)))
            }),
            // SoftmaxOptions: 0 beta (softmax of beta * x along the last axis).
            ("SOFTMAX", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                if let y = try b.integerActivation(op) { return try b.bind(op, 0, y) }
                let beta = try b.options(op) { t throws(FlatBufferError) in try t.float(0, 1) } ?? 1
                let n = b.base(op)
                var x = try b.input(op, 0)
                if beta != 1 { x = b.emit("Mul", [x, b.scalar(beta, base: n + "/beta")], base: n + "/scaled") }
                try b.bind(op, 0, b.emit("Softmax", [x], [Attribute(name: "axis", value: .int(-1))], base: n))
            }),
            ("LOG_SOFTMAX", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                try b.bind(op, 0, b.emit("LogSoftmax", [try b.input(op, 0)], [Attribute(name: "axis", value: .int(-1))], base: b.base(op)))
            }),
            ("SELECT_V2", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.select(op) }),
            ("SELECT", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.select(op) }),
        ]
        return ops
    }

    mutating func select(_ op: TFLiteOp) throws(TFLiteError) {
        try bind(op, 0, emit("Where", [try input(op, 0), try input(op, 1), try input(op, 2)], base: base(op)))
    }
}
