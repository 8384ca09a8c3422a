#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLKernels
import Testing

struct UnaryCase: Sendable, CustomTestStringConvertible {
    var name: String
    var kernel: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    var reference: @Sendable (Double) -> Double
    /// Inputs are drawn from this range; functions defined on part of the line get their domain.
    var domain: ClosedRange<Float> = -6...6
    var testDescription: String { name }
}

@Suite struct UnaryTests {
    static let cases: [UnaryCase] = [
        UnaryCase(name: "relu", kernel: { Elementwise.relu($0, $1, count: $2) }, reference: { Swift.max($0, 0) }),
        UnaryCase(name: "leakyRelu", kernel: { Elementwise.leakyRelu($0, $1, count: $2, alpha: 0.1) },
                  reference: { $0 < 0 ? 0.1 * $0 : $0 }),
        UnaryCase(name: "clip", kernel: { Elementwise.clip($0, $1, count: $2, lower: -1.5, upper: 2) },
                  reference: { Swift.min(Swift.max($0, -1.5), 2) }),
        UnaryCase(name: "neg", kernel: { Elementwise.neg($0, $1, count: $2) }, reference: { -$0 }),
        UnaryCase(name: "abs", kernel: { Elementwise.abs($0, $1, count: $2) }, reference: { Swift.abs($0) }),
        UnaryCase(name: "sqrt", kernel: { Elementwise.sqrt($0, $1, count: $2) }, reference: { $0.squareRoot() },
                  domain: 0...50),
        UnaryCase(name: "exp", kernel: { Elementwise.exp($0, $1, count: $2) }, reference: { exp($0) }),
        UnaryCase(name: "log", kernel: { Elementwise.log($0, $1, count: $2) }, reference: { log($0) },
                  domain: 0.001...100),
        UnaryCase(name: "tanh", kernel: { Elementwise.tanh($0, $1, count: $2) }, reference: { tanh($0) }),
        UnaryCase(name: "erf", kernel: { Elementwise.erf($0, $1, count: $2) }, reference: { erf($0) }, domain: -5...5),
        UnaryCase(name: "sigmoid", kernel: { Elementwise.sigmoid($0, $1, count: $2) },
                  reference: { 1 / (1 + exp(-$0)) }, domain: -30...30),
    ]

    @Test(arguments: cases, [1, 8, 37])
    func unaryMatchesScalarReference(_ c: UnaryCase, count: Int) {
        let x = randomFloats(count, seed: 40, in: c.domain)
        let expected = x.map { Float(c.reference(Double($0))) }
        var y = [Float](repeating: .nan, count: count)
        y.withUnsafeMutableBufferPointer { c.kernel(x, $0.baseAddress!, count) }
        expectClose(y, expected)

        // In place gives the same.
        var z = x
        z.withUnsafeMutableBufferPointer { c.kernel(UnsafePointer($0.baseAddress!), $0.baseAddress!, count) }
        #expect(z == y)
    }

    @Test func sigmoidSaturatesWithoutOverflowInTheTails() {
        let x: [Float] = [-1000, -100, -80, 0, 80, 100, 1000, -.infinity, .infinity]
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { Elementwise.sigmoid(x, $0.baseAddress!, count: x.count) }
        #expect(y.allSatisfy { !$0.isNaN && $0 >= 0 && $0 <= 1 })
        #expect(y[0] == 0 && y[3] == 0.5 && y[6] == 1 && y[7] == 0 && y[8] == 1)
        #expect(y[2] > 0, "exp(-80) is a normal float and must not flush to zero")
    }

    @Test func reluAndClipKeepNaN() {
        let x: [Float] = [.nan, -1, 3]
        var y = [Float](repeating: 0, count: 3)
        y.withUnsafeMutableBufferPointer { Elementwise.relu(x, $0.baseAddress!, count: 3) }
        #expect(y[0].isNaN && y[1] == 0 && y[2] == 3)
        y.withUnsafeMutableBufferPointer { Elementwise.clip(x, $0.baseAddress!, count: 3, lower: 0, upper: 2) }
        #expect(y[0].isNaN && y[1] == 0 && y[2] == 2)
    }

