#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLKernels
import DLTensor

/// Attention (opsets 23–25), RotaryEmbedding and LinearAttention, computed in Double and
/// rounded once on store.
enum AttentionKernels {
    static var all: [KernelEntry] {
        [.init("Attention", attention), .init("RotaryEmbedding", rotaryEmbedding), .init("LinearAttention", linearAttention),
         .init("FlexAttention", flexAttention)]
    }

    /// Q, K or V as [batch, heads, seq, headSize]; a 3-D [batch, seq, heads·headSize] input is
    /// split into `heads`.
    struct Heads {
        var values: [Double]
        var batch: Int, heads: Int, seq: Int, size: Int

        init(values: [Double], batch: Int, heads: Int, seq: Int, size: Int) {
            self.values = values
            self.batch = batch
            self.heads = heads
            self.seq = seq
            self.size = size
        }

        init(_ ctx: KernelContext, _ t: Tensor, heads h: Int?, label: String) throws(RuntimeError) {
            let v = t.doubles()
            if t.rank == 4 {
                self.init(values: v, batch: t.shape[0], heads: t.shape[1], seq: t.shape[2], size: t.shape[3])
                return
            }
            guard t.rank == 3 else { throw ctx.fail("\(label) must be 3-D or 4-D, got \(t.shape)") }
            guard let h, h > 0, t.shape[2] % h == 0 else {
                throw ctx.fail("\(label) of shape \(t.shape) needs a head count attribute that divides \(t.shape[2])")
            }
            let (b, s, d) = (t.shape[0], t.shape[1], t.shape[2] / h)
            var out = [Double](repeating: 0, count: v.count)
            for bi in 0..<b { for si in 0..<s { for hi in 0..<h { for di in 0..<d {
                out[((bi * h + hi) * s + si) * d + di] = v[(bi * s + si) * h * d + hi * d + di]
            } } } }
            self.init(values: out, batch: b, heads: h, seq: s, size: d)
        }

        func at(_ b: Int, _ h: Int, _ s: Int) -> Int { ((b * heads + h) * seq + s) * size }

        /// This followed by `next` along the sequence (the KV cache).
        func appending(_ next: Heads) -> Heads {
            var out = [Double]()
            out.reserveCapacity(values.count + next.values.count)
            for b in 0..<batch {
                for h in 0..<heads {
                    out += values[at(b, h, 0)..<at(b, h, 0) + seq * size]
                    out += next.values[next.at(b, h, 0)..<next.at(b, h, 0) + next.seq * size]
                }
            }
            return Heads(values: out, batch: batch, heads: heads, seq: seq + next.seq, size: size)
        }

        var shape: [Int] { [batch, heads, seq, size] }
    }

