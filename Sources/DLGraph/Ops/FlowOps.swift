import DLTensor

/// Recurrent (typed), control-flow, sequence/optional, string, random, text-vectorising, image-decoding ops, and the
/// ops of the ai.onnx.ml and ai.onnx.preview.training domains. Arity from the newest ONNX spec;
/// output types of all but the recurrent ops are decided at run time (several produce sequences
/// or optionals).
enum FlowOps {
    static let arities: [(String, ClosedRange<Int>, ClosedRange<Int>)] = [
        ("If", 1...1, 1...Int.max), ("Loop", 2...Int.max, 1...Int.max), ("Scan", 1...Int.max, 1...Int.max),
        ("SequenceConstruct", 1...Int.max, 1...1), ("SequenceEmpty", 0...0, 1...1),
        ("SequenceInsert", 2...3, 1...1), ("SequenceErase", 1...2, 1...1), ("SequenceAt", 2...2, 1...1),
        ("SequenceLength", 1...1, 1...1), ("SplitToSequence", 1...2, 1...1),
        ("ConcatFromSequence", 1...1, 1...1), ("SequenceMap", 1...Int.max, 1...Int.max),
        ("Optional", 0...1, 1...1), ("OptionalHasElement", 0...1, 1...1), ("OptionalGetElement", 1...1, 1...1),
        ("StringNormalizer", 1...1, 1...1), ("RegexFullMatch", 1...1, 1...1), ("StringSplit", 1...1, 2...2),
        ("StringConcat", 2...2, 1...1),
        ("RandomNormal", 0...0, 1...1), ("RandomUniform", 0...0, 1...1), ("RandomNormalLike", 1...1, 1...1),
        ("RandomUniformLike", 1...1, 1...1), ("Bernoulli", 1...1, 1...1),
        ("TfIdfVectorizer", 1...1, 1...1), ("ImageDecoder", 1...1, 1...1),
    ]

    static var schemas: [OpSchema] {
        arities.map { OpSchema.runtimeShaped($0.0, inputs: $0.1, outputs: $0.2) }
            + [recurrent("RNN", inputs: 3...6, outputs: 0...2, gates: 1), recurrent("LSTM", inputs: 3...8, outputs: 0...3, gates: 4),
               recurrent("GRU", inputs: 3...6, outputs: 0...2, gates: 3)]
    }

    /// RNN, LSTM and GRU typed statically (so shapes downstream are known before running, and
    /// `Shape` of their outputs folds): Y is [seq, dirs, batch, hidden] ([batch, seq, dirs,
    /// hidden] with layout 1), the states [dirs, batch, hidden] ([batch, dirs, hidden]), all of
    /// X's dtype; hidden is `hidden_size`, else W's gate rows over the gate count. Only X's type
    /// is needed (initial states are often computed from shapes known only when running). An
    /// attribute out of range leaves the types to the runtime, which reports it.
    static func recurrent(_ name: String, inputs: ClosedRange<Int>, outputs: ClosedRange<Int>, gates: Int) -> OpSchema {
        OpSchema(name, inputs: inputs, outputs: outputs, typedInputs: 1) { ctx throws(GraphError) in
            let node = ctx.node, count = node.outputs.count
            let x = try ctx.type(0)
            let layout = try node.int("layout", default: 0)
            let direction = try node.string("direction", default: "forward")
            guard let dims = x.dims, dims.count == 3, layout == 0 || layout == 1,
                  ["forward", "reverse", "bidirectional"].contains(direction) else { return Array(repeating: nil, count: count) }
            let hidden: Dim
            if node.attribute("hidden_size") != nil {
                let h = try node.int("hidden_size", default: 0)
                guard h > 0 else { return Array(repeating: nil, count: count) }
                hidden = .fixed(h)
            } else if let rows = ctx.inputTypes.dropFirst().first??.dims?.dropFirst().first?.value, rows % gates == 0 {
                hidden = .fixed(rows / gates)
            } else {
                hidden = .unknown
            }
            let dirs = Dim.fixed(direction == "bidirectional" ? 2 : 1)
            let (seq, batch) = layout == 0 ? (dims[0], dims[1]) : (dims[1], dims[0])
            let y = layout == 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden]
            let state = layout == 0 ? [dirs, batch, hidden] : [batch, dirs, hidden]
            return (0..<count).map { TensorType(dtype: x.dtype, dims: $0 == 0 ? y : state) }
        }
    }

    static var domainSchemas: [(String, OpSchema)] {
        [
            ("ai.onnx.ml", .runtimeShaped("LabelEncoder", inputs: 1...1)),
            ("ai.onnx.ml", .runtimeShaped("TreeEnsemble", inputs: 1...1)),
            ("ai.onnx.ml", .runtimeShaped("ArrayFeatureExtractor", inputs: 2...2)),
            ("ai.onnx.ml", .runtimeShaped("Binarizer", inputs: 1...1)),
            ("ai.onnx.preview.training", .runtimeShaped("Adagrad", inputs: 3...Int.max, outputs: 1...Int.max)),
            ("ai.onnx.preview.training", .runtimeShaped("Adam", inputs: 3...Int.max, outputs: 1...Int.max)),
            ("ai.onnx.preview.training", .runtimeShaped("Momentum", inputs: 3...Int.max, outputs: 1...Int.max)),
        ]
    }
}
