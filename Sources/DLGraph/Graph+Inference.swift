import DLTensor

extension Graph {
    /// The op types in the graph that the IR has no schema for, with counts.
    public var unsupportedOps: [String: Int] {
        var out: [String: Int] = [:]
        for n in nodes where OpSet.schema(for: n) == nil {
            let key = n.domain.isEmpty || n.domain == "ai.onnx" ? n.opType : "\(n.domain).\(n.opType)"
            out[key, default: 0] += 1
        }
        return out
    }

    /// Infers the type of every value from the graph inputs' types (or `inputTypes` to override
    /// them, e.g. with concrete shapes), checking each node's arity and input types on the way.
    ///
    /// - Returns: the type of every value that could be inferred, by name.
    /// - Throws: `GraphError` naming the first node whose inputs do not fit its op.
    public func inferTypes(inputTypes: [String: TensorType] = [:]) throws(GraphError) -> [String: TensorType] {
        var types: [String: TensorType] = [:]
        var values: [String: Tensor] = [:]
        for (name, t) in initializers {
            types[name] = TensorType(dtype: t.dtype, shape: t.shape)
            values[name] = t
        }
        for v in inputs {
            if let t = inputTypes[v.name] ?? v.type { types[v.name] = t }
        }
        for node in nodes {
            let outs = try Self.inferNode(node, types: types, values: values)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty {
                if let t { types[name] = t }
            }
            if node.opType == "Constant", let t = try? ConstantOp.value(of: node), let o = node.outputs.first {
                values[o] = t
            }
        }
        return types
    }

    /// Checks arity and infers the output types of one node.
    public static func inferNode(_ node: Node, types: [String: TensorType], values: [String: Tensor])
        throws(GraphError) -> [TensorType?]
    {
        guard let schema = OpSet.schema(for: node) else {
            throw .unsupportedOps([node.domain.isEmpty || node.domain == "ai.onnx" ? node.opType : "\(node.domain).\(node.opType)": 1])
        }
        let present = node.inputs.count
        guard schema.inputs.contains(present) || (present > schema.inputs.upperBound && node.inputs[schema.inputs.upperBound...].allSatisfy(\.isEmpty)) else {
            throw .arity(node: node.displayName, reason: "\(node.opType) takes \(schema.inputs) inputs, got \(present)")
        }
        guard schema.outputs.contains(node.outputs.count) else {
            throw .arity(node: node.displayName, reason: "\(node.opType) gives \(schema.outputs) outputs, got \(node.outputs.count)")
        }
        // An input whose type is unknown (it comes from an op typed only at run time) leaves
        // the outputs unknown too, rather than failing the whole inference; only the leading
        // inputs count for a schema whose types follow from those.
        if node.inputs.prefix(schema.typedInputs ?? node.inputs.count).contains(where: { !$0.isEmpty && types[$0] == nil }) {
            return Array(repeating: nil, count: node.outputs.count)
        }
        let ctx = InferenceContext(
            node: node,
            inputTypes: node.inputs.map { $0.isEmpty ? nil : types[$0] },
            inputValues: node.inputs.map { $0.isEmpty ? nil : values[$0] })
        var outs = try schema.infer(ctx)
        while outs.count < node.outputs.count { outs.append(nil) }
        return outs
    }
}

/// Arithmetic on dimensions that may be symbolic.
public enum DimMath {
    /// Product of dims: fixed when all are fixed; one symbolic among 1s stays that symbol; unknown
    /// when the product overflows (a file may declare any sizes).
    public static func product(_ dims: ArraySlice<Dim>) -> Dim {
        var n = 1
        var symbol: Dim? = nil
        for d in dims {
            switch d {
            case .fixed(let v):
                let (m, o) = n.multipliedReportingOverflow(by: v)
                if o { return .unknown }
                n = m
            case .symbolic: if symbol == nil { symbol = d } else { return .unknown }
            case .unknown: return .unknown
            }
        }
        if let symbol { return n == 1 ? symbol : .unknown }
        return .fixed(n)
    }
}
