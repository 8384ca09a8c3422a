import DLTensor

/// Recurrent, control-flow, sequence/optional, string, random, text-vectorising, image-decoding ops, and the
/// ops of the ai.onnx.ml and ai.onnx.preview.training domains. Arity from the newest ONNX spec;
/// output types are decided at run time (several produce sequences or optionals).
enum FlowOps {
    static let arities: [(String, ClosedRange<Int>, ClosedRange<Int>)] = [
        ("RNN", 3...6, 0...2), ("LSTM", 3...8, 0...3), ("GRU", 3...6, 0...2),
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
