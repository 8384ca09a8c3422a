import DLGraph
import DLKernels
import DLTensor

/// LSTM and GRU: backpropagation through time. In training the forward pass runs here and keeps
/// what the backward pass needs (activated gates, states); a backward pass without it recomputes
/// them from the recorded inputs. Default activations, layout 0, forward/reverse/bidirectional;
/// clipping, peepholes, input_forget, custom activations and shorter sequence_lens are refused with
/// a message (and their forward pass runs in the runtime).
///
/// Every product is a GEMM: the input projections of all steps at once, the recurrent product
/// per step, and the weight and input gradients from the gate gradients of all steps at once.
extension Rules {
    static let recurrent: [(String, GradientRule)] = [("LSTM", lstm), ("GRU", gru)]

    struct RNNShape {
        var seq: Int, batch: Int, input: Int, hidden: Int, dirs: Int, reverseOnly: Bool

        func reversed(_ d: Int) -> Bool { reverseOnly || d == 1 }
        /// The time index processed at `step` by direction `d`.
        func time(_ step: Int, _ d: Int) -> Int { reversed(d) ? seq - 1 - step : step }
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
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw c.fail("direction '\(direction)' is not forward, reverse or bidirectional") }
        let dirs = direction == "bidirectional" ? 2 : 1
        guard x.rank == 3, w.rank == 3, r.rank == 3, w.shape[0] == dirs, r.shape[0] == dirs, x.shape[2] == w.shape[2] else {
            throw c.fail("X, W, R shapes do not fit")
        }
        let hidden = r.shape[2]
        guard w.shape[1] == gates * hidden, r.shape[1] == gates * hidden else { throw c.fail("W/R do not hold \(gates) gates of \(hidden)") }
        let (seq, batch) = (x.shape[0], x.shape[1])
        let optional: [(Int, [Int])] = [(3, [dirs, 2 * gates * hidden]), (5, [dirs, batch, hidden]), (6, [dirs, batch, hidden])]
        for (i, shape) in optional where i < c.inputs.count {
            if let t = c.inputs[i], t.shape != shape { throw c.fail("input \(i) has shape \(t.shape), expected \(shape)") }
        }
        return RNNShape(seq: seq, batch: batch, input: x.shape[2], hidden: hidden, dirs: dirs, reverseOnly: direction == "reverse")
    }

    /// A float32 buffer the recurrent rules index without bounds checks (sizes come from
    /// `rnnShape`, which checked every input against them), in a tensor storage: a rule's inputs
    /// are read where they lie and its results handed over as tensors, never copied (an LSTM step
    /// of 20 × 64 × 128 copied about 3 MB in and out on one thread while the other waited).
    final class FloatBuffer {
        let p: UnsafeMutablePointer<Float>
        let count: Int
        private let storage: TensorStorage

        /// Zeros, or (`zeroed: false`) uninitialised memory for a buffer written whole before it is read.
        init(_ count: Int, zeroed: Bool = true) {
            self.count = count
            storage = zeroed ? TensorStorage(zeroedByteCount: count * 4) : TensorStorage(uninitializedByteCount: count * 4)
            p = storage.start.assumingMemoryBound(to: Float.self)
        }

        /// The values of `t` (as float32) where they lie: read only, never written through `p`.
        init(_ t: Tensor) {
            let f = Ops.float32(t)
            storage = f.sharedStorage
            count = f.elementCount
            p = storage.start.assumingMemoryBound(to: Float.self)
        }

        /// A float32 tensor of this buffer's values, sharing them (`shape` holds `count` elements):
        /// the buffer is not written after this.
        func tensor(_ shape: [Int]) -> Tensor {
            Tensor(dtype: .float32, shape: shape, sharing: storage)
        }
    }

    /// The node's inputs as buffers; nil for absent optional ones.
    struct RNNInputs {
        let x: FloatBuffer, w: FloatBuffer, r: FloatBuffer, bias: FloatBuffer?, h0: FloatBuffer?, c0: FloatBuffer?

        init(_ c: RuleContext) throws(AutogradError) {
            func optional(_ i: Int) -> FloatBuffer? { i < c.inputs.count ? c.inputs[i].map(FloatBuffer.init) : nil }
            x = FloatBuffer(try c.input(0)); w = FloatBuffer(try c.input(1)); r = FloatBuffer(try c.input(2))
            bias = optional(3); h0 = optional(5); c0 = optional(6)
        }

        /// X's time steps in direction `d`'s processing order (X itself when that is time order).
        func orderedX(_ sh: RNNShape, _ d: Int) -> FloatBuffer {
            guard sh.reversed(d) else { return x }
            let rows = sh.batch * sh.input, out = FloatBuffer(x.count, zeroed: false)
            for step in 0..<sh.seq { (out.p + step * rows).update(from: x.p + sh.time(step, d) * rows, count: rows) }
            return out
        }
    }

    /// `c (+)= op(a) · op(b)`, row-major (`m × n` result, inner size `k`), through OpenBLAS; row
    /// strides default to the stored row lengths.
    static func sgemm(_ a: UnsafePointer<Float>, transA: Bool, _ b: UnsafePointer<Float>, transB: Bool, m: Int, n: Int, k: Int,
                     lda: Int? = nil, ldb: Int? = nil, into c: UnsafeMutablePointer<Float>, ldc: Int? = nil, accumulate: Bool) {
        GEMM.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda ?? (transA ? m : k),
                   b: b, ldb: ldb ?? (transB ? k : n), beta: accumulate ? 1 : 0, c: c, ldc: ldc ?? n)
    }

    /// How many parts a recurrence of `batch` rows splits into (one per worker, each a share of
    /// the rows for the whole sequence): 1 on one worker or for too little work (`work`, the
    /// recurrent products' multiply-adds) to pay for the hand-over.
    static func recurrenceParts(batch: Int, work: Int) -> Int {
        work >= 1 << 20 ? max(1, min(ParallelFor.workerCount, batch / 4)) : 1
    }

    /// `c (+)= a · op(R)` for `rows` rows of a (row stride k): on `packed` (R packed as the product's
    /// B) when there is one, else through OpenBLAS on R (`transposed`: R holds op(R)ᵀ, n × k).
    /// One part of a recurrence split by rows: the caller splits, this never does.
    static func recurrentProduct(_ a: UnsafePointer<Float>, rows: Int, packed: PackedMatrix?, _ r: UnsafePointer<Float>, transposed: Bool,
                                 n: Int, k: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard rows > 0 else { return }
        if let packed, PackedGEMM.multiply(m: rows, a: a, lda: k, transA: false, b: packed, columns: 0..<n, c: c, ldc: n,
                                           epilogue: GEMMEpilogue(accumulate: accumulate)) {
            return
        }
        sgemm(a, transA: false, r, transB: transposed, m: rows, n: n, k: k, into: c, accumulate: accumulate)
    }

    /// `σ(x) = (1 + tanh(x / 2)) / 2` over `count` values in place: Elementwise's tanh has an
    /// AVX-512 kernel, its sigmoid runs four lanes wide (8% of an LSTM step in perf, against 2% for
    /// as many tanh). The two differ by float rounding only.
    static func sigmoidInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { p[i] *= 0.5 }
        Elementwise.tanh(p, p, count: count)
        for i in 0..<count { p[i] = p[i] * 0.5 + 0.5 }
    }

    /// Each of `rows` rows of `out` (stride `stride`) starts with `count` values of `a` (plus `b`);
    /// the rows split over the workers.
    static func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, stride: Int, _ a: UnsafePointer<Float>, plus b: UnsafePointer<Float>?, count: Int) {
        ParallelFor.run(rows, cost: count) { lo, hi in
            for row in lo..<hi {
                let o = out + row * stride
                if let b { for j in 0..<count { o[j] = a[j] + b[j] } } else { o.update(from: a, count: count) }
            }
        }
    }

    /// Column sums of a `rows × count` block (row stride `stride`) added to `out`, row after row
    /// for each column; the columns split over the workers (the same bits).
    static func addColumnSums(_ a: UnsafePointer<Float>, rows: Int, stride: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        ParallelFor.runInVectors(count, cost: rows) { columns in
            for row in 0..<rows {
                let r = a + row * stride
                for j in columns { out[j] += r[j] }
            }
        }
    }

    /// `dH += ` the sequence output's gradient at processing step `step` of direction `d`, for
    /// the batch rows `rows` (all by default).
    static func addOutputGradient(_ gY: FloatBuffer?, step: Int, _ sh: RNNShape, _ d: Int, rows: Range<Int>? = nil,
                                  into dH: UnsafeMutablePointer<Float>) {
        guard let gY else { return }
        let nh = sh.batch * sh.hidden, row = gY.p + (sh.time(step, d) * sh.dirs + d) * nh
        for i in (rows.map { ($0.lowerBound * sh.hidden)..<($0.upperBound * sh.hidden) } ?? 0..<nh) { dH[i] += row[i] }
    }

    /// `dX += dpre · W` for direction `d`, with dpre's rows in processing order.
    static func addInputGradient(_ dpre: FloatBuffer, _ w: UnsafePointer<Float>, gates: Int, _ sh: RNNShape, _ d: Int, into dx: FloatBuffer) {
        let rows = sh.seq * sh.batch, size = sh.batch * sh.input
        guard sh.reversed(d) else {
            sgemm(dpre.p, transA: false, w, transB: false, m: rows, n: sh.input, k: gates, into: dx.p, accumulate: true)
            return
        }
        let dxs = FloatBuffer(rows * sh.input, zeroed: false)
        sgemm(dpre.p, transA: false, w, transB: false, m: rows, n: sh.input, k: gates, into: dxs.p, accumulate: false)
        for step in 0..<sh.seq {
            let to = dx.p + sh.time(step, d) * size, from = dxs.p + step * size
            for q in 0..<size { to[q] += from[q] }
        }
    }

    /// `dW += dpreᵀ · X` and `dR += dpreᵀ · H` (H: the states before each step, rows in processing
    /// order like X's) as one product over the rows `[x | h]`: the gate gradients, the largest
    /// operand (`T·N × gates`), are packed once instead of once per product (an LSTM of 20 steps,
    /// batch 64, hidden 128: 1.59 -> 1.35 ms for the two on two threads).
    static func weightGradients(_ dpre: FloatBuffer, _ x: UnsafePointer<Float>, _ h: UnsafePointer<Float>, gates: Int, _ sh: RNNShape,
                                into dw: UnsafeMutablePointer<Float>, _ dr: UnsafeMutablePointer<Float>) {
        let (I, H) = (sh.input, sh.hidden), rows = sh.seq * sh.batch, n = I + H
        let xh = FloatBuffer(rows * n, zeroed: false), product = FloatBuffer(gates * n, zeroed: false)
        ParallelFor.run(rows, cost: n) { lo, hi in
            for row in lo..<hi {
                (xh.p + row * n).update(from: x + row * I, count: I)
                (xh.p + row * n + I).update(from: h + row * H, count: H)
            }
        }
        sgemm(dpre.p, transA: true, xh.p, transB: false, m: gates, n: n, k: rows, into: product.p, accumulate: false)
        for g in 0..<gates {
            let from = product.p + g * n, w = dw + g * I, r = dr + g * H
            for j in 0..<I { w[j] += from[j] }
            for j in 0..<H { r[j] += from[I + j] }
        }
    }

    /// The node in the form `rnnShape` accepts, with float32 X: its forward pass runs here.
    static func trainingContext(_ node: Node, _ inputs: [Tensor?], gates: Int) -> (RuleContext, RNNShape)? {
        let c = RuleContext(node: node, inputs: inputs, outputs: [], outputGrads: [], needs: [], saved: [], kept: nil, training: true, opset: nil)
        guard let x = inputs.first ?? nil, x.dtype == .float32, let sh = try? rnnShape(c, gates: gates) else { return nil }
        return (c, sh)
    }

    /// Y (`[T, dirs, N, H]`) from the states of every direction (rows 1...T in processing order).
    static func sequenceOutput(_ hs: [FloatBuffer], _ sh: RNNShape) -> Tensor {
        let nh = sh.batch * sh.hidden, y = FloatBuffer(sh.seq * sh.dirs * nh, zeroed: false)
        for d in 0..<sh.dirs {
            for step in 0..<sh.seq { (y.p + (sh.time(step, d) * sh.dirs + d) * nh).update(from: hs[d].p + (step + 1) * nh, count: nh) }
        }
        return y.tensor([sh.seq, sh.dirs, sh.batch, sh.hidden])
    }

    /// Rows `row` of every direction's buffer, as `[dirs, N, H]` (the final states).
    static func lastStates(_ s: [FloatBuffer], row: Int, _ sh: RNNShape) -> Tensor {
        let nh = sh.batch * sh.hidden, out = FloatBuffer(sh.dirs * nh, zeroed: false)
        for d in 0..<sh.dirs { (out.p + d * nh).update(from: s[d].p + row * nh, count: nh) }
        return out.tensor([sh.dirs, sh.batch, sh.hidden])
    }

    /// The gradient of output `i` (Y `[T, dirs, N, H]`, else `[dirs, N, H]`), nil when nothing used it.
    static func outputGradient(_ c: RuleContext, _ i: Int, _ sh: RNNShape) throws(AutogradError) -> FloatBuffer? {
        guard i < c.outputGrads.count, let g = c.outputGrads[i] else { return nil }
        let shape = (i == 0 ? [sh.seq] : []) + [sh.dirs, sh.batch, sh.hidden]
        guard g.elementCount == shape.reduce(1, *) else { throw c.fail("the gradient of output \(i) has shape \(g.shape), expected \(shape)") }
        return FloatBuffer(g)
    }
}

