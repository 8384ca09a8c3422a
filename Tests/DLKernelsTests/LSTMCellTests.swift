import DLKernels
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

    @Test func nanGateGivesNaN() {
        var gates: [Float] = [.nan, 0, 0, 0]
        var c: [Float] = [1], h: [Float] = [0], out: [Float] = [0]
        gates.withUnsafeMutableBufferPointer { g in
            Recurrent.lstmCellFloat(gates: g.baseAddress!, gateStride: 4, c: &c, h: &h, out: &out, outStride: 1, rows: 1, hidden: 1)
        }
        #expect(c[0].isNaN && h[0].isNaN)
    }
}
