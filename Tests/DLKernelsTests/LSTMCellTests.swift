@testable import DLKernels
import Foundation
import Testing

/// The fused LSTM cell (`Recurrent.lstmCellFloat`: AVX-512 in C where the CPU has it, Swift SIMD
/// otherwise) against the cell computed in Double.
@Suite struct LSTMCellTests {
    @Test(arguments: [1, 16, 37])
    func cellMatchesDoubleReference(hidden: Int) {
        let rows = 3, stride = 4 * hidden + 5
        var rng = SeededRandom(seed: UInt64(hidden))
        // Gates across the ranges the polynomials switch at (|x| < 0.625, large, saturated).
        var gates = (0..<(rows * stride)).map { _ in rng.float(in: -30...30) * (rng.next() % 2 == 0 ? 0.02 : 1) }
        gates[1] = 0.3
        var c = (0..<(rows * hidden)).map { _ in rng.float(in: -2...2) }
        let c0 = c
        var h = [Float](repeating: .nan, count: rows * hidden)
        var out = [Float](repeating: .nan, count: rows * (hidden + 2))
        gates.withUnsafeMutableBufferPointer { g in
            c.withUnsafeMutableBufferPointer { cb in
                h.withUnsafeMutableBufferPointer { hb in
                    out.withUnsafeMutableBufferPointer { ob in
                        Recurrent.lstmCellFloat(gates: g.baseAddress!, gateStride: stride, c: cb.baseAddress!, h: hb.baseAddress!,
                                                out: ob.baseAddress!, outStride: hidden + 2, rows: rows, hidden: hidden)
                    }
                }
            }
        }
        func sigmoid(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }
        for b in 0..<rows {
            for j in 0..<hidden {
                let g = b * stride
                let cn = sigmoid(gates[g + 2 * hidden + j]) * Double(c0[b * hidden + j])
                    + sigmoid(gates[g + j]) * Foundation.tanh(Double(gates[g + 3 * hidden + j]))
                let hn = sigmoid(gates[g + hidden + j]) * Foundation.tanh(cn)
                #expect(abs(Double(c[b * hidden + j]) - cn) <= 2e-6 * max(1, abs(cn)), "c[\(b), \(j)]")
                #expect(abs(Double(h[b * hidden + j]) - hn) <= 2e-6, "h[\(b), \(j)]")
                #expect(out[b * (hidden + 2) + j] == h[b * hidden + j])
            }
            // The output rows' padding is left alone.
            #expect(out[b * (hidden + 2) + hidden].isNaN)
        }
    }

    /// The rational tanh and sigmoid of the cell's Swift loop over a sweep of [-12, 12] (every
    /// 2⁻¹⁴, past the clamp at ±9) and the values at the edges, against Double.
    @Test func rationalTanhAndSigmoidStayWithinTheirBounds() {
        var worstTanh = 0.0, worstSigmoid = 0.0
        var values = (0..<(24 << 14)).map { Float(-12) + Float($0) / Float(1 << 14) }
        values += [0, -0, .leastNonzeroMagnitude, 1e-30, -1e-30, 1e-8, .infinity, -.infinity, .greatestFiniteMagnitude]
        values += Array(repeating: 0, count: (8 - values.count % 8) % 8)
        for start in stride(from: 0, to: values.count, by: 8) {
            let x = SIMD8<Float>(values[start..<(start + 8)])
            let t = VectorMath.tanhRational(x), s = VectorMath.sigmoidRational(x)
            for lane in 0..<8 {
                let v = Double(x[lane])
                worstTanh = max(worstTanh, abs(Double(t[lane]) - Foundation.tanh(v)))
                worstSigmoid = max(worstSigmoid, abs(Double(s[lane]) - 1 / (1 + Foundation.exp(-v))))
                // Odd, and exact at 0 (the sign of zero kept).
                if x[lane] == 0 { #expect(t[lane].bitPattern == x[lane].bitPattern) }
            }
        }
        #expect(worstTanh <= 4e-7, "tanh off by \(worstTanh)")
        #expect(worstSigmoid <= 2.5e-7, "sigmoid off by \(worstSigmoid)")
        let nan = SIMD8<Float>(repeating: .nan)
        #expect(VectorMath.tanhRational(nan)[0].isNaN && VectorMath.sigmoidRational(nan)[0].isNaN)
    }

    /// The cell (the AVX-512 kernel where the CPU has it) swept over the cell gate and the output
    /// gate: with c₀ = 0 and the input gate saturated, c is tanh(z); h is σ(o)·tanh(c). Against
    /// Double, to the bounds of the rational forms plus a rounding.
    @Test func cellIsWithinTheRationalBoundsOverASweep() {
        let hidden = 256, rows = 64
        var gates = [Float](repeating: 0, count: rows * 4 * hidden)
        for b in 0..<rows {
            for j in 0..<hidden {
                let g = b * 4 * hidden, k = Float(b * hidden + j) / Float(rows * hidden)
                gates[g + j] = 40                                  // input gate: σ = 1
                gates[g + hidden + j] = -14 + 28 * (1 - k)          // output gate
                gates[g + 2 * hidden + j] = Float(j % 7) - 3        // forget gate (c₀ is 0)
                gates[g + 3 * hidden + j] = -12 + 24 * k            // cell gate
            }
        }
        let z = gates, o = gates
        var c = [Float](repeating: 0, count: rows * hidden), h = c, out = c
        gates.withUnsafeMutableBufferPointer { g in
            Recurrent.lstmCellFloat(gates: g.baseAddress!, gateStride: 4 * hidden, c: &c, h: &h, out: &out, outStride: hidden,
                                    rows: rows, hidden: hidden)
        }
        var worstC = 0.0, worstH = 0.0
        for b in 0..<rows {
            for j in 0..<hidden {
                let g = b * 4 * hidden, cb = Double(c[b * hidden + j])
                worstC = max(worstC, abs(cb - Foundation.tanh(Double(z[g + 3 * hidden + j]))))
                let sigma = 1 / (1 + Foundation.exp(-Double(o[g + hidden + j])))
                worstH = max(worstH, abs(Double(h[b * hidden + j]) - sigma * Foundation.tanh(cb)))
            }
        }
        #expect(worstC <= 4e-7, "c off by \(worstC)")
        #expect(worstH <= 6e-7, "h off by \(worstH)")
    }

    @Test func nanGateGivesNaN() {
        var gates: [Float] = [.nan, 0, 0, 0]
        var c: [Float] = [1], h: [Float] = [0], out: [Float] = [0]
        gates.withUnsafeMutableBufferPointer { g in
            Recurrent.lstmCellFloat(gates: g.baseAddress!, gateStride: 4, c: &c, h: &h, out: &out, outStride: 1, rows: 1, hidden: 1)
        }
        #expect(c[0].isNaN && h[0].isNaN)
    }
}
