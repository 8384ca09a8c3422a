import DLTensor

/// Unary ops that keep type and shape, and binary ops with numpy broadcasting.
enum ElementwiseOps {
    static let unaryFloat = ["Relu", "Sigmoid", "Tanh"]
    static let binary = ["Add", "Sub", "Mul", "Div"]

    static var schemas: [OpSchema] {
        var s: [OpSchema] = []
        for name in unaryFloat {
            s.append(OpSchema(name, inputs: 1...1) { ctx throws(GraphError) in
                let t = try ctx.type(0)
                guard t.dtype.isFloatingPoint else {
                    throw .typeMismatch(node: ctx.node.displayName, reason: "\(name) needs a floating-point input, got \(t.dtype)")
                }
                return [t]
            })
        }
        s.append(OpSchema("Identity", inputs: 1...1) { ctx throws(GraphError) in [try ctx.type(0)] })
        s.append(OpSchema("Dropout", inputs: 1...3, outputs: 1...2) { ctx throws(GraphError) in
            let t = try ctx.type(0)
            return [t, TensorType(dtype: .bool, dims: t.dims)]
        })
        s.append(OpSchema("Softmax", inputs: 1...1) { ctx throws(GraphError) in
            let t = try ctx.type(0)
            guard t.dtype.isFloatingPoint else {
                throw .typeMismatch(node: ctx.node.displayName, reason: "Softmax needs a floating-point input, got \(t.dtype)")
            }
            if let r = t.rank {
                let axis = try ctx.node.int("axis", default: -1)
                guard DimMath.axis(axis, rank: r) != nil else {
                    throw .invalidAttribute(node: ctx.node.displayName, attribute: "axis", reason: "is \(axis), outside rank \(r)")
                }
            }
            return [t]
        })
        for name in binary {
            s.append(OpSchema(name, inputs: 2...2) { ctx throws(GraphError) in
                [try broadcastBinary(ctx)]
            })
        }
        return s
    }

    /// The type of a numpy-broadcasting binary op; both inputs must share a dtype.
    static func broadcastBinary(_ ctx: InferenceContext) throws(GraphError) -> TensorType {
        let a = try ctx.type(0), b = try ctx.type(1)
        guard a.dtype == b.dtype else {
            throw .typeMismatch(node: ctx.node.displayName, reason: "inputs have different types \(a.dtype) and \(b.dtype)")
        }
        guard let da = a.dims, let db = b.dims else { return TensorType(dtype: a.dtype, dims: nil) }
        do throws(Broadcast.Mismatch) {
            return TensorType(dtype: a.dtype, dims: try Broadcast.dims(da, db))
        } catch {
            throw .shapeMismatch(node: ctx.node.displayName, reason: error.description)
        }
    }
}
