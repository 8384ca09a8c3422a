import DLGraph
import DLTensor

/// Runs two models on the same seeded random inputs and measures how far their outputs differ:
/// what `dlconvert verify` does to check that a conversion kept a model's behaviour.
///
/// A element is within tolerance when `|a - b| <= atol + rtol * |b|` (numpy's `allclose`, with
/// the second model as the reference); NaN matches only NaN.
public enum ModelComparison {
    public struct OutputDifference: Sendable {
        public var name: String
        public var shape: [Int]
        /// Largest `|a - b|`.
        public var maxAbsolute: Double
        /// Largest `|a - b| / max(|a|, |b|)` (0 where both are 0).
        public var maxRelative: Double
        public var withinTolerance: Bool
    }

    /// Why random inputs could not be made for a model, one input at a time.
    public enum InputProblem: Sendable, Equatable, CustomStringConvertible {
        /// A shape was given for a name that is not an input.
        case notAnInput(name: String, inputs: [String])
        /// The given shape does not fit the input's type.
        case shapeDoesNotFit(name: String, shape: [Int], type: TensorType)
        /// The input has dims that are not fixed and no shape was given; `example` fills them with 1.
        case dynamicDims(name: String, type: TensorType, example: [Int]?)
        case noType(name: String)
        case tooLarge(name: String, shape: [Int])
        case cannotGenerate(name: String, dtype: DType)

        public var description: String {
            switch self {
            case .notAnInput(let n, let inputs):
                "a shape is given for '\(n)', which is not an input (inputs: \(inputs.joined(separator: ", ")))"
            case .shapeDoesNotFit(let n, let shape, let type): "input '\(n)': shape \(shape) does not fit its type \(type)"
            case .dynamicDims(let n, let type, let example):
                "input '\(n)' has dynamic dims \(type)\(example.map { "; give its shape, e.g. \($0)" } ?? "; give its shape")"
            case .noType(let n): "input '\(n)' has no type"
            case .tooLarge(let n, let shape): "input '\(n)' shape \(shape) is too large to generate"
            case .cannotGenerate(let n, let dtype): "input '\(n)' is \(dtype), which cannot be generated"
            }
        }
    }

    /// Random inputs for `model`, reproducible from `seed`: floating point uniform in [-1, 1),
    /// integers in [0, 10), booleans either way. Dims that are not fixed come from `shapes`.
    /// - Throws: `DLKitError.inputs` listing every input whose shape is unknown or whose given
    ///   shape does not fit the model.
    /// - Parameters:
    ///   - inputs: the model's inputs.
    ///   - shapes: the shapes of inputs whose dims are not all fixed, by input name.
    ///   - seed: the same seed gives the same inputs.
    ///   - otherDims: the size of every dynamic dim `shapes` does not give; nil makes such a
    ///     dim an error naming the input.
    public static func randomInputs(for inputs: [ValueInfo], shapes: [String: [Int]], seed: UInt64,
                                    otherDims: Int? = nil) throws(DLKitError) -> [String: Tensor] {
        var rng = SplitMix64(seed: seed)
        var out: [String: Tensor] = [:]
        var problems: [InputProblem] = []
        for name in shapes.keys.sorted() where !inputs.contains(where: { $0.name == name }) {
            problems.append(.notAnInput(name: name, inputs: inputs.map(\.name)))
        }
        for v in inputs {
            guard let type = v.type else { problems.append(.noType(name: v.name)); continue }
            let shape: [Int]
            if let given = shapes[v.name] {
                guard type.accepts(dtype: type.dtype, shape: given) else {
                    problems.append(.shapeDoesNotFit(name: v.name, shape: given, type: type))
                    continue
                }
                shape = given
            } else if let concrete = type.dims?.compactMap(\.value), concrete.count == type.dims?.count {
                shape = concrete
            } else if let otherDims, let dims = type.dims {
                shape = dims.map { $0.value ?? otherDims }
            } else {
                problems.append(.dynamicDims(name: v.name, type: type, example: type.dims.map { $0.map { $0.value ?? 1 } }))
                continue
            }
            guard let count = ShapeMath.elementCount(shape), count <= 1 << 28 else {
                problems.append(.tooLarge(name: v.name, shape: shape))
                continue
            }
            out[v.name] = random(type.dtype, shape: shape, count: count, rng: &rng)
            if out[v.name] == nil { problems.append(.cannotGenerate(name: v.name, dtype: type.dtype)) }
        }
        guard problems.isEmpty else { throw .inputs(problems) }
        return out
    }

