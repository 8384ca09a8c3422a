#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import DLKernels

/// The AVX-512 transformer kernels (softmax rows, layer normalisation, the attention core)
/// against the portable Swift loops and a Double reference. Skipped without AVX-512, where the
/// dispatchers only run the portable loops.
@Suite struct TransformerKernelTests {
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: [(1, 1), (3, 7), (5, 16), (4, 33), (2, 64), (2, 1000)])
    func softmaxRowsMatchThePortableLoop(_ shape: (rows: Int, n: Int)) {
        let x = randomFloats(shape.rows * shape.n, seed: 81, in: -30...30)
        var fast = [Float](repeating: .nan, count: x.count), portable = fast
        fast.withUnsafeMutableBufferPointer { Softmax.softmax(x, $0.baseAddress!, outer: shape.rows, axisSize: shape.n, inner: 1) }
        portable.withUnsafeMutableBufferPointer { Softmax.softmaxRowsPortable(x, $0.baseAddress!, outer: shape.rows, axisSize: shape.n) }
        let worst = zip(fast, portable).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-6, "largest difference \(worst)")
    }

    @Test(.enabled(if: PackedMatrix.isSupported), arguments: [(1, 1), (3, 5), (4, 16), (2, 47), (64, 128), (2, 1030)], [false, true])
    func layerNormMatchesThePortableLoop(_ shape: (rows: Int, size: Int), withBias: Bool) {
        let x = randomFloats(shape.rows * shape.size, seed: 82, in: -4...6)
        let scale = randomFloats(shape.size, seed: 83), bias = randomFloats(shape.size, seed: 84)
        var y1 = [Float](repeating: .nan, count: x.count), y2 = y1
        var m1 = [Float](repeating: .nan, count: shape.rows), m2 = m1, i1 = m1, i2 = m1
        bias.withUnsafeBufferPointer { pb in
            let b = withBias ? pb.baseAddress : nil
            Normalization.layerNorm(x, &y1, rows: shape.rows, size: shape.size, scale: scale, bias: b, epsilon: 1e-5,
                                    meanOutput: &m1, invStdOutput: &i1)
            Normalization.layerNormPortable(x, &y2, rows: shape.rows, size: shape.size, scale: scale, bias: b,
                                            epsilon: 1e-5, meanOutput: &m2, invStdOutput: &i2)
        }
        for (a, b) in [(y1, y2), (m1, m2), (i1, i2)] {
            let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(worst < 2e-6, "largest difference \(worst)")
        }
    }

    struct AttentionCase: Sendable, CustomTestStringConvertible {
        var heads: Int, s: Int, t: Int, d: Int, dv: Int
        var op: AttentionCore.ScaleOp
        var mask: Bool
        var testDescription: String { "\(heads)h s\(s) t\(t) d\(d) dv\(dv) \(op)\(mask ? " mask" : "")" }
    }

    static let attentionCases: [AttentionCase] = [
        AttentionCase(heads: 4, s: 64, t: 64, d: 32, dv: 32, op: .multiply, mask: false),  // the benchmark layer
        AttentionCase(heads: 1, s: 1, t: 1, d: 1, dv: 1, op: .none, mask: false),
        AttentionCase(heads: 3, s: 7, t: 13, d: 5, dv: 3, op: .divide, mask: true),         // odd everything
        AttentionCase(heads: 2, s: 33, t: 300, d: 17, dv: 70, op: .multiply, mask: true),   // 64-column chunks, tails
        AttentionCase(heads: 2, s: 100, t: 200, d: 8, dv: 48, op: .divide, mask: false),    // several row blocks
    ]

    /// Heads laid out with padding between rows and heads, so every stride matters.
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: attentionCases)
    func attentionCoreMatchesDoubleReference(_ c: AttentionCase) {
        let qRow = c.d + 3, kRow = c.t + 5, vRow = c.dv + 2, oRow = c.dv + 1
        let qHead = c.s * qRow + 7, kHead = c.d * kRow + 1, vHead = c.t * vRow + 4, oHead = c.s * oRow + 2
        let q = randomFloats(c.heads * qHead, seed: 91, in: -2...2), kt = randomFloats(c.heads * kHead, seed: 92, in: -2...2)
        let v = randomFloats(c.heads * vHead, seed: 93), mask = randomFloats(c.heads * c.s * c.t, seed: 94, in: -3...3)
        let scale: Float = 0.37
        var out = [Float](repeating: -99, count: c.heads * oHead)
        let ran = mask.withUnsafeBufferPointer { pm in
            out.withUnsafeMutableBufferPointer { po in
                AttentionCore.run(heads: 0..<c.heads, s: c.s, t: c.t, d: c.d, dv: c.dv,
                                  q: q, qHead: qHead, qRow: qRow, kt: kt, kHead: kHead, kRow: kRow,
                                  v: v, vHead: vHead, vRow: vRow, mask: c.mask ? pm.baseAddress : nil, maskLayout: AttentionCore.MaskLayout(headStride: c.s * c.t, rowStride: c.t),
                                  scaleOp: c.op, scale: scale, out: po.baseAddress!, outHead: oHead, outRow: oRow)
            }
        }
        #expect(ran)
        var worst = 0.0
        for h in 0..<c.heads {
            for i in 0..<c.s {
                var sc = [Double](repeating: 0, count: c.t)
                for j in 0..<c.t {
                    var a = 0.0
                    for k in 0..<c.d { a += Double(q[h * qHead + i * qRow + k]) * Double(kt[h * kHead + k * kRow + j]) }
                    switch c.op {
                    case .none: break
                    case .multiply: a *= Double(scale)
                    case .divide: a /= Double(scale)
                    }
                    if c.mask { a += Double(mask[h * c.s * c.t + i * c.t + j]) }
                    sc[j] = a
                }
                let m = sc.max()!
                let e = sc.map { (x: Double) -> Double in exp(x - m) }
                let sum = e.reduce(0, +)
                for k in 0..<c.dv {
                    var a = 0.0
                    for j in 0..<c.t { a += e[j] / sum * Double(v[h * vHead + j * vRow + k]) }
                    worst = max(worst, abs(a - Double(out[h * oHead + i * oRow + k])))
                }
                // Padding between output rows is left alone.
                if oRow > c.dv { #expect(out[h * oHead + i * oRow + c.dv] == -99) }
            }
        }
        #expect(worst < 2e-5, "largest difference \(worst)")
    }
}