    @Test func expStaysWithinAFewUlpAcrossTheFloatRange() {
        let x = (0..<20_000).map { Float(-103.9 + 192.5 * Double($0) / 20_000) }
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { Elementwise.exp(x, $0.baseAddress!, count: x.count) }
        var worst: Double = 0
        for (xi, yi) in zip(x, y) {
            let e = exp(Double(xi))
            if e < Double(Float.leastNormalMagnitude) {
                // Subnormal results: absolute error within a couple of subnormal steps.
                #expect(Swift.abs(Double(yi) - e) <= 4 * Double(Float.leastNonzeroMagnitude), "exp(\(xi))")
            } else {
                worst = Swift.max(worst, Swift.abs(Double(yi) - e) / e)
            }
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
    }

    /// The vectorised erf (ErfAccuracyTests in the C kernel's comment): within 2 ulp over every
    /// 1999th float of [0, 4.5] and their negatives, odd, NaN kept, ±1 in the tails.
    @Test func erfStaysWithin2UlpAndKeepsItsSpecialValues() {
        var x: [Float] = []
        var bits: UInt32 = 0
        while bits <= Float(4.5).bitPattern {
            x.append(Float(bitPattern: bits))
            bits += 1999
        }
        x += x.map { -$0 }
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { Elementwise.erf(x, $0.baseAddress!, count: x.count) }
        var worst: Double = 0
        for (xi, yi) in zip(x, y) {
            let e = erf(Double(xi))
            let ulp = Double(Float(e).magnitude.nextUp - Float(e).magnitude)
            worst = Swift.max(worst, Swift.abs(Double(yi) - e) / ulp)
        }
        #expect(worst <= 2, "worst error \(worst) ulp")
        let special: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 3.92, 10, -10, .leastNonzeroMagnitude]
        var out = [Float](repeating: 7, count: special.count)
        out.withUnsafeMutableBufferPointer { Elementwise.erf(special, $0.baseAddress!, count: special.count) }
        #expect(out[0].isNaN)
        #expect(Array(out[1...]) == [1, -1, 0, -0.0, 1, 1, -1, Float(erf(Double(Float.leastNonzeroMagnitude)))])
        #expect(out[4].sign == .minus)
    }

    @Test func expHandlesOverflowUnderflowAndSpecialValues() {
        let x: [Float] = [88.7, 88.8, 1000, -104, -1000, .infinity, -.infinity, .nan, 0, -0.0]
        var y = [Float](repeating: 7, count: x.count)
        y.withUnsafeMutableBufferPointer { Elementwise.exp(x, $0.baseAddress!, count: x.count) }
        #expect(y[0].isFinite && y[0] > 3.3e38)
        #expect(y[1] == .infinity && y[2] == .infinity && y[5] == .infinity)
        #expect(y[3] == 0 && y[4] == 0 && y[6] == 0)
        #expect(y[7].isNaN)
        #expect(y[8] == 1 && y[9] == 1)
    }

    @Test func tanhIsAccurateNearZeroAndSaturatesInTheTails() {
        let x: [Float] = [1e-6, -1e-6, 1e-3, 0.3, 0.62, 0.63, -0.63, 5, 20, -20, 1000, -.infinity, .nan]
        var y = [Float](repeating: 7, count: x.count)
        y.withUnsafeMutableBufferPointer { Elementwise.tanh(x, $0.baseAddress!, count: x.count) }
        expectClose(Array(y[0..<11]), x[0..<11].map { Float(tanh(Double($0))) }, relative: 1e-6, absolute: 0)
        #expect(y[8] == 1 && y[9] == -1 && y[10] == 1 && y[11] == -1)
        #expect(y[12].isNaN)
    }
}
