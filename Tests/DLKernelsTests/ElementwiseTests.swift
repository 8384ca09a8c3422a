#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLKernels
import DLTensor
import Testing

struct BroadcastCase: Sendable, CustomTestStringConvertible {
    var a: [Int], b: [Int]
    var testDescription: String { "\(a) ⊕ \(b)" }

    var out: [Int] {
        let r = max(a.count, b.count)
        return (0..<r).map { i in
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            return da == 1 ? db : da
        }
    }
}

/// numpy broadcasting written out: each output index maps to operand indices (0 on size-1 axes).
func referenceBinary<T>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ outShape: [Int],
                        _ f: (T, T) -> T) -> [T] {
    func source(_ idx: [Int], _ shape: [Int]) -> Int {
        let lead = idx.count - shape.count
        return ravel(shape.indices.map { shape[$0] == 1 ? 0 : idx[$0 + lead] }, shape)
    }
    return (0..<product(outShape)).map { flat in
        let idx = unravel(flat, outShape)
        return f(a[source(idx, aShape)], b[source(idx, bShape)])
    }
}

func truncatingDivideOrZero<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
    b == 0 ? 0 : a.dividedReportingOverflow(by: b).partialValue
}

@Suite struct ElementwiseTests {
    static let cases: [BroadcastCase] = [
        BroadcastCase(a: [2, 3, 4], b: [2, 3, 4]),
        BroadcastCase(a: [37], b: [37]),
        BroadcastCase(a: [2, 3, 4], b: [3, 1]),
        BroadcastCase(a: [2, 3, 4], b: [1]),
        BroadcastCase(a: [2, 3, 4], b: [4]),
        BroadcastCase(a: [2, 3, 4], b: [2, 1, 4]),
        BroadcastCase(a: [2, 3, 4], b: []),
        BroadcastCase(a: [], b: [2, 3, 4]),
        BroadcastCase(a: [1], b: [5, 17]),
        BroadcastCase(a: [3, 1], b: [2, 3, 4]),
        BroadcastCase(a: [5, 1], b: [1, 6]),
        BroadcastCase(a: [1, 3, 1], b: [2, 1, 5]),
        BroadcastCase(a: [2, 3, 4, 5], b: [3, 1, 1]),
        BroadcastCase(a: [2, 3, 9, 9], b: [1, 3, 1, 1]),
        BroadcastCase(a: [4, 1, 3], b: [4, 5, 1]),
        BroadcastCase(a: [2, 1, 3, 1, 19], b: [2, 7, 1, 1, 19]),
        BroadcastCase(a: [0, 3], b: [3]),
        BroadcastCase(a: [1, 1], b: [1]),
        BroadcastCase(a: [], b: []),
    ]

    /// Outputs big enough to be split over the workers (`BroadcastPlan.forEachPart`): along the
    /// outer loop of a broadcast, and a flat loop cut at multiples of 16 (odd lengths, so the
    /// parts end mid-vector); the same values on one worker and two.
    static let splitCases: [BroadcastCase] = [
        BroadcastCase(a: [300_007], b: [300_007]),
        BroadcastCase(a: [300_007], b: []),
        BroadcastCase(a: [7, 3, 15001], b: [3, 1]),
        BroadcastCase(a: [1, 1029, 385], b: [385]),
        BroadcastCase(a: [5, 1, 15001], b: [5, 4, 1]),
    ]

    @Test(arguments: splitCases, [1, 2])
    func float32BinarySplitOverWorkersMatchesNumpyBroadcasting(_ c: BroadcastCase, workers: Int) throws {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        let a = randomFloats(product(c.a), seed: 32, in: -4...4), b = randomFloats(product(c.b), seed: 33, in: 0.5...3)
        for (op, f) in [(BinaryOperation.add, { (x: Float, y: Float) in x + y }), (.div, { $0 / $1 })] {
            let expected = referenceBinary(a, c.a, b, c.b, c.out, f)
            var out = [Float](repeating: .nan, count: product(c.out))
            try out.withUnsafeMutableBufferPointer { o in
                try Elementwise.binary(op, a, shape: c.a, b, shape: c.b, o.baseAddress!, shape: c.out)
            }
            #expect(out == expected, "\(op)")
        }
    }

