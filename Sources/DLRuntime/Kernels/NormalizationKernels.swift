#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLKernels
import DLTensor

/// LayerNormalization, RMSNormalization, GroupNormalization, InstanceNormalization,
/// LpNormalization, MeanVarianceNormalization, LRN and BatchNormalization (inference and training
/// outputs) over every float type, computed in Double and rounded once on store. float32
/// BatchNormalization inference keeps the DLKernels loop.
enum NormalizationKernels {
    static var all: [KernelEntry] {
        [.init("LayerNormalization", layerNorm(rms: false)), .init("RMSNormalization", layerNorm(rms: true)),
         .init("GroupNormalization", groupNorm), .init("InstanceNormalization", instanceNorm),
         .init("LpNormalization", lpNorm), .init("MeanVarianceNormalization", meanVarianceNorm), .init("LRN", lrn),
         .init("BatchNormalization", batchNorm)]
    }

    /// A floating-point input as Doubles.
    static func floatInput(_ ctx: KernelContext, _ i: Int) throws(RuntimeError) -> Tensor {
        let t = try ctx.input(i)
        guard t.dtype.isFloatingPoint else { throw ctx.fail("input \(i) must be floating-point, got \(t.dtype)") }
        return t
    }

    /// `t`'s values broadcast onto `shape`, or an error naming `label`.
    static func broadcast(_ ctx: KernelContext, _ t: Tensor, to shape: [Int], _ label: String) throws(RuntimeError) -> [Double] {
        guard let plan = try? BroadcastPlan(outShape: shape, operands: [t.shape]) else {
            throw ctx.fail("\(label) of shape \(t.shape) does not broadcast to \(shape)")
        }
        let v = t.doubles()
        return plan.offsets(of: 0).map { v[$0] }
    }

