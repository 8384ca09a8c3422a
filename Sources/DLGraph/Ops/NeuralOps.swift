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
        arities.map { OpSchema.runtimeShaped($0.0, inputs: $0.1, outputs: $0.2) }
    }
}
