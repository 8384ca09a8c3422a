import DLTensor

/// The neural-network op families whose output types the runtime decides: softmax-like ops and
/// losses, normalisations, attention, quantisation, linear algebra beyond float32 and signal ops.
/// Softmax, Dropout, MatMul, Gemm and BatchNormalization keep their static schemas (LinearOps,
/// ElementwiseOps, NormalizationOps).
/// Arity is from the ONNX spec of the newest version of each op (older forms are read too).
enum NeuralOps {
    /// (op, inputs, outputs)
    static let arities: [(String, ClosedRange<Int>, ClosedRange<Int>)] = [
        ("LogSoftmax", 1...1, 1...1), ("Hardmax", 1...1, 1...1),
        ("SoftmaxCrossEntropyLoss", 2...3, 1...2), ("NegativeLogLikelihoodLoss", 2...3, 1...1),
        ("LayerNormalization", 2...3, 1...3), ("RMSNormalization", 2...2, 1...1),
        ("GroupNormalization", 3...3, 1...1), ("InstanceNormalization", 3...3, 1...1),
        ("LpNormalization", 1...1, 1...1), ("MeanVarianceNormalization", 1...1, 1...1), ("LRN", 1...1, 1...1),
        ("Attention", 3...7, 1...4), ("RotaryEmbedding", 3...4, 1...1), ("LinearAttention", 3...6, 1...2),
        ("FlexAttention", 3...3, 1...1),
        ("MatMulInteger", 2...4, 1...1), ("Einsum", 1...Int.max, 1...1),
        ("QuantizeLinear", 2...3, 1...1), ("DequantizeLinear", 2...3, 1...1), ("DynamicQuantizeLinear", 1...1, 3...3),
        ("QLinearMatMul", 8...8, 1...1), ("QLinearConv", 8...9, 1...1),
        ("DFT", 1...3, 1...1), ("STFT", 2...4, 1...1), ("HannWindow", 1...1, 1...1), ("HammingWindow", 1...1, 1...1),
        ("BlackmanWindow", 1...1, 1...1), ("MelWeightMatrix", 5...5, 1...1),
    ]

    static var schemas: [OpSchema] {
        arities.map {
            switch $0.0 {
            case "LayerNormalization": layerNormalization
            case "QLinearConv": OpSchema.windowed($0.0, inputs: $0.1, outputs: $0.2)
            default: OpSchema.runtimeShaped($0.0, inputs: $0.1, outputs: $0.2)
            }
        }
    }

    /// LayerNormalization typed statically, so a plan need not infer it on every run: Y is X's
    /// type; Mean and InvStdDev keep X's dims before `axis` and 1 from there, in the stash type.
    /// An axis out of range leaves the types to the runtime, which reports it.
    static var layerNormalization: OpSchema {
        OpSchema("LayerNormalization", inputs: 2...3, outputs: 1...3) { ctx throws(GraphError) in
            let x = try ctx.type(0)
            let count = ctx.node.outputs.count
            let axis = try ctx.node.int("axis", default: -1)
            let stash = DType(onnxCode: Int32(clamping: try ctx.node.int("stash_type", default: 1))) ?? .float32
            guard let dims = x.dims else {
                return [TensorType(dtype: x.dtype, dims: nil)] + Array(repeating: TensorType(dtype: stash, dims: nil), count: max(count - 1, 0))
            }
            guard let a = Axes.normalise(axis, rank: dims.count) else { return Array(repeating: nil, count: count) }
            let reduced = Array(dims[..<a]) + Array(repeating: Dim.fixed(1), count: dims.count - a)
            return [TensorType(dtype: x.dtype, dims: dims)] + Array(repeating: TensorType(dtype: stash, dims: reduced), count: max(count - 1, 0))
        }
    }
}