// MARK: - LSTM

extension Rules {
    /// One direction's forward pass, rows in processing order: the activated gates (i, o, f, c~)
    /// of every step, the states before every step and after the last (`T + 1` rows of `N × H`),
    /// and tanh of every new cell state.
    /// Written once by `init`, only read afterwards (by the rule, from the tape).
    final class LSTMTrace: @unchecked Sendable {
        let gates: FloatBuffer, hs: FloatBuffer, cs: FloatBuffer, tanhC: FloatBuffer

        init(_ v: RNNInputs, _ xs: FloatBuffer, _ sh: RNNShape, _ d: Int) {
            let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
            let G = 4 * H, nh = N * H
            // The gates are written whole by the bias rows or by the GEMM (which then does not read them).
            gates = FloatBuffer(T * N * G, zeroed: false); tanhC = FloatBuffer(T * nh, zeroed: false)
            // Rows after the first are written by the steps.
            hs = FloatBuffer((T + 1) * nh, zeroed: false); cs = FloatBuffer((T + 1) * nh, zeroed: false)
            if let b = v.bias { fillRows(gates.p, rows: T * N, stride: G, b.p + d * 2 * G, plus: b.p + d * 2 * G + G, count: G) }
            sgemm(xs.p, transA: false, v.w.p + d * G * I, transB: true, m: T * N, n: G, k: I, into: gates.p, accumulate: v.bias != nil)
            if let h0 = v.h0 { hs.p.update(from: h0.p + d * nh, count: nh) } else { hs.p.initialize(repeating: 0, count: nh) }
            if let c0 = v.c0 { cs.p.update(from: c0.p + d * nh, count: nh) } else { cs.p.initialize(repeating: 0, count: nh) }
            // Each batch row's recurrence is its own (its gates read only its state): the rows
            // split over the workers once for the whole sequence, each part running every step
            // on its rows, with R packed once for the recurrent products.
            let r = v.r.p + d * G * H
            let packedR = PackedMatrix.panels(r, k: H, n: G, ldb: H, transposed: true)
            let parts = Rules.recurrenceParts(batch: N, work: T * N * G * H)
            ParallelFor.split(parts, parts: parts) { lo, hi in
                for part in lo..<hi {
                    let b0 = part * N / parts, rows = (part + 1) * N / parts - b0
                    for step in 0..<T {
                        let g = gates.p + (step * N + b0) * G, cPrev = cs.p + step * nh + b0 * H, cNew = cPrev + nh
                        let hNew = hs.p + (step + 1) * nh + b0 * H, tc = tanhC.p + step * nh + b0 * H
                        Rules.recurrentProduct(hs.p + step * nh + b0 * H, rows: rows, packed: packedR, r, transposed: true, n: G, k: H,
                                               into: g, accumulate: true)
                        for b in 0..<rows {
                            let gb = g + b * G, cp = cPrev + b * H, cn = cNew + b * H
                            sigmoidInPlace(gb, count: 3 * H)
                            Elementwise.tanh(gb + 3 * H, gb + 3 * H, count: H)
                            var k = 0
                            while k + 8 <= H {
                                (SIMD8.load(gb + 2 * H + k) * SIMD8.load(cp + k) + SIMD8.load(gb + k) * SIMD8.load(gb + 3 * H + k)).store(cn + k)
                                k += 8
                            }
                            while k < H {
                                cn[k] = gb[2 * H + k] * cp[k] + gb[k] * gb[3 * H + k]
                                k += 1
                            }
                        }
                        Elementwise.tanh(cNew, tc, count: rows * H)
                        for b in 0..<rows {
                            let o = g + b * G + H, t = tc + b * H, h = hNew + b * H
                            var k = 0
                            while k + 8 <= H {
                                (SIMD8.load(o + k) * SIMD8.load(t + k)).store(h + k)
                                k += 8
                            }
                            while k < H {
                                h[k] = o[k] * t[k]
                                k += 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// LSTM in training: outputs Y, Y_h, Y_c and the traces of every direction.
    static let lstmForward: TrainingForward = { node, inputs, _ throws(AutogradError) in
        guard let context = trainingContext(node, inputs, gates: 4) else { return nil }
        let (c, sh) = context
        let v = try RNNInputs(c)
        let traces = (0..<sh.dirs).map { LSTMTrace(v, v.orderedX(sh, $0), sh, $0) }
        return TrainingForwardResult(outputs: [sequenceOutput(traces.map(\.hs), sh), lastStates(traces.map(\.hs), row: sh.seq, sh),
                                               lastStates(traces.map(\.cs), row: sh.seq, sh)],
                                     kept: traces)
    }

    static let lstm: GradientRule = { c throws(AutogradError) in
        let sh = try rnnShape(c, gates: 4)
        let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
        let G = 4 * H, nh = N * H
        let v = try RNNInputs(c)
        let gY = try outputGradient(c, 0, sh), gYh = try outputGradient(c, 1, sh), gYc = try outputGradient(c, 2, sh)
        let dx = FloatBuffer(c.need(0) ? v.x.count : 0), dw = FloatBuffer(v.w.count), dr = FloatBuffer(v.r.count)
        let db = FloatBuffer(sh.dirs * 8 * H), dh0 = FloatBuffer(sh.dirs * nh), dc0 = FloatBuffer(sh.dirs * nh)
        let kept = (c.kept as? [LSTMTrace]).flatMap { $0.count == sh.dirs ? $0 : nil }
        for d in 0..<sh.dirs {
            let xs = v.orderedX(sh, d)
            let tr = kept?[d] ?? LSTMTrace(v, xs, sh, d)
            let wOff = d * G * I, rOff = d * G * H
            // Backward through time: the gate gradients (before activation) of every step.
            let dpre = FloatBuffer(T * N * G, zeroed: false), dH = FloatBuffer(nh), dC = FloatBuffer(nh)
            if let gYh { dH.p.update(from: gYh.p + d * nh, count: nh) }
            if let gYc { dC.p.update(from: gYc.p + d * nh, count: nh) }
            let dHp = dH.p, dCp = dC.p
            // As the forward pass: the batch rows split once, each part running every step back
            // on its rows (dH of a row reads only that row's gate gradients).
            let packedR = PackedMatrix.panels(v.r.p + rOff, k: G, n: H, ldb: H, transposed: false)
            let parts = Rules.recurrenceParts(batch: N, work: T * N * G * H)
            ParallelFor.split(parts, parts: parts) { lo, hi in
                for part in lo..<hi {
                    let b0 = part * N / parts, rows = (part + 1) * N / parts - b0
                    for step in stride(from: T - 1, through: 0, by: -1) {
                        let g = tr.gates.p + (step * N + b0) * G, dp = dpre.p + (step * N + b0) * G
                        let cPrev = tr.cs.p + step * nh + b0 * H, tc = tr.tanhC.p + step * nh + b0 * H
                        addOutputGradient(gY, step: step, sh, d, rows: b0..<(b0 + rows), into: dHp)
                        for b in 0..<rows {
                            let gb = g + b * G, pb = dp + b * G, dhb = dHp + (b0 + b) * H, dcb = dCp + (b0 + b) * H
                            let cpb = cPrev + b * H, tcb = tc + b * H
                            // Eight lanes at a time (the compiler left the scalar loop scalar: its
                            // pointers may alias), the same operations in the same order per element.
                            var k = 0
                            while k + 8 <= H {
                                let dh = SIMD8.load(dhb + k)
                                let i = SIMD8.load(gb + k), o = SIMD8.load(gb + H + k), f = SIMD8.load(gb + 2 * H + k), cc = SIMD8.load(gb + 3 * H + k)
                                let t = SIMD8.load(tcb + k)
                                let dc = SIMD8.load(dcb + k) + dh * o * (1 - t * t)
                                (dc * cc * i * (1 - i)).store(pb + k)
                                (dh * t * o * (1 - o)).store(pb + H + k)
                                (dc * SIMD8.load(cpb + k) * f * (1 - f)).store(pb + 2 * H + k)
                                (dc * i * (1 - cc * cc)).store(pb + 3 * H + k)
                                (dc * f).store(dcb + k)
                                k += 8
                            }
                            while k < H {
                                let dh = dhb[k]
                                let i = gb[k], o = gb[H + k], f = gb[2 * H + k], cc = gb[3 * H + k], t = tcb[k]
                                let dc = dcb[k] + dh * o * (1 - t * t)
                                pb[k] = dc * cc * i * (1 - i)
                                pb[H + k] = dh * t * o * (1 - o)
                                pb[2 * H + k] = dc * cpb[k] * f * (1 - f)
                                pb[3 * H + k] = dc * i * (1 - cc * cc)
                                dcb[k] = dc * f
                                k += 1
                            }
                        }
                        // dH of the step before: dpre · R.
                        Rules.recurrentProduct(dp, rows: rows, packed: packedR, v.r.p + rOff, transposed: false, n: H, k: G,
                                               into: dHp + b0 * H, accumulate: false)
                    }
                }
            }
            // dW += dpreᵀ · X, dR += dpreᵀ · H_before, dX += dpre · W, both biases get dpre's
            // column sums; each only when asked for (X from the data needs none).
            if c.need(1), c.need(2) {
                weightGradients(dpre, xs.p, tr.hs.p, gates: G, sh, into: dw.p + wOff, dr.p + rOff)
            } else {
                if c.need(1) { sgemm(dpre.p, transA: true, xs.p, transB: false, m: G, n: I, k: T * N, into: dw.p + wOff, accumulate: true) }
                if c.need(2) { sgemm(dpre.p, transA: true, tr.hs.p, transB: false, m: G, n: H, k: T * N, into: dr.p + rOff, accumulate: true) }
            }
            if c.need(0) { addInputGradient(dpre, v.w.p + wOff, gates: G, sh, d, into: dx) }
            if c.need(3) {
                addColumnSums(dpre.p, rows: T * N, stride: G, count: G, into: db.p + d * 2 * G)
                (db.p + d * 2 * G + G).update(from: db.p + d * 2 * G, count: G)
            }
            (dh0.p + d * nh).update(from: dH.p, count: nh)
            (dc0.p + d * nh).update(from: dC.p, count: nh)
        }
        return [c.need(0) ? dx.tensor([T, N, I]) : nil, c.need(1) ? dw.tensor(try c.input(1).shape) : nil,
                c.need(2) ? dr.tensor(try c.input(2).shape) : nil, c.need(3) ? db.tensor([sh.dirs, 8 * H]) : nil, nil,
                c.need(5) ? dh0.tensor([sh.dirs, N, H]) : nil, c.need(6) ? dc0.tensor([sh.dirs, N, H]) : nil]
    }
}

// MARK: - GRU

extension Rules {
    /// One direction's forward pass, rows in processing order: the activated gates (z, r, h~) of
    /// every step, the states before every step and after the last (`T + 1` rows of `N × H`),
    /// and the candidate's recurrent term: `u = H·Rhᵀ + Rbh` with linear_before_reset, else
    /// `a = r ⊙ H` (the row that multiplies Rh).
    /// Written once by `init`, only read afterwards (by the rule, from the tape).
    final class GRUTrace: @unchecked Sendable {
        let gates: FloatBuffer, hs: FloatBuffer, aux: FloatBuffer

        init(_ v: RNNInputs, _ xs: FloatBuffer, _ sh: RNNShape, _ d: Int, linearBeforeReset lbr: Bool) {
            let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
            let G = 3 * H, nh = N * H
            // The gates are written whole by the bias rows or by the GEMM (which then does not read them).
            gates = FloatBuffer(T * N * G, zeroed: false); hs = FloatBuffer((T + 1) * nh); aux = FloatBuffer(T * nh, zeroed: false)
            let r = v.r.p + d * G * H
            let wb = v.bias.map { UnsafePointer($0.p + d * 2 * G) }, rb = wb.map { $0 + G }
            // Wb, and Rb unless the recurrent product carries it (Rbh sits inside r ⊙ (…) with
            // linear_before_reset, so there all of Rb goes with H·Rᵀ).
            if let wb, let rb { fillRows(gates.p, rows: T * N, stride: G, wb, plus: lbr ? nil : rb, count: G) }
            sgemm(xs.p, transA: false, v.w.p + d * G * I, transB: true, m: T * N, n: G, k: I, into: gates.p, accumulate: wb != nil)
            if let h0 = v.h0 { hs.p.update(from: h0.p + d * nh, count: nh) }
            let recWidth = lbr ? G : 2 * H, rec = FloatBuffer(N * recWidth, zeroed: false)
            for step in 0..<T {
                let g = gates.p + step * N * G, hPrev = hs.p + step * nh, hNew = hPrev + nh, ax = aux.p + step * nh
                if lbr, let rb { fillRows(rec.p, rows: N, stride: G, rb, plus: nil, count: G) }
                sgemm(hPrev, transA: false, r, transB: true, m: N, n: recWidth, k: H, into: rec.p, accumulate: lbr && rb != nil)
                for b in 0..<N {
                    let gb = g + b * G, rc = rec.p + b * recWidth, hp = hPrev + b * H, a = ax + b * H
                    for j in 0..<(2 * H) { gb[j] += rc[j] }
                    sigmoidInPlace(gb, count: 2 * H)
                    if lbr {
                        for k in 0..<H { a[k] = rc[2 * H + k]; gb[2 * H + k] += gb[H + k] * a[k] }
                    } else {
                        for k in 0..<H { a[k] = gb[H + k] * hp[k] }
                    }
                }
                if !lbr { sgemm(ax, transA: false, r + 2 * H * H, transB: true, m: N, n: H, k: H, into: g + 2 * H, ldc: G, accumulate: true) }
                for b in 0..<N {
                    let gb = g + b * G, hp = hPrev + b * H, hn = hNew + b * H
                    Elementwise.tanh(gb + 2 * H, gb + 2 * H, count: H)
                    for k in 0..<H { hn[k] = (1 - gb[k]) * gb[2 * H + k] + gb[k] * hp[k] }
                }
            }
        }
    }

    /// GRU in training: outputs Y, Y_h and the traces of every direction.
    static let gruForward: TrainingForward = { node, inputs, _ throws(AutogradError) in
        guard let context = trainingContext(node, inputs, gates: 3) else { return nil }
        let (c, sh) = context
        let lbr = try c.int("linear_before_reset", 0) != 0
        let v = try RNNInputs(c)
        let traces = (0..<sh.dirs).map { GRUTrace(v, v.orderedX(sh, $0), sh, $0, linearBeforeReset: lbr) }
        return TrainingForwardResult(outputs: [sequenceOutput(traces.map(\.hs), sh), lastStates(traces.map(\.hs), row: sh.seq, sh)],
                                     kept: traces)
    }

    static let gru: GradientRule = { c throws(AutogradError) in
        let sh = try rnnShape(c, gates: 3)
        let (T, N, I, H) = (sh.seq, sh.batch, sh.input, sh.hidden)
        let G = 3 * H, nh = N * H
        let lbr = try c.int("linear_before_reset", 0) != 0
        let v = try RNNInputs(c)
        let gY = try outputGradient(c, 0, sh), gYh = try outputGradient(c, 1, sh)
        let dx = FloatBuffer(c.need(0) ? v.x.count : 0), dw = FloatBuffer(v.w.count), dr = FloatBuffer(v.r.count)
        let db = FloatBuffer(sh.dirs * 2 * G), dh0 = FloatBuffer(sh.dirs * nh)
        let kept = (c.kept as? [GRUTrace]).flatMap { $0.count == sh.dirs ? $0 : nil }
        for d in 0..<sh.dirs {
            let xs = v.orderedX(sh, d)
            let tr = kept?[d] ?? GRUTrace(v, xs, sh, d, linearBeforeReset: lbr)
            let wOff = d * G * I, rOff = d * G * H, r = v.r.p + rOff
            // dpre: the gradients of the gates' pre-activations (what W and Wb see). dRec: what R
            // and Rb see, the same but for the candidate with linear_before_reset (du = dh~ ⊙ r).
            let dpre = FloatBuffer(T * N * G, zeroed: false), dRec = lbr ? FloatBuffer(T * N * G, zeroed: false) : dpre
            var dH = FloatBuffer(nh), newDH = FloatBuffer(nh, zeroed: false)
            let da = FloatBuffer(nh, zeroed: false)
            if let gYh { dH.p.update(from: gYh.p + d * nh, count: nh) }
            for step in stride(from: T - 1, through: 0, by: -1) {
                let g = tr.gates.p + step * N * G, dp = dpre.p + step * N * G, drc = dRec.p + step * N * G
                let hPrev = tr.hs.p + step * nh, ax = tr.aux.p + step * nh
                addOutputGradient(gY, step: step, sh, d, into: dH.p)
                for b in 0..<N {
                    let gb = g + b * G, pb = dp + b * G, rcb = drc + b * G
                    let dhb = dH.p + b * H, ndb = newDH.p + b * H, hpb = hPrev + b * H, ab = ax + b * H
                    for k in 0..<H {
                        let dh = dhb[k]
                        let z = gb[k], rr = gb[H + k], ht = gb[2 * H + k]
                        let dz = dh * (hpb[k] - ht) * z * (1 - z), dht = dh * (1 - z) * (1 - ht * ht)
                        pb[k] = dz
                        pb[2 * H + k] = dht
                        ndb[k] = dh * z
                        if lbr {
                            let u = ab[k], drr = dht * u * rr * (1 - rr)
                            pb[H + k] = drr
                            rcb[k] = dz; rcb[H + k] = drr; rcb[2 * H + k] = dht * rr
                        }
                    }
                }
                if lbr {
                    sgemm(drc, transA: false, r, transB: false, m: N, n: H, k: G, into: newDH.p, accumulate: true)
                } else {
                    // a = r ⊙ H: da = dh~ · Rh, then r's gradient and H's share through a.
                    sgemm(dp + 2 * H, transA: false, r + 2 * H * H, transB: false, m: N, n: H, k: H, lda: G, into: da.p, accumulate: false)
                    for b in 0..<N {
                        let gb = g + b * G, pb = dp + b * G
                        for k in 0..<H {
                            let idx = b * H + k, rr = gb[H + k]
                            pb[H + k] = da.p[idx] * hPrev[idx] * rr * (1 - rr)
                            newDH.p[idx] += da.p[idx] * rr
                        }
                    }
                    sgemm(dp, transA: false, r, transB: false, m: N, n: H, k: 2 * H, lda: G, into: newDH.p, accumulate: true)
                }
                swap(&dH, &newDH)
            }
            if c.need(1) { sgemm(dpre.p, transA: true, xs.p, transB: false, m: G, n: I, k: T * N, into: dw.p + wOff, accumulate: true) }
            if c.need(2), lbr {
                sgemm(dRec.p, transA: true, tr.hs.p, transB: false, m: G, n: H, k: T * N, into: dr.p + rOff, accumulate: true)
            } else if c.need(2) {
                sgemm(dpre.p, transA: true, tr.hs.p, transB: false, m: 2 * H, n: H, k: T * N, lda: G, into: dr.p + rOff, accumulate: true)
                sgemm(dpre.p + 2 * H, transA: true, tr.aux.p, transB: false, m: H, n: H, k: T * N, lda: G,
                      into: dr.p + rOff + 2 * H * H, accumulate: true)
            }
            if c.need(0) { addInputGradient(dpre, v.w.p + wOff, gates: G, sh, d, into: dx) }
            if c.need(3) {
                addColumnSums(dpre.p, rows: T * N, stride: G, count: G, into: db.p + d * 2 * G)
                addColumnSums(dRec.p, rows: T * N, stride: G, count: G, into: db.p + d * 2 * G + G)
            }
            (dh0.p + d * nh).update(from: dH.p, count: nh)
        }
        return [c.need(0) ? dx.tensor([T, N, I]) : nil, c.need(1) ? dw.tensor(try c.input(1).shape) : nil,
                c.need(2) ? dr.tensor(try c.input(2).shape) : nil, c.need(3) ? db.tensor([sh.dirs, 2 * G]) : nil, nil,
                c.need(5) ? dh0.tensor([sh.dirs, N, H]) : nil]
    }
}