    /// A unary loop split by `Elementwise.splitting` gives the bits of one pass (erf and tanh
    /// have vector bodies and tails), on 300007 elements (past `Elementwise.splitMinimum`).
    @Test func unaryLoopsSplitOverWorkersGiveOnePassBits() {
        let x = randomFloats(300_007, seed: 34, in: -5...5)
        var whole = [Float](repeating: 0, count: x.count), split = whole
        for f in [Elementwise.erf, Elementwise.tanh] {
            x.withUnsafeBufferPointer { xp in
                whole.withUnsafeMutableBufferPointer { f(xp.baseAddress!, $0.baseAddress!, x.count) }
                let saved = ParallelFor.workerCount
                ParallelFor.setWorkerCount(2)
                defer { ParallelFor.setWorkerCount(saved) }
                split.withUnsafeMutableBufferPointer { sp in
                    Elementwise.splitting(xp.baseAddress!, sp.baseAddress!, count: x.count) { f($0, $1, $2) }
                }
            }
            #expect(whole.map(\.bitPattern) == split.map(\.bitPattern))
        }
    }

    @Test(arguments: cases, BinaryOperation.allCases)
    func float32BinaryMatchesNumpyBroadcasting(_ c: BroadcastCase, _ op: BinaryOperation) throws {
        let a = randomFloats(product(c.a), seed: 30, in: -4...4)
        let b = randomFloats(product(c.b), seed: 31, in: 0.5...3).enumerated().map { $0.offset % 2 == 0 ? $0.element : -$0.element }
        let f: (Float, Float) -> Float = switch op {
        case .add: { $0 + $1 }
        case .sub: { $0 - $1 }
        case .mul: { $0 * $1 }
        case .div: { $0 / $1 }
        case .max: { $1 > $0 || $1.isNaN ? $1 : $0 }
        case .min: { $1 < $0 || $1.isNaN ? $1 : $0 }
        case .prelu: { $0 < 0 ? $0 * $1 : $0 }
        }
        let expected = referenceBinary(a, c.a, b, c.b, c.out, f)
        var out = [Float](repeating: .nan, count: product(c.out))
        try out.withUnsafeMutableBufferPointer { o in
            try Elementwise.binary(op, a, shape: c.a, b, shape: c.b, o.baseAddress!, shape: c.out)
        }
        expectClose(out, expected)
    }

    @Test(arguments: cases, BinaryOperation.allCases)
    func int64BinaryMatchesNumpyBroadcasting(_ c: BroadcastCase, _ op: BinaryOperation) throws {
        var rng = SeededRandom(seed: 32)
        let a = (0..<product(c.a)).map { _ in rng.int(in: Int64(-100)...100) }
        let b = (0..<product(c.b)).map { _ in rng.int(in: Int64(-7)...7) }
        let f: (Int64, Int64) -> Int64 = switch op {
        case .add: { $0 &+ $1 }
        case .sub: { $0 &- $1 }
        case .mul: { $0 &* $1 }
        case .div: truncatingDivideOrZero
        case .max: { max($0, $1) }
        case .min: { min($0, $1) }
        case .prelu: { $0 < 0 ? $0 &* $1 : $0 }
        }
        let expected = referenceBinary(a, c.a, b, c.b, c.out, f)
        var out = [Int64](repeating: 12345, count: product(c.out))
        try out.withUnsafeMutableBufferPointer { o in
            try Elementwise.binary(op, a, shape: c.a, b, shape: c.b, o.baseAddress!, shape: c.out)
        }
        #expect(out == expected)
    }

    @Test(arguments: cases, BinaryOperation.allCases)
    func int32BinaryMatchesNumpyBroadcasting(_ c: BroadcastCase, _ op: BinaryOperation) throws {
        var rng = SeededRandom(seed: 33)
        let a = (0..<product(c.a)).map { _ in rng.int(in: Int32(-100)...100) }
        let b = (0..<product(c.b)).map { _ in rng.int(in: Int32(-7)...7) }
        let f: (Int32, Int32) -> Int32 = switch op {
        case .add: { $0 &+ $1 }
        case .sub: { $0 &- $1 }
        case .mul: { $0 &* $1 }
        case .div: truncatingDivideOrZero
        case .max: { max($0, $1) }
        case .min: { min($0, $1) }
        case .prelu: { $0 < 0 ? $0 &* $1 : $0 }
        }
        let expected = referenceBinary(a, c.a, b, c.b, c.out, f)
        var out = [Int32](repeating: 12345, count: product(c.out))
        try out.withUnsafeMutableBufferPointer { o in
            try Elementwise.binary(op, a, shape: c.a, b, shape: c.b, o.baseAddress!, shape: c.out)
        }
        #expect(out == expected)
    }