    static let attention: Kernel = { ctx throws(RuntimeError) in
        let qt = try ctx.input(0), kt = try ctx.input(1), vt = try ctx.input(2)
        guard qt.dtype.isFloatingPoint, kt.dtype.isFloatingPoint, vt.dtype.isFloatingPoint else {
            throw ctx.fail("Q, K and V must be floating-point, got \(qt.dtype), \(kt.dtype), \(vt.dtype)")
        }
        guard qt.rank == kt.rank, kt.rank == vt.rank else { throw ctx.fail("Q, K and V must have the same rank, got \(qt.shape), \(kt.shape), \(vt.shape)") }
        let qHeadsAttr = ctx.node.attribute("q_num_heads") == nil ? nil : try ctx.int("q_num_heads", 0)
        let kvHeadsAttr = ctx.node.attribute("kv_num_heads") == nil ? nil : try ctx.int("kv_num_heads", 0)
        let q = try Heads(ctx, qt, heads: qHeadsAttr, label: "Q")
        var k = try Heads(ctx, kt, heads: kvHeadsAttr, label: "K")
        var v = try Heads(ctx, vt, heads: kvHeadsAttr, label: "V")
        let pastKey = ctx.optionalInput(4), pastValue = ctx.optionalInput(5)
        guard (pastKey == nil) == (pastValue == nil) else { throw ctx.fail("past_key and past_value must be given together") }
        var pastLength: Int? = nil
        if let pastKey, let pastValue {
            let pk = try Heads(ctx, pastKey, heads: nil, label: "past_key"), pv = try Heads(ctx, pastValue, heads: nil, label: "past_value")
            guard pk.batch == k.batch, pk.heads == k.heads, pk.size == k.size, pv.batch == v.batch, pv.heads == v.heads,
                  pv.size == v.size, pk.seq == pv.seq else {
                throw ctx.fail("past_key \(pk.shape) / past_value \(pv.shape) do not match K \(k.shape) / V \(v.shape)")
            }
            pastLength = pk.seq
            k = pk.appending(k)
            v = pv.appending(v)
        }
        guard q.batch == k.batch, k.batch == v.batch, q.size == k.size, k.heads == v.heads, k.seq == v.seq,
              k.heads > 0, q.heads % k.heads == 0 else {
            throw ctx.fail("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together (batch, head sizes, heads divisible)")
        }
        let (batch, qHeads, qLen, kvLen) = (q.batch, q.heads, q.seq, k.seq)
        let groups = qHeads / k.heads
        let scaleAttr = ctx.node.attribute("scale") == nil ? nil : try ctx.float("scale", 1)
        let scale = scaleAttr.map(Double.init) ?? 1 / Double(q.size).squareRoot()
        let softcap = Double(try ctx.float("softcap", 0))
        let causal = try ctx.int("is_causal", 0) != 0
        let mode = try ctx.int("qk_matmul_output_mode", 0)
        let left = try ctx.int("left_window_size", -1), right = try ctx.int("right_window_size", -1)
        var nonpad: [Int]? = nil
        if let t = ctx.optionalInput(6) {
            guard t.dtype.isInteger, t.elementCount == batch else { throw ctx.fail("nonpad_kv_seqlen must hold \(batch) integers, got \(t.dtype) \(t.shape)") }
            guard pastLength == nil else { throw ctx.fail("nonpad_kv_seqlen cannot be combined with past_key/past_value") }
            nonpad = t.int64s().map { Int($0) }
        }
        // Additive bias [batch, qHeads, qLen, kvLen]: the mask (padded with -inf on the right),
        // causal and window frontiers (offset by the cache), and key padding.
        let biasShape = [batch, qHeads, qLen, kvLen]
        var bias = [Double](repeating: 0, count: biasShape.reduce(1, *))
        if let m = ctx.optionalInput(3) {
            guard m.rank >= 1, m.rank <= 4, m.shape.last ?? 0 <= kvLen else { throw ctx.fail("attn_mask of shape \(m.shape) does not fit [.., \(qLen), \(kvLen)]") }
            let raw: [Double] = m.dtype == .bool ? m.bools().map { $0 ? 0 : -.infinity } : m.doubles()
            let last = m.shape[m.rank - 1], rows = m.elementCount / max(last, 1)
            var padded = [Double](repeating: -.infinity, count: rows * kvLen)
            for r in 0..<rows { for j in 0..<last { padded[r * kvLen + j] = raw[r * last + j] } }
            var paddedShape = m.shape
            paddedShape[m.rank - 1] = kvLen
            guard let plan = try? BroadcastPlan(outShape: biasShape, operands: [paddedShape]) else {
                throw ctx.fail("attn_mask of shape \(m.shape) does not broadcast to \(biasShape)")
            }
            for (i, s) in plan.offsets(of: 0).enumerated() { bias[i] = padded[s] }
        }
        func offset(_ b: Int) -> Int {
            if let nonpad { return nonpad[b] - qLen }
            return pastLength ?? 0
        }
        if causal || left >= 0 || right >= 0 || nonpad != nil {
            for b in 0..<batch {
                let off = offset(b)
                for h in 0..<qHeads { for i in 0..<qLen { for j in 0..<kvLen {
                    let diff = i + off - j
                    var allowed = true
                    if causal && diff < 0 { allowed = false }
                    if left >= 0 && diff > left { allowed = false }
                    if right >= 0 && -diff > right { allowed = false }
                    if let nonpad, j >= nonpad[b] { allowed = false }
                    if !allowed { bias[((b * qHeads + h) * qLen + i) * kvLen + j] = -.infinity }
                } } }
            }
        }
        // bfloat16 results follow the reference's rounding after each step (its 8-bit mantissa
        // makes the order of rounding visible); other types compute in Double throughout.
        let r: (Double) -> Double = qt.dtype == .bfloat16 ? { Double(BFloat16(Float($0)).floatValue) } : { $0 }
        let rootScale = r(scale.squareRoot())
        let qs = q.values.map { r($0 * rootScale) }, ks = k.values.map { r($0 * rootScale) }
        var qkOut = [Double](repeating: 0, count: bias.count)
        var y = [Double](repeating: 0, count: batch * qHeads * qLen * v.size)
        var scores = [Double](repeating: 0, count: kvLen)
        for b in 0..<batch {
            for h in 0..<qHeads {
                let kh = h / groups
                for i in 0..<qLen {
                    let qo = q.at(b, h, i), row = ((b * qHeads + h) * qLen + i) * kvLen
                    var biasMax = -Double.infinity
                    for j in 0..<kvLen {
                        let ko = k.at(b, kh, j)
                        var s = 0.0
                        for d in 0..<q.size { s += qs[qo + d] * ks[ko + d] }
                        s = r(s)
                        if softcap > 0 { s = r(r(tanh(r(s / softcap))) * softcap) }
                        scores[j] = r(s + bias[row + j])
                        qkOut[row + j] = mode == 2 ? scores[j] : s
                        biasMax = max(biasMax, bias[row + j])
                    }
                    let m = scores.max() ?? -.infinity
                    if biasMax == -.infinity || m == -.infinity || kvLen == 0 {
                        for j in 0..<kvLen { scores[j] = 0 }
                    } else {
                        var sum = 0.0
                        for j in 0..<kvLen { scores[j] = r(exp(r(scores[j] - m))); sum = r(sum + scores[j]) }
                        for j in 0..<kvLen { scores[j] = r(scores[j] / sum) }
                    }
                    if mode == 3 { for j in 0..<kvLen { qkOut[row + j] = scores[j] } }
                    let yo = ((b * qHeads + h) * qLen + i) * v.size
                    for j in 0..<kvLen where scores[j] != 0 {
                        let vo = v.at(b, kh, j)
                        for d in 0..<v.size { y[yo + d] += scores[j] * v.values[vo + d] }
                    }
                }
            }
        }
        var yShape = [batch, qHeads, qLen, v.size]
        if qt.rank == 3 {
            var t = [Double](repeating: 0, count: y.count)
            for b in 0..<batch { for h in 0..<qHeads { for i in 0..<qLen { for d in 0..<v.size {
                t[((b * qLen + i) * qHeads + h) * v.size + d] = y[((b * qHeads + h) * qLen + i) * v.size + d]
            } } } }
            y = t
            yShape = [batch, qLen, qHeads * v.size]
        }
        return [Tensor.fromDoubles(y, dtype: qt.dtype, shape: yShape),
                Tensor.fromDoubles(k.values, dtype: kt.dtype, shape: k.shape),
                Tensor.fromDoubles(v.values, dtype: vt.dtype, shape: v.shape),
                Tensor.fromDoubles(qkOut, dtype: qt.dtype, shape: biasShape)]
    }

