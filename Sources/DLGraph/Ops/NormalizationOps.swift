import DLTensor

/// BatchNormalization (inference and training forms).
enum NormalizationOps {
    static var schemas: [OpSchema] {
        [
            OpSchema("BatchNormalization", inputs: 5...5, outputs: 1...5) { ctx throws(GraphError) in
                let x = try ctx.type(0)
                let name = ctx.node.displayName
                guard x.dtype.isFloatingPoint else {
                    throw .typeMismatch(node: name, reason: "BatchNormalization needs a floating-point input, got \(x.dtype)")
                }
                let channels: Dim = (x.dims?.count ?? 0) >= 2 ? x.dims![1] : .unknown
                for (i, label) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                    let t = try ctx.type(i)
                    guard let d = t.dims else { continue }
                    guard d.count == 1, channels.value == nil || d[0].value == nil || d[0] == channels else {
                        throw .shapeMismatch(node: name, reason: "\(label) has shape \(t), expected [\(channels)] (one per channel)")
                    }
                }
                if let d = x.dims, d.count < 2 {
                    throw .shapeMismatch(node: name, reason: "BatchNormalization needs [N,C,...], got \(x)")
                }
                let stat = TensorType(dtype: x.dtype, dims: [channels])
                // Y, then the running mean and variance (and before opset 9 the saved ones).
                return [x, stat, stat, stat, stat]
            },
        ]
    }
}
