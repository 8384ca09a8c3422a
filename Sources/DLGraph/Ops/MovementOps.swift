import DLTensor

/// Ops that move, select, create or reduce elements, typed at run time: the shape and indexing
/// families (Slice, Gather*, Scatter*, Pad...), the creation ops (Shape, Range, Cast...) and the
/// reductions. Arity follows the newest version of each op; older forms' attributes are inputs in
/// the IR (`NormalForm`).
enum MovementOps {
    static let arities: [(String, ClosedRange<Int>, ClosedRange<Int>)] = [
        ("Split", 1...2, 1...Int.max),
        ("Slice", 1...5, 1...1), ("Gather", 2...2, 1...1), ("GatherElements", 2...2, 1...1),
        ("GatherND", 2...2, 1...1), ("ScatterElements", 3...3, 1...1), ("Scatter", 3...3, 1...1),
        ("ScatterND", 3...3, 1...1), ("Expand", 2...2, 1...1), ("Tile", 2...2, 1...1),
        ("Pad", 1...4, 1...1), ("Compress", 2...2, 1...1), ("ReverseSequence", 2...2, 1...1),
        ("NonZero", 1...1, 1...1), ("TopK", 1...2, 2...2), ("Unique", 1...1, 1...4),
        ("CumSum", 2...2, 1...1), ("CumProd", 2...2, 1...1), ("ArgMax", 1...1, 1...1), ("ArgMin", 1...1, 1...1),
        ("Cast", 1...1, 1...1), ("CastLike", 2...2, 1...1), ("Shape", 1...1, 1...1), ("Size", 1...1, 1...1),
        ("ConstantOfShape", 1...1, 1...1), ("Range", 3...3, 1...1), ("EyeLike", 1...1, 1...1),
        ("OneHot", 3...3, 1...1), ("Trilu", 1...2, 1...1), ("BitCast", 1...1, 1...1),
        ("Mod", 2...2, 1...1), ("BitShift", 2...2, 1...1), ("TensorScatter", 2...3, 1...1),
        ("SwiGLU", 2...2, 1...1), ("Det", 1...1, 1...1),
    ] + reductions.map { ($0, 1...2, 1...1) }

    static let reductions = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                             "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]

    static var schemas: [OpSchema] {
        arities.map { OpSchema.runtimeShaped($0.0, inputs: $0.1, outputs: $0.2) }
    }
}
