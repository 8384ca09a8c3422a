import DLGraph
import DLKernels
import DLTensor
import Foundation

/// LSTM and GRU: backpropagation through time. The rule recomputes the gates from the recorded
/// inputs (default activations, layout 0, forward/reverse/bidirectional), then walks each
/// direction backwards. Clipping, peepholes, input_forget, custom activations and
/// sequence_lens are refused with a message.
extension Rules {
    static let recurrent: [(String, GradientRule)] = [("LSTM", lstm), ("GRU", gru)]

    struct RNNShape {
        var seq: Int, batch: Int, input: Int, hidden: Int, dirs: Int, reverseOnly: Bool
    }

    static func rnnShape(_ c: RuleContext, gates: Int) throws(AutogradError) -> RNNShape {
        let x = try c.input(0), w = try c.input(1), r = try c.input(2)
        guard try c.int("layout", 0) == 0 else { throw c.unsupported("gradients need layout 0") }
        if c.node.attribute("clip") != nil { throw c.unsupported("gradients with clip are not supported") }
        if c.node.attribute("activations") != nil { throw c.unsupported("gradients need the default activations") }
        if try c.int("input_forget", 0) != 0 { throw c.unsupported("gradients with input_forget are not supported") }
        if c.inputs.count > 4, let s = c.inputs[4] {
            let lens = Ops.ints(s)
            guard lens.allSatisfy({ $0 == x.shape[0] }) else { throw c.unsupported("gradients need every sequence_lens equal to the sequence length") }
        }
        if c.inputs.count > 7, c.inputs[7] != nil { throw c.unsupported("gradients with peepholes are not supported") }
        let direction = try c.string("direction", "forward")
        let dirs = direction == "bidirectional" ? 2 : 1
        guard x.rank == 3, w.rank == 3, r.rank == 3, w.shape[0] == dirs else { throw c.fail("X, W, R shapes do not fit") }
        let hidden = r.shape[2]
        guard w.shape[1] == gates * hidden, r.shape[1] == gates * hidden else { throw c.fail("W/R do not hold \(gates) gates of \(hidden)") }
        return RNNShape(seq: x.shape[0], batch: x.shape[1], input: x.shape[2], hidden: hidden, dirs: dirs, reverseOnly: direction == "reverse")
    }

    static func sigmoid(_ v: Float) -> Float { 1 / (1 + Foundation.exp(-v)) }

    /// out[b, j] = Σ_k a[b, k] · m[row0 + j, k] for j < rows: a times a block of rows of `m`, transposed.
    static func timesRowsT(_ a: ArraySlice<Float>, batch: Int, k: Int, _ m: [Float], mOffset: Int, rows: Int) -> [Float] {
        var out = [Float](repeating: 0, count: batch * rows)
        let a0 = a.startIndex
        for b in 0..<batch {
            for j in 0..<rows {
                var s: Float = 0
                let mrow = mOffset + j * k
                for q in 0..<k { s += a[a0 + b * k + q] * m[mrow + q] }
                out[b * rows + j] = s
            }
        }
        return out
    }

