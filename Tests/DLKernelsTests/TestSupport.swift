import Testing

/// A small deterministic generator (SplitMix64), so every run sees the same data.
struct SeededRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `range`.
    mutating func float(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) / Float(1 << 24)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }

    /// Multiples of 1/8 in [-2, 2]: products and sums of a few hundred of them are exact in
    /// float32, so kernels that only add and multiply must match a reference bit for bit, whatever
    /// order they sum in.
    mutating func dyadic() -> Float { Float(Int(next() % 33) - 16) / 8 }

    mutating func int<T: FixedWidthInteger>(in range: ClosedRange<T>) -> T {
        let span = UInt64(Int64(range.upperBound) - Int64(range.lowerBound) + 1)
        return T(Int64(range.lowerBound) + Int64(next() % span))
    }
}

func randomFloats(_ count: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return (0..<count).map { _ in rng.float(in: range) }
}

func dyadicFloats(_ count: Int, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return (0..<count).map { _ in rng.dyadic() }
}

func product(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Expects `actual ≈ expected` elementwise: `|a - e| ≤ absolute + relative · |e|`, NaN matching
/// NaN and infinities matching exactly. Reports the first mismatch with its index.
func expectClose(
    _ actual: [Float], _ expected: [Float], relative: Float = 1e-5, absolute: Float = 1e-6,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, "element count", sourceLocation: sourceLocation)
    guard actual.count == expected.count else { return }
    var failures = 0
    for i in actual.indices {
        let a = actual[i], e = expected[i]
        let ok: Bool
        if e.isNaN {
            ok = a.isNaN
        } else if e.isInfinite {
            ok = a == e
        } else {
            ok = (a - e).magnitude <= absolute + relative * e.magnitude
        }
        if !ok {
            failures += 1
            if failures == 1 {
                Issue.record("element \(i): got \(a), expected \(e)", sourceLocation: sourceLocation)
            }
        }
    }
    if failures > 1 {
        Issue.record("\(failures) elements differ in all", sourceLocation: sourceLocation)
    }
}

func expectClose(
    _ actual: [Float], _ expected: [Double], relative: Float = 1e-5, absolute: Float = 1e-6,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectClose(actual, expected.map { Float($0) }, relative: relative, absolute: absolute,
                sourceLocation: sourceLocation)
}

/// Row-major multi-index of flat index `flat` in `shape`.
func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var idx = [Int](repeating: 0, count: shape.count)
    var rest = flat
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        idx[d] = rest % shape[d]
        rest /= shape[d]
    }
    return idx
}

func ravel(_ idx: [Int], _ shape: [Int]) -> Int {
    var flat = 0
    for d in shape.indices { flat = flat * shape[d] + idx[d] }
    return flat
}