    @Test func integerDivisionTruncatesTowardZeroAndNeverTraps() throws {
        let a: [Int64] = [7, -7, 7, -7, 5, 0, .min, .min, .max]
        let b: [Int64] = [2, 2, -2, -2, 0, 0, -1, 1, -1]
        var out = [Int64](repeating: 99, count: a.count)
        try out.withUnsafeMutableBufferPointer { o in
            try Elementwise.binary(.div, a, shape: [9], b, shape: [9], o.baseAddress!, shape: [9])
        }
        #expect(out == [3, -3, -3, 3, 0, 0, .min, .min, -Int64.max])

        // The same through the scalar-broadcast path (a divisor of zero for every element).
        let a32: [Int32] = Array(-10...10)
        var out32 = [Int32](repeating: 99, count: a32.count)
        let zero: [Int32] = [0]
        try out32.withUnsafeMutableBufferPointer { o in
            try Elementwise.binary(.div, a32, shape: [21], zero, shape: [], o.baseAddress!, shape: [21])
        }
        #expect(out32 == [Int32](repeating: 0, count: 21))
    }

    @Test func integerArithmeticWrapsOnOverflow() throws {
        let a: [Int32] = [.max, .min, .max]
        let b: [Int32] = [1, 1, 2]
        var sum = [Int32](repeating: 0, count: 3), difference = sum, productOut = sum
        try sum.withUnsafeMutableBufferPointer { try Elementwise.binary(.add, a, shape: [3], b, shape: [3], $0.baseAddress!, shape: [3]) }
        try difference.withUnsafeMutableBufferPointer { try Elementwise.binary(.sub, a, shape: [3], b, shape: [3], $0.baseAddress!, shape: [3]) }
        try productOut.withUnsafeMutableBufferPointer { try Elementwise.binary(.mul, a, shape: [3], b, shape: [3], $0.baseAddress!, shape: [3]) }
        #expect(sum == [.min, .min + 1, .min + 1])
        #expect(difference == [.max - 1, .max, .max - 2])
        #expect(productOut == [.max, .min, -2])
    }

    /// Pow as the double-precision pow rounded once: squares (the eight-lane shortcut), other
    /// exponents, negative bases (NaN for fractional exponents), 0 to negative powers, broadcast
    /// and scalar exponents, tails.
    @Test func powerEqualsDoublePowRoundedOnce() throws {
        let a: [Float] = (0..<37).map { Float($0 - 18) * 0.37 } + [0, -0.0, .infinity, -.infinity, .nan]
        for exponents in [[Float(2)], [Float(0.5)], [Float(-1), 2, 3, 0.5, 2, 2, 2, 2, 1.5, -2]] {
            let rows = a.count / exponents.count, shape = [rows, exponents.count]
            let n = rows * exponents.count
            var out = [Float](repeating: 7, count: n)
            let plan = try BroadcastPlan(outShape: shape, operands: [shape, [exponents.count]])
            out.withUnsafeMutableBufferPointer { Elementwise.power(a, exponents, $0.baseAddress!, plan: plan) }
            for i in 0..<n {
                let want = Float(pow(Double(a[i]), Double(exponents[i % exponents.count])))
                #expect(out[i] == want || (out[i].isNaN && want.isNaN), "\(a[i]) ** \(exponents[i % exponents.count])")
            }
        }
    }