    /// Rotates the first `rotary_embedding_dim` values of each head by the cached angles: halves
    /// (x1, x2) or interleaved pairs become (x1·cos - x2·sin, x1·sin + x2·cos).
    static let rotaryEmbedding: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), cosT = try ctx.input(1), sinT = try ctx.input(2)
        guard x.dtype.isFloatingPoint else { throw ctx.fail("X must be floating-point, got \(x.dtype)") }
        let interleaved = try ctx.int("interleaved", 0) != 0
        let (b, h, s, d): (Int, Int, Int, Int)
        if x.rank == 4 {
            (b, h, s, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        } else if x.rank == 3 {
            let heads = try ctx.int("num_heads", 0)
            guard heads > 0, x.shape[2] % heads == 0 else { throw ctx.fail("3-D X \(x.shape) needs num_heads dividing \(x.shape[2])") }
            (b, h, s, d) = (x.shape[0], heads, x.shape[1], x.shape[2] / heads)
        } else { throw ctx.fail("X must be 3-D or 4-D, got \(x.shape)") }
        var rot = try ctx.int("rotary_embedding_dim", 0)
        if rot == 0 { rot = d }
        guard rot > 0, rot <= d, rot % 2 == 0 else { throw ctx.fail("rotary_embedding_dim \(rot) must be even and at most the head size \(d)") }
        let half = rot / 2
        guard cosT.shape == sinT.shape, cosT.shape.last == half else {
            throw ctx.fail("cos_cache \(cosT.shape) and sin_cache \(sinT.shape) must match and end in \(half)")
        }
        let cv = cosT.doubles(), sv = sinT.doubles()
        let rows = cosT.elementCount / half
        var positions: [Int]? = nil
        if let p = ctx.optionalInput(3) {
            guard p.dtype.isInteger, p.elementCount == b * s || p.elementCount == s else { throw ctx.fail("position_ids must be [batch, seq] integers, got \(p.shape)") }
            positions = p.int64s().map { Int($0) }
        }
        /// The cache row for (batch, position).
        func row(_ bi: Int, _ si: Int) throws(RuntimeError) -> Int {
            let r: Int
            if let positions { r = positions.count == s ? positions[si] : positions[bi * s + si] }
            else if cosT.rank == 3 { r = bi * s + si } else { r = si }
            guard r >= 0, r < rows else { throw ctx.fail("position \(r) is outside the \(rows) cached rows") }
            return r
        }
        var v = x.doubles()
        for bi in 0..<b { for si in 0..<s {
            let cr = try row(bi, si) * half
            for hi in 0..<h {
                let base = x.rank == 4 ? ((bi * h + hi) * s + si) * d : (bi * s + si) * h * d + hi * d
                for k in 0..<half {
                    let i1 = interleaved ? base + 2 * k : base + k, i2 = interleaved ? base + 2 * k + 1 : base + k + half
                    let x1 = v[i1], x2 = v[i2], c = cv[cr + k], sn = sv[cr + k]
                    v[i1] = c * x1 - sn * x2
                    v[i2] = sn * x1 + c * x2
                }
            }
        } }
        return [Tensor.fromDoubles(v, dtype: x.dtype, shape: x.shape)]
    }

    /// Recurrent linear attention over [batch, time, heads·size] inputs with a state
    /// S [batch, kvHeads, dk, dv] per step: optional gating S ← S·exp(decay), optional delta
    /// correction v ← beta·(v - Sᵀk), then S ← S + k vᵀ and output scale · Sᵀq (GQA shares S).
    static let linearAttention: Kernel = { ctx throws(RuntimeError) in
        let qt = try ctx.input(0), kt = try ctx.input(1), vt = try ctx.input(2)
        guard qt.dtype.isFloatingPoint, kt.dtype.isFloatingPoint, vt.dtype.isFloatingPoint else {
            throw ctx.fail("query, key and value must be floating-point")
        }
        let rule = try ctx.string("update_rule", "gated_delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else { throw ctx.fail("update_rule '\(rule)' is not one of linear, gated, delta, gated_delta") }
        let gating = rule.hasPrefix("gated"), delta = rule.hasSuffix("delta")
        let qh = try ctx.int("q_num_heads", 0), kvh = try ctx.int("kv_num_heads", 0)
        guard qh > 0, kvh > 0, qh % kvh == 0 else { throw ctx.fail("q_num_heads (\(qh)) must be a positive multiple of kv_num_heads (\(kvh))") }
        let decayT = ctx.optionalInput(4), betaT = ctx.optionalInput(5)
        guard gating == (decayT != nil) else { throw ctx.fail("update_rule '\(rule)' \(gating ? "requires" : "forbids") the decay input") }
        guard delta == (betaT != nil) else { throw ctx.fail("update_rule '\(rule)' \(delta ? "requires" : "forbids") the beta input") }
        guard qt.rank == 3, kt.rank == 3, vt.rank == 3 else { throw ctx.fail("query, key and value must be [batch, time, heads·size]") }
        let q = try Heads(ctx, qt, heads: qh, label: "query"), k = try Heads(ctx, kt, heads: kvh, label: "key")
        let v = try Heads(ctx, vt, heads: kvh, label: "value")
        let (b, t, dk, dv) = (q.batch, q.seq, q.size, v.size)
        guard k.batch == b, v.batch == b, k.seq == t, v.seq == t, k.size == dk else {
            throw ctx.fail("query \(qt.shape), key \(kt.shape) and value \(vt.shape) do not fit together")
        }
        let group = qh / kvh
        var decay: [Double] = [], decayPerKey = false
        if let decayT {
            guard decayT.rank == 3, decayT.shape[0] == b, decayT.shape[1] == t,
                  decayT.shape[2] == kvh || decayT.shape[2] == kvh * dk else {
                throw ctx.fail("decay must be [\(b), \(t), \(kvh) or \(kvh * dk)], got \(decayT.shape)")
            }
            decay = decayT.doubles()
            decayPerKey = decayT.shape[2] == kvh * dk
        }
        var beta: [Double] = [], betaWidth = 1
        if let betaT {
            guard betaT.rank == 3, betaT.shape[0] == b, betaT.shape[1] == t, betaT.shape[2] == kvh || betaT.shape[2] == 1 else {
                throw ctx.fail("beta must be [\(b), \(t), \(kvh) or 1], got \(betaT.shape)")
            }
            beta = betaT.doubles()
            betaWidth = betaT.shape[2]
        }
        var state = [Double](repeating: 0, count: b * kvh * dk * dv)
        var stateType = qt.dtype
        if let p = ctx.optionalInput(3) {
            guard p.shape == [b, kvh, dk, dv] else { throw ctx.fail("past_state must be \([b, kvh, dk, dv]), got \(p.shape)") }
            state = p.doubles()
            stateType = p.dtype
        }
        let scaleAttr = Double(try ctx.float("scale", 0))
        let scale = scaleAttr == 0 ? 1 / Double(dk).squareRoot() : scaleAttr
        var out = [Double](repeating: 0, count: b * t * qh * dv)
        var vStep = [Double](repeating: 0, count: dv)
        for bi in 0..<b {
            for step in 0..<t {
                for h in 0..<kvh {
                    let so = (bi * kvh + h) * dk * dv
                    if gating {
                        for i in 0..<dk {
                            let g = decayPerKey ? decay[(bi * t + step) * kvh * dk + h * dk + i] : decay[(bi * t + step) * kvh + h]
                            let e = exp(g)
                            for j in 0..<dv { state[so + i * dv + j] *= e }
                        }
                    }
                    let ko = k.at(bi, h, step), vo = v.at(bi, h, step)
                    for j in 0..<dv { vStep[j] = v.values[vo + j] }
                    if delta {
                        let bt = beta[(bi * t + step) * betaWidth + (betaWidth == 1 ? 0 : h)]
                        for j in 0..<dv {
                            var r = 0.0
                            for i in 0..<dk { r += state[so + i * dv + j] * k.values[ko + i] }
                            vStep[j] = bt * (vStep[j] - r)
                        }
                    }
                    for i in 0..<dk { for j in 0..<dv { state[so + i * dv + j] += k.values[ko + i] * vStep[j] } }
                    for g in 0..<group {
                        let hq = h * group + g, qo = q.at(bi, hq, step)
                        let oo = ((bi * t + step) * qh + hq) * dv
                        for j in 0..<dv {
                            var r = 0.0
                            for i in 0..<dk { r += q.values[qo + i] * state[so + i * dv + j] }
                            out[oo + j] = scale * r
                        }
                    }
                }
            }
        }
        return [Tensor.fromDoubles(out, dtype: qt.dtype, shape: [b, t, qh * dv]),
                Tensor.fromDoubles(state, dtype: stateType, shape: [b, kvh, dk, dv])]
    }

    /// ai.onnx.preview FlexAttention: 4-D attention whose scores and probabilities pass through
    /// optional subgraphs (`score_mod`, `prob_mod`: one tensor in, one out), run with the
    /// executor. Scores are computed in float32 for 16-bit inputs (or `softmax_precision`).
    static let flexAttention: Kernel = { ctx throws(RuntimeError) in
        let qt = try ctx.input(0), kt = try ctx.input(1), vt = try ctx.input(2)
        guard qt.dtype.isFloatingPoint, qt.rank == 4, kt.rank == 4, vt.rank == 4 else {
            throw ctx.fail("Q, K and V must be 4-D floating-point, got \(qt.dtype) \(qt.shape), \(kt.shape), \(vt.shape)")
        }
        let q = try Heads(ctx, qt, heads: nil, label: "Q"), k = try Heads(ctx, kt, heads: nil, label: "K")
        let v = try Heads(ctx, vt, heads: nil, label: "V")
        guard q.batch == k.batch, k.batch == v.batch, q.size == k.size, k.heads == v.heads, k.seq == v.seq,
              k.heads > 0, q.heads % k.heads == 0 else {
            throw ctx.fail("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together")
        }
        var computeType: DType = qt.dtype.byteWidth < 4 ? .float32 : qt.dtype
        if ctx.node.attribute("softmax_precision") != nil {
            let code = try ctx.int("softmax_precision", 1)
            guard let t = DType(onnxCode: Int32(clamping: code)), t.isFloatingPoint else { throw ctx.fail("softmax_precision \(code) is not a float type") }
            computeType = t
        }
        let scaleAttr = ctx.node.attribute("scale") == nil ? nil : try ctx.float("scale", 1)
        let scale = Double(scaleAttr ?? Float(1 / Double(q.size).squareRoot()))
        let groups = q.heads / k.heads
        let shape = [q.batch, q.heads, q.seq, k.seq]
        var scores = [Double](repeating: 0, count: shape.reduce(1, *))
        for b in 0..<q.batch { for h in 0..<q.heads { for i in 0..<q.seq { for j in 0..<k.seq {
            let qo = q.at(b, h, i), ko = k.at(b, h / groups, j)
            var s = 0.0
            for d in 0..<q.size { s += q.values[qo + d] * k.values[ko + d] }
            scores[((b * q.heads + h) * q.seq + i) * k.seq + j] = s * scale
        } } } }
        /// Runs a modifier subgraph on `values` (shape `shape`, in the compute type).
        func modify(_ name: String, _ values: [Double]) throws(RuntimeError) -> [Double] {
            guard case .graph(let g)? = ctx.node.attribute(name) else { return values }
            guard g.inputs.count == 1, g.outputs.count == 1 else { throw ctx.fail("\(name) must take one input and give one output") }
            let executor = try Executor(graph: g)
            let out = try executor.run([g.inputs[0].name: Tensor.fromDoubles(values, dtype: computeType, shape: shape)])
            guard let t = out[g.outputs[0].name], t.elementCount == values.count else {
                throw ctx.fail("\(name) must return a tensor of shape \(shape)")
            }
            return t.doubles()
        }
        let rounded = Tensor.fromDoubles(scores, dtype: computeType, shape: shape).doubles()
        scores = try modify("score_mod", rounded)
        for r in 0..<(scores.count / max(k.seq, 1)) {
            let row = r * k.seq
            let m = scores[row..<row + k.seq].max() ?? 0
            var sum = 0.0
            for j in 0..<k.seq { scores[row + j] = exp(scores[row + j] - m); sum += scores[row + j] }
            for j in 0..<k.seq { scores[row + j] /= sum }
        }
        scores = try modify("prob_mod", scores)
        var y = [Double](repeating: 0, count: q.batch * q.heads * q.seq * v.size)
        for b in 0..<q.batch { for h in 0..<q.heads { for i in 0..<q.seq {
            let yo = ((b * q.heads + h) * q.seq + i) * v.size, row = ((b * q.heads + h) * q.seq + i) * k.seq
            for j in 0..<k.seq {
                let p = scores[row + j], vo = v.at(b, h / groups, j)
                for d in 0..<v.size { y[yo + d] += p * v.values[vo + d] }
            }
        } } }
        return [Tensor.fromDoubles(y, dtype: vt.dtype, shape: [q.batch, q.heads, q.seq, v.size])]
    }
}