    /// `c[cOff...] (+)= op(a) · op(b)` on row-major arrays (`m × n` result, inner size `k`), through
    /// OpenBLAS; `accumulate` adds to what `c` holds.
    static func gemm(_ a: [Float], _ aOff: Int, transA: Bool, _ b: [Float], _ bOff: Int, transB: Bool,
                     m: Int, n: Int, k: Int, into c: inout [Float], _ cOff: Int, accumulate: Bool) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    guard let ba = pa.baseAddress, let bb = pb.baseAddress, let bc = pc.baseAddress else { return }
                    GEMM.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: ba + aOff, lda: transA ? m : k,
                               b: bb + bOff, ldb: transB ? k : n, beta: accumulate ? 1 : 0, c: bc + cOff, ldc: n)
                }
            }
        }
    }

    /// Backpropagation through time with the products as GEMMs: the input projections of all
    /// steps at once (forward), the recurrent product per step, and the weight and input
    /// gradients from the gate gradients of all steps at once (backward).
    static let lstm: GradientRule = { c throws(AutogradError) in
        let sh = try rnnShape(c, gates: 4)
        let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
        let G = 4 * H
        let x = Ops.floats(try c.input(0)), w = Ops.floats(try c.input(1)), r = Ops.floats(try c.input(2))
        let bias = c.inputs.count > 3 ? c.inputs[3].map(Ops.floats) : nil
        let h0 = c.inputs.count > 5 ? c.inputs[5].map(Ops.floats) : nil
        let c0 = c.inputs.count > 6 ? c.inputs[6].map(Ops.floats) : nil
        let gY = c.grad(0), gYh = c.grad(1), gYc = c.grad(2)
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count)
        var dr = [Float](repeating: 0, count: r.count), db = [Float](repeating: 0, count: sh.dirs * 8 * H)
        var dh0 = [Float](repeating: 0, count: sh.dirs * N * H), dc0 = dh0
        for d in 0..<sh.dirs {
            let reverse = sh.reverseOnly || d == 1
            let order = reverse ? Array((0..<T).reversed()) : Array(0..<T)
            let wOff = d * G * I, rOff = d * G * H
            // The inputs in processing order, and their projections X·Wᵀ for every step.
            var xs = [Float](repeating: 0, count: T * N * I)
            for (step, t) in order.enumerated() {
                for q in 0..<(N * I) { xs[step * N * I + q] = x[t * N * I + q] }
            }
            var gates = [Float](repeating: 0, count: T * N * G)
            gemm(xs, 0, transA: false, w, wOff, transB: true, m: T * N, n: G, k: I, into: &gates, 0, accumulate: false)
            // Forward, keeping gates (i, o, f, c~) and states per step: hs/cs row `step` is the
            // state before that step, row T the last.
            var hs = [Float](repeating: 0, count: (T + 1) * N * H), cs = hs
            for k in 0..<(N * H) {
                hs[k] = h0?[d * N * H + k] ?? 0
                cs[k] = c0?[d * N * H + k] ?? 0
            }
            for step in 0..<T {
                let g0 = step * N * G
                gemm(hs, step * N * H, transA: false, r, rOff, transB: true, m: N, n: G, k: H, into: &gates, g0, accumulate: true)
                for b in 0..<N {
                    for j in 0..<G {
                        var v = gates[g0 + b * G + j]
                        if let bias { v += bias[d * 8 * H + j] + bias[d * 8 * H + G + j] }
                        gates[g0 + b * G + j] = j >= 3 * H ? Foundation.tanh(v) : sigmoid(v)
                    }
                    for k in 0..<H {
                        let gb = g0 + b * G
                        let i = gates[gb + k], o = gates[gb + H + k], f = gates[gb + 2 * H + k], cc = gates[gb + 3 * H + k]
                        let cv = f * cs[step * N * H + b * H + k] + i * cc
                        cs[(step + 1) * N * H + b * H + k] = cv
                        hs[(step + 1) * N * H + b * H + k] = o * Foundation.tanh(cv)
                    }
                }
            }
            // Backward through time: the gate gradients of every step (rows in processing order).
            var dpre = [Float](repeating: 0, count: T * N * G)
            var dH = [Float](repeating: 0, count: N * H), dC = dH
            for k in 0..<(N * H) { dH[k] = gYh.isEmpty ? 0 : gYh[d * N * H + k]; dC[k] = gYc.isEmpty ? 0 : gYc[d * N * H + k] }
            for step in stride(from: T - 1, through: 0, by: -1) {
                let t = order[step]
                let g0 = step * N * G
                for b in 0..<N {
                    for k in 0..<H {
                        let idx = b * H + k, gb = g0 + b * G
                        let dh = dH[idx] + (gY.isEmpty ? 0 : gY[((t * sh.dirs + d) * N + b) * H + k])
                        let i = gates[gb + k], o = gates[gb + H + k], f = gates[gb + 2 * H + k], cc = gates[gb + 3 * H + k]
                        let tc = Foundation.tanh(cs[(step + 1) * N * H + idx])
                        let dc = dC[idx] + dh * o * (1 - tc * tc)
                        dpre[gb + k] = dc * cc * i * (1 - i)
                        dpre[gb + H + k] = dh * tc * o * (1 - o)
                        dpre[gb + 2 * H + k] = dc * cs[step * N * H + idx] * f * (1 - f)
                        dpre[gb + 3 * H + k] = dc * i * (1 - cc * cc)
                        dC[idx] = dc * f
                    }
                }
                // dH of the step before: dpre · R.
                gemm(dpre, g0, transA: false, r, rOff, transB: false, m: N, n: H, k: G, into: &dH, 0, accumulate: false)
            }
            // dW += dpreᵀ · X, dR += dpreᵀ · H_before, dX += dpre · W, db = column sums of dpre.
            gemm(dpre, 0, transA: true, xs, 0, transB: false, m: G, n: I, k: T * N, into: &dw, wOff, accumulate: true)
            gemm(dpre, 0, transA: true, hs, 0, transB: false, m: G, n: H, k: T * N, into: &dr, rOff, accumulate: true)
            var dxs = [Float](repeating: 0, count: T * N * I)
            gemm(dpre, 0, transA: false, w, wOff, transB: false, m: T * N, n: I, k: G, into: &dxs, 0, accumulate: false)
            for (step, t) in order.enumerated() {
                for q in 0..<(N * I) { dx[t * N * I + q] += dxs[step * N * I + q] }
            }
            for row in 0..<(T * N) {
                for j in 0..<G {
                    let gv = dpre[row * G + j]
                    db[d * 8 * H + j] += gv
                    db[d * 8 * H + G + j] += gv
                }
            }
            for k in 0..<(N * H) { dh0[d * N * H + k] = dH[k]; dc0[d * N * H + k] = dC[k] }
        }
        var out: [Tensor?] = [Ops.tensor([T, N, I], dx), Ops.tensor(try c.input(1).shape, dw), Ops.tensor(try c.input(2).shape, dr)]
        out.append(bias != nil ? Ops.tensor([sh.dirs, 8 * H], db) : nil)
        out.append(nil)
        out.append(h0 != nil ? Ops.tensor([sh.dirs, N, H], dh0) : nil)
        out.append(c0 != nil ? Ops.tensor([sh.dirs, N, H], dc0) : nil)
        return out
    }

    static let gru: GradientRule = { c throws(AutogradError) in
        let sh = try rnnShape(c, gates: 3)
        let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
        let lbr = try c.int("linear_before_reset", 0) != 0
        let x = Ops.floats(try c.input(0)), w = Ops.floats(try c.input(1)), r = Ops.floats(try c.input(2))
        let bias = c.inputs.count > 3 ? c.inputs[3].map(Ops.floats) : nil
        let h0 = c.inputs.count > 5 ? c.inputs[5].map(Ops.floats) : nil
        let gY = c.grad(0), gYh = c.grad(1)
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count)
        var dr = [Float](repeating: 0, count: r.count), db = [Float](repeating: 0, count: sh.dirs * 6 * H)
        var dh0 = [Float](repeating: 0, count: sh.dirs * N * H)
        for d in 0..<sh.dirs {
            let reverse = sh.reverseOnly || d == 1
            let order = reverse ? Array((0..<T).reversed()) : Array(0..<T)
            let wOff = d * 3 * H * I, rOff = d * 3 * H * H, bOff = d * 6 * H
            func wb(_ j: Int) -> Float { bias.map { $0[bOff + j] } ?? 0 }
            func rb(_ j: Int) -> Float { bias.map { $0[bOff + 3 * H + j] } ?? 0 }
            var hs = [[Float]](), zs = [[Float]](), rs = [[Float]](), hts = [[Float]](), us = [[Float]]()
            var hPrev = h0.map { Array($0[(d * N * H)..<((d + 1) * N * H)]) } ?? [Float](repeating: 0, count: N * H)
            hs.append(hPrev)
            for t in order {
                let xw = timesRowsT(x[(t * N * I)..<((t + 1) * N * I)], batch: N, k: I, w, mOffset: wOff, rows: 3 * H)
                let hrZR = timesRowsT(hPrev[...], batch: N, k: H, r, mOffset: rOff, rows: 2 * H)
                var z = [Float](repeating: 0, count: N * H), rr = z, ht = z, hNew = z, u = z
                for b in 0..<N {
                    for k in 0..<H {
                        z[b * H + k] = sigmoid(xw[b * 3 * H + k] + hrZR[b * 2 * H + k] + wb(k) + rb(k))
                        rr[b * H + k] = sigmoid(xw[b * 3 * H + H + k] + hrZR[b * 2 * H + H + k] + wb(H + k) + rb(H + k))
                    }
                }
                let source: [Float]
                if lbr { source = hPrev } else { source = (0..<(N * H)).map { rr[$0] * hPrev[$0] } }
                let hh = timesRowsT(source[...], batch: N, k: H, r, mOffset: rOff + 2 * H * H, rows: H)
                for b in 0..<N {
                    for k in 0..<H {
                        let idx = b * H + k
                        let pre: Float
                        if lbr {
                            u[idx] = hh[idx] + rb(2 * H + k)
                            pre = xw[b * 3 * H + 2 * H + k] + rr[idx] * u[idx] + wb(2 * H + k)
                        } else {
                            pre = xw[b * 3 * H + 2 * H + k] + hh[idx] + rb(2 * H + k) + wb(2 * H + k)
                        }
                        ht[idx] = Foundation.tanh(pre)
                        hNew[idx] = (1 - z[idx]) * ht[idx] + z[idx] * hPrev[idx]
                    }
                }
                zs.append(z); rs.append(rr); hts.append(ht); us.append(u); hs.append(hNew)
                hPrev = hNew
            }
            var dH = [Float](repeating: 0, count: N * H)
            for k in 0..<(N * H) { dH[k] = gYh.isEmpty ? 0 : gYh[d * N * H + k] }
            for step in stride(from: T - 1, through: 0, by: -1) {
                let t = order[step]
                let z = zs[step], rr = rs[step], ht = hts[step], u = us[step], hBefore = hs[step]
                var dpz = [Float](repeating: 0, count: N * H), dpr = dpz, dph = dpz, newDH = dpz
                var a = dpz
                for idx in 0..<(N * H) {
                    let b = idx / H, k = idx % H
                    let dh = dH[idx] + (gY.isEmpty ? 0 : gY[((t * sh.dirs + d) * N + b) * H + k])
                    dpz[idx] = dh * (hBefore[idx] - ht[idx]) * z[idx] * (1 - z[idx])
                    dph[idx] = dh * (1 - z[idx]) * (1 - ht[idx] * ht[idx])
                    newDH[idx] = dh * z[idx]
                    a[idx] = rr[idx] * hBefore[idx]
                }
                // The candidate's recurrent part.
                let hRow = rOff + 2 * H * H
                if lbr {
                    for b in 0..<N {
                        for j in 0..<H {
                            let idx = b * H + j
                            let du = dph[idx] * rr[idx]
                            dpr[idx] = dph[idx] * u[idx] * rr[idx] * (1 - rr[idx])
                            db[bOff + 5 * H + j] += du
                            for q in 0..<H {
                                dr[hRow + j * H + q] += du * hBefore[b * H + q]
                                newDH[b * H + q] += du * r[hRow + j * H + q]
                            }
                        }
                    }
                } else {
                    var da = [Float](repeating: 0, count: N * H)
                    for b in 0..<N {
                        for j in 0..<H {
                            let gv = dph[b * H + j]
                            db[bOff + 5 * H + j] += gv
                            for q in 0..<H {
                                dr[hRow + j * H + q] += gv * a[b * H + q]
                                da[b * H + q] += gv * r[hRow + j * H + q]
                            }
                        }
                    }
                    for idx in 0..<(N * H) {
                        dpr[idx] = da[idx] * hBefore[idx] * rr[idx] * (1 - rr[idx])
                        newDH[idx] += da[idx] * rr[idx]
                    }
                }
                for b in 0..<N {
                    for (gate, dp) in [(0, dpz), (1, dpr), (2, dph)] {
                        for j in 0..<H {
                            let gv = dp[b * H + j]
                            if gv == 0 { continue }
                            let row = gate * H + j
                            for q in 0..<I {
                                dw[wOff + row * I + q] += gv * x[(t * N + b) * I + q]
                                dx[(t * N + b) * I + q] += gv * w[wOff + row * I + q]
                            }
                            db[bOff + row] += gv
                            if gate < 2 {
                                db[bOff + 3 * H + row] += gv
                                for q in 0..<H {
                                    dr[rOff + row * H + q] += gv * hBefore[b * H + q]
                                    newDH[b * H + q] += gv * r[rOff + row * H + q]
                                }
                            }
                        }
                    }
                }
                dH = newDH
            }
            for k in 0..<(N * H) { dh0[d * N * H + k] = dH[k] }
        }
        var out: [Tensor?] = [Ops.tensor([T, N, I], dx), Ops.tensor(try c.input(1).shape, dw), Ops.tensor(try c.input(2).shape, dr)]
        out.append(bias != nil ? Ops.tensor([sh.dirs, 6 * H], db) : nil)
        out.append(nil)
        out.append(h0 != nil ? Ops.tensor([sh.dirs, N, H], dh0) : nil)
        return out
    }
}