    @Test func binaryRunsInPlaceOnTheFullSizeOperand() throws {
        var a = randomFloats(2 * 3 * 20, seed: 34)
        let b = randomFloats(20, seed: 35)
        let expected = referenceBinary(a, [2, 3, 20], b, [20], [2, 3, 20], *)
        let plan = try BroadcastPlan(outShape: [2, 3, 20], operands: [[2, 3, 20], [20]])
        a.withUnsafeMutableBufferPointer { p in
            Elementwise.binary(.mul, UnsafePointer(p.baseAddress!), b, p.baseAddress!, plan: plan)
        }
        #expect(a == expected)
    }

    @Test(arguments: [
        (BroadcastCase(a: [2, 3, 4], b: [2, 3, 4]), [24], [1], [1]),
        (BroadcastCase(a: [2, 3, 4, 5], b: [3, 1, 1]), [2, 3, 20], [60, 20, 1], [0, 1, 0]),
        (BroadcastCase(a: [2, 3, 4], b: [4]), [6, 4], [4, 1], [0, 1]),
        (BroadcastCase(a: [2, 3, 4], b: []), [24], [1], [0]),
        (BroadcastCase(a: [1, 3, 1], b: [2, 1, 5]), [2, 3, 5], [0, 1, 0], [5, 0, 1]),
        (BroadcastCase(a: [1, 1], b: [1]), [], [], []),
        (BroadcastCase(a: [1, 1], b: []), [], [], []),
        (BroadcastCase(a: [1, 3, 1], b: [3, 1]), [3], [1], [1]),
        (BroadcastCase(a: [1, 1, 6], b: [1]), [6], [1], [0]),
        (BroadcastCase(a: [], b: [2, 1, 3]), [6], [0], [1]),
    ])
    func broadcastPlanMergesContiguousDimensions(_ c: BroadcastCase, dims: [Int], aStrides: [Int], bStrides: [Int]) throws {
        let plan = try BroadcastPlan(outShape: c.out, operands: [c.a, c.b])
        #expect(plan.dims == dims)
        #expect(plan.strides == [aStrides, bStrides])
        #expect(plan.outputCount == product(c.out))
    }

    @Test(arguments: cases)
    func broadcastPlanOffsetsMatchTheReference(_ c: BroadcastCase) throws {
        let plan = try BroadcastPlan(operands: [c.a, c.b])
        let expected = referenceBinary(Array(0..<product(c.a)), c.a, Array(0..<product(c.b)), c.b, c.out) { $0 * 100_000 + $1 }
        #expect(zip(plan.offsets(of: 0), plan.offsets(of: 1)).map { $0 * 100_000 + $1 } == expected)
    }

    @Test func broadcastPlanWalksThreeOperandsRowByRow() throws {
        // Where(cond [2, 1, 4], x [3, 1], y scalar) as torch's masked_fill writes it.
        let plan = try BroadcastPlan(operands: [[2, 1, 4], [3, 1], []])
        #expect(plan.dims == [2, 3, 4] && plan.rowLength == 4 && plan.rowStrides == [1, 0, 0])
        var rows: [[Int]] = []
        plan.forEachRow { o, off in rows.append([o] + Array(off)) }
        #expect(rows == [[0, 0, 0, 0], [4, 0, 1, 0], [8, 0, 2, 0], [12, 4, 0, 0], [16, 4, 1, 0], [20, 4, 2, 0]])
    }

    @Test func broadcastPlanRefusesShapesThatClash() {
        #expect(throws: Broadcast.Mismatch(shapes: [[2, 3], [4]].map { [Dim]($0) }, axis: 1)) {
            try BroadcastPlan(operands: [[2, 3], [4]])
        }
        // An operand may stretch to the output, never the output to an operand.
        #expect(throws: Broadcast.Mismatch.self) { try BroadcastPlan(outShape: [1, 3], operands: [[2, 3]]) }
        #expect(throws: Broadcast.Mismatch.self) { try BroadcastPlan(outShape: [3], operands: [[2, 3]]) }
        // As many elements as the output, in another shape, or of higher rank.
        #expect(throws: Broadcast.Mismatch.self) { try BroadcastPlan(outShape: [1, 3], operands: [[3, 1]]) }
        #expect(throws: Broadcast.Mismatch.self) { try BroadcastPlan(outShape: [2, 3], operands: [[3, 2]]) }
        #expect(throws: Broadcast.Mismatch.self) { try BroadcastPlan(outShape: [3], operands: [[2, 1, 3]]) }
    }

}