    /// Normalises over the dims from `axis` on: (x - mean) / sqrt(var + eps) · scale + bias, or
    /// for RMS x / sqrt(mean(x²) + eps) · scale. LayerNormalization also returns Mean and
    /// InvStdDev ([..., 1, 1]) in the stash type.
    static func layerNorm(rms: Bool) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try floatInput(ctx, 0)
            let a = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
            let eps = Double(try ctx.float("epsilon", 1e-5))
            let stash = try ctx.int("stash_type", 1)
            let stashType = DType(onnxCode: Int32(clamping: stash)) ?? .float32
            let inner = Array(x.shape[a...])
            let rows = x.shape[..<a].reduce(1, *), size = inner.reduce(1, *)
            if !rms, let fast = try fastLayerNorm(ctx, x, rows: rows, size: size, inner: inner, eps: Float(eps), stashType: stashType) {
                return fast
            }
            let scale = try broadcast(ctx, try ctx.input(1), to: inner, "scale")
            let bias: [Double]? = try ctx.optionalInput(2).map { (b) throws(RuntimeError) in try broadcast(ctx, b, to: inner, "bias") }
            let v = x.doubles()
            var y = [Double](repeating: 0, count: v.count)
            var means = [Double](repeating: 0, count: rows), invStd = [Double](repeating: 0, count: rows)
            for r in 0..<rows where size > 0 {
                let base = r * size
                var mean = 0.0
                if !rms {
                    for k in 0..<size { mean += v[base + k] }
                    mean /= Double(size)
                }
                var sq = 0.0
                for k in 0..<size { sq += (v[base + k] - mean) * (v[base + k] - mean) }
                let inv = 1 / (sq / Double(size) + eps).squareRoot()
                means[r] = mean
                invStd[r] = inv
                for k in 0..<size { y[base + k] = (v[base + k] - mean) * inv * scale[k] + (bias?[k] ?? 0) }
            }
            let statShape = Array(x.shape[..<a]) + Array(repeating: 1, count: x.rank - a)
            return [Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape),
                    Tensor.fromDoubles(means, dtype: stashType, shape: statShape),
                    Tensor.fromDoubles(invStd, dtype: stashType, shape: statShape)]
        }
    }

    /// The float32 DLKernels loop when X, scale and bias are float32 and scale/bias have the
    /// normalised shape exactly; nil otherwise.
    static func fastLayerNorm(_ ctx: KernelContext, _ x: Tensor, rows: Int, size: Int, inner: [Int], eps: Float,
                              stashType: DType) throws(RuntimeError) -> [Tensor]? {
        let scale = try ctx.input(1), bias = ctx.optionalInput(2)
        guard x.dtype == .float32, stashType == .float32, size > 0, scale.dtype == .float32, scale.shape == inner,
              bias.map({ $0.dtype == .float32 && $0.shape == inner }) ?? true else { return nil }
        // layerNorm writes every element of all three.
        var mean = ctx.makeOutput(.float32, shape: [rows]), inv = ctx.makeOutput(.float32, shape: [rows])
        var y = ctx.makeOutput(.float32, shape: x.shape)
        y.withUnsafeMutableBufferPointer(as: Float.self) { py in
            mean.withUnsafeMutableBufferPointer(as: Float.self) { pm in
                inv.withUnsafeMutableBufferPointer(as: Float.self) { pi in
                    x.withUnsafeBufferPointer(as: Float.self) { px in
                        scale.withUnsafeBufferPointer(as: Float.self) { ps in
                            func run(_ pb: UnsafePointer<Float>?) {
                                guard let yo = py.baseAddress, let xi = px.baseAddress, let sc = ps.baseAddress else { return }
                                Normalization.layerNorm(xi, yo, rows: rows, size: size, scale: sc, bias: pb, epsilon: eps,
                                                        meanOutput: pm.baseAddress, invStdOutput: pi.baseAddress)
                            }
                            if let bias { bias.withUnsafeBufferPointer(as: Float.self) { run($0.baseAddress) } } else { run(nil) }
                        }
                    }
                }
            }
        }
        let statShape = Array(x.shape[..<(x.rank - inner.count)]) + Array(repeating: 1, count: inner.count)
        do {
            return [y, try mean.reshaped(to: statShape), try inv.reshaped(to: statShape)]
        } catch { throw ctx.fail("\(error)") }
    }

    /// Mean and population variance of each of `groups` contiguous runs of `size` values.
    static func moments(_ v: [Double], groups: Int, size: Int) -> [(mean: Double, variance: Double)] {
        (0..<groups).map { g in
            guard size > 0 else { return (0, 0) }
            var m = 0.0
            for k in 0..<size { m += v[g * size + k] }
            m /= Double(size)
            var s = 0.0
            for k in 0..<size { s += (v[g * size + k] - m) * (v[g * size + k] - m) }
            return (m, s / Double(size))
        }
    }

    /// Normalises [N, C, ...] per (n, group of C/groups channels); scale and bias are per channel
    /// (opset 21) or per group (opset 18, recognised by their length).
    static func normalizeGroups(_ ctx: KernelContext, x: Tensor, groups: Int, scale: [Double], bias: [Double],
                                eps: Double) throws(RuntimeError) -> Tensor {
        guard x.rank >= 2 else { throw ctx.fail("the input must be [N, C, ...], got \(x.shape)") }
        let n = x.shape[0], c = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        guard groups > 0, c % groups == 0 else { throw ctx.fail("\(c) channels do not split into \(groups) groups") }
        let perGroup = c / groups
        let perChannel = scale.count == c
        guard perChannel || scale.count == groups, bias.count == scale.count else {
            throw ctx.fail("scale and bias need \(c) (per channel) or \(groups) (per group) values, got \(scale.count) and \(bias.count)")
        }
        let v = x.doubles()
        let stats = moments(v, groups: n * groups, size: perGroup * spatial)
        var y = [Double](repeating: 0, count: v.count)
        for b in 0..<n {
            for ch in 0..<c {
                let g = ch / perGroup, (mean, variance) = stats[b * groups + g]
                let inv = 1 / (variance + eps).squareRoot()
                let s = perChannel ? scale[ch] : scale[g], t = perChannel ? bias[ch] : bias[g]
                let base = (b * c + ch) * spatial
                for k in 0..<spatial { y[base + k] = (v[base + k] - mean) * inv * s + t }
            }
        }
        return Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape)
    }

    static let groupNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        return [try normalizeGroups(ctx, x: x, groups: try ctx.int("num_groups", 0), scale: try ctx.input(1).doubles(),
                                    bias: try ctx.input(2).doubles(), eps: Double(try ctx.float("epsilon", 1e-5)))]
    }

    static let instanceNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        guard x.rank >= 2 else { throw ctx.fail("the input must be [N, C, ...], got \(x.shape)") }
        return [try normalizeGroups(ctx, x: x, groups: x.shape[1], scale: try ctx.input(1).doubles(),
                                    bias: try ctx.input(2).doubles(), eps: Double(try ctx.float("epsilon", 1e-5)))]
    }

    static let lpNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        let a = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let p = try ctx.int("p", 2)
        guard p == 1 || p == 2 else { throw ctx.fail("p must be 1 or 2, got \(p)") }
        let (outer, size, inner) = IndexMath.around(x.shape, axis: a)
        var v = x.doubles()
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * size * inner + i
                var norm = 0.0
                for k in 0..<size { norm += p == 1 ? abs(v[base + k * inner]) : v[base + k * inner] * v[base + k * inner] }
                if p == 2 { norm = norm.squareRoot() }
                for k in 0..<size { v[base + k * inner] = norm == 0 ? 0 : v[base + k * inner] / norm }
            }
        }
        return [Tensor.fromDoubles(v, dtype: x.dtype, shape: x.shape)]
    }

    /// (x - mean) / (std + 1e-9) with the moments taken over `axes` (default [0, 2, 3]).
    static let meanVarianceNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        let axes = try (try ctx.ints("axes") ?? [0, 2, 3]).map { (a) throws(RuntimeError) in try ctx.axis(a, rank: x.rank) }
        let reduced = Set(axes)
        // The statistics live in a tensor that keeps the non-reduced dims (reduced ones as 1).
        let statShape = x.shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        let map = try ctx.broadcastMaps([statShape], to: x.shape).maps[0]
        let count = Double(x.shape.enumerated().filter { reduced.contains($0.offset) }.map(\.element).reduce(1, *))
        let v = x.doubles()
        let slots = statShape.reduce(1, *)
        var sum = [Double](repeating: 0, count: slots), sq = [Double](repeating: 0, count: slots)
        for (i, s) in map.enumerated() {
            sum[s] += v[i]
            sq[s] += v[i] * v[i]
        }
        var y = [Double](repeating: 0, count: v.count)
        for (i, s) in map.enumerated() {
            let mean = sum[s] / count
            let std = max(sq[s] / count - mean * mean, 0).squareRoot()
            y[i] = (v[i] - mean) / (std + 1e-9)
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape)]
    }

    /// Local response normalisation across channels of [N, C, ...].
    static let lrn: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        guard x.rank >= 2 else { throw ctx.fail("the input must be [N, C, ...], got \(x.shape)") }
        let size = try ctx.int("size", 0)
        guard size > 0 else { throw ctx.fail("size must be positive, got \(size)") }
        let alpha = Double(try ctx.float("alpha", 0.0001)), beta = Double(try ctx.float("beta", 0.75))
        let bias = Double(try ctx.float("bias", 1))
        let n = x.shape[0], c = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        let lo = (size - 1) / 2, hi = size - 1 - lo
        let v = x.doubles()
        var y = [Double](repeating: 0, count: v.count)
        for b in 0..<n {
            for ch in 0..<c {
                for k in 0..<spatial {
                    var s = 0.0
                    for j in max(0, ch - lo)...min(c - 1, ch + hi) {
                        let e = v[(b * c + j) * spatial + k]
                        s += e * e
                    }
                    let i = (b * c + ch) * spatial + k
                    y[i] = v[i] / pow(bias + alpha / Double(size) * s, beta)
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape)]
    }

    /// Inference with the given statistics; with `training_mode` the batch statistics normalise
    /// and the outputs add running mean and variance (input · momentum + batch · (1 - momentum)),
    /// then the batch mean and variance.
    static let batchNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try floatInput(ctx, 0)
        guard x.rank >= 2 else { throw ctx.fail("the input must be [N, C, ...], got \(x.shape)") }
        let training = try ctx.int("training_mode", 0) != 0
        let n = x.shape[0], c = x.shape[1], spatial = x.shape[2...].reduce(1, *)
        let params = try (1...4).map { (i) throws(RuntimeError) in try ctx.input(i).doubles() }
        for (i, p) in params.enumerated() where p.count != c {
            throw ctx.fail("input \(i + 1) must have \(c) values (one per channel), got \(p.count)")
        }
        let eps = Double(try ctx.float("epsilon", 1e-5)), momentum = Double(try ctx.float("momentum", 0.9))
        let v = x.doubles()
        var mean = params[2], variance = params[3]
        if training {
            for ch in 0..<c {
                var s = 0.0, count = 0.0
                for b in 0..<n { for k in 0..<spatial { s += v[(b * c + ch) * spatial + k]; count += 1 } }
                let m = count > 0 ? s / count : 0
                var q = 0.0
                for b in 0..<n { for k in 0..<spatial { let d = v[(b * c + ch) * spatial + k] - m; q += d * d } }
                mean[ch] = m
                variance[ch] = count > 0 ? q / count : 0
            }
        }
        var y = [Double](repeating: 0, count: v.count)
        for b in 0..<n {
            for ch in 0..<c {
                let inv = 1 / (variance[ch] + eps).squareRoot()
                let base = (b * c + ch) * spatial
                for k in 0..<spatial { y[base + k] = (v[base + k] - mean[ch]) * inv * params[0][ch] + params[1][ch] }
            }
        }
        let out = Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape)
        guard training else { return [out] }
        let statType = try ctx.input(3).dtype
        let runMean = (0..<c).map { params[2][$0] * momentum + mean[$0] * (1 - momentum) }
        let runVar = (0..<c).map { params[3][$0] * momentum + variance[$0] * (1 - momentum) }
        return [out, Tensor.fromDoubles(runMean, dtype: statType, shape: [c]), Tensor.fromDoubles(runVar, dtype: statType, shape: [c]),
                Tensor.fromDoubles(mean, dtype: statType, shape: [c]), Tensor.fromDoubles(variance, dtype: statType, shape: [c])]
    }
}