    static func random(_ dtype: DType, shape: [Int], count: Int, rng: inout SplitMix64) -> Tensor? {
        if dtype.isFloatingPoint {
            let values = (0..<count).map { _ in Float(rng.unit() * 2 - 1) }
            let t = Tensor(shape: shape, scalars: values)
            return dtype == .float32 ? t : t.converted(to: dtype)
        }
        if dtype == .bool { return Tensor(shape: shape, scalars: (0..<count).map { _ in rng.next() & 1 == 1 }) }
        if dtype.isInteger {
            return Tensor(shape: shape, scalars: (0..<count).map { _ in Int64(rng.next() % 10) }).converted(to: dtype)
        }
        return nil
    }

    /// Runs both models on `inputs` and compares the outputs the first one lists.
    /// - Throws: `DLKitError.invalidArgument` when the models' inputs or outputs differ in name
    ///   or an output's shape differs; runtime errors of either model.
    public static func compare(_ a: Model, _ b: Model, inputs: [String: Tensor], rtol: Double, atol: Double) throws(DLKitError) -> [OutputDifference] {
        let namesA = a.inputs.map(\.name).sorted(), namesB = b.inputs.map(\.name).sorted()
        guard namesA == namesB else {
            throw .invalidArgument("the models have different inputs: \(namesA.joined(separator: ", ")) and \(namesB.joined(separator: ", "))")
        }
        let outs = a.outputs.map(\.name)
        let missing = outs.filter { n in !b.outputs.contains { $0.name == n } }
        guard missing.isEmpty else {
            throw .invalidArgument("the second model has no output named \(missing.map { "'\($0)'" }.joined(separator: ", "))")
        }
        let ra = try a.run(inputs, outputs: outs), rb = try b.run(inputs, outputs: outs)
        var result: [OutputDifference] = []
        for name in outs {
            guard let x = ra[name], let y = rb[name] else { throw .invalidArgument("output '\(name)' was not produced") }
            guard x.shape == y.shape else {
                throw .invalidArgument("output '\(name)' has shape \(x.shape) in the first model and \(y.shape) in the second")
            }
            result.append(difference(name: name, x, y, rtol: rtol, atol: atol))
        }
        return result
    }

    static func difference(name: String, _ x: Tensor, _ y: Tensor, rtol: Double, atol: Double) -> OutputDifference {
        var maxAbs = 0.0, maxRel = 0.0, ok = x.dtype == y.dtype
        if x.dtype == .string || y.dtype == .string {
            ok = ok && x.strings == y.strings
            return OutputDifference(name: name, shape: x.shape, maxAbsolute: ok ? 0 : .infinity, maxRelative: ok ? 0 : .infinity, withinTolerance: ok)
        }
        for (p, q) in zip(x.doubles(), y.doubles()) {
            if p.isNaN || q.isNaN {
                if !(p.isNaN && q.isNaN) { ok = false; maxAbs = .nan; maxRel = .nan }
                continue
            }
            if p == q { continue }  // equal infinities too
            let d = Swift.abs(p - q)
            if !(d <= atol + rtol * Swift.abs(q)) { ok = false }
            if !maxAbs.isNaN { maxAbs = Swift.max(maxAbs, d) }
            if !maxRel.isNaN { maxRel = Swift.max(maxRel, d / Swift.max(Swift.abs(p), Swift.abs(q))) }
        }
        return OutputDifference(name: name, shape: x.shape, maxAbsolute: maxAbs, maxRelative: maxRel, withinTolerance: ok)
    }
}

/// A small, fast, reproducible generator (Steele et al., SplitMix64).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
