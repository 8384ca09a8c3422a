#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLKernels
import DLTensor

extension KernelContext {
    /// The node's window attributes (`WindowAttributes`), read and checked: once per plan in
    /// planned runs, here otherwise.
    func window() throws(RuntimeError) -> WindowAttributes {
        if let windowAttributes { return windowAttributes }
        return try attribute { () throws(GraphError) in try WindowAttributes(node: node) }
    }
}

/// Convolutions beyond the float32 1-D/2-D fast path: N-D Conv in any float type,
/// ConvTranspose, ConvInteger, DeformConv (2-D), Col2Im and CausalConvWithState. They compute
/// in Double (exact for the integer forms) and round once on store.
enum ConvFamilyKernels {
    static var all: [KernelEntry] {
        [.init("Conv", conv), .init("ConvTranspose", convTranspose), .init("ConvInteger", convInteger),
         .init("DeformConv", deformConv), .init("Col2Im", col2Im), .init("CausalConvWithState", causalConv)]
    }

    /// For each output position, the (kernel offset, input offset) pairs that fall inside the
    /// input, both as flat in-plane indices.
    static func taps(input: [Int], _ g: WindowGeometry) -> [[(k: Int, i: Int)]] {
        let r = input.count
        let kernelCount = g.kernel.reduce(1, *)
        let inStrides = IndexMath.strides(input)
        let outCount = g.output.reduce(1, *)
        let kernelIdx = (0..<kernelCount).map { IndexMath.unravel($0, g.kernel) }
        return (0..<outCount).map { o in
            let oi = IndexMath.unravel(o, g.output)
            var list: [(k: Int, i: Int)] = []
            for k in 0..<kernelCount {
                var flat = 0, inside = true
                for d in 0..<r {
                    let pos = oi[d] * g.strides[d] - g.padsBegin[d] + kernelIdx[k][d] * g.dilations[d]
                    if pos < 0 || pos >= input[d] { inside = false; break }
                    flat += pos * inStrides[d]
                }
                if inside { list.append((k, flat)) }
            }
            return list
        }
    }

    /// Grouped N-D cross-correlation: y[n, m, o] = b[m] + Σ x[n, g·C/G + c, o·s − p + k·d] · w[m, c, k].
    static func convolve(x: [Double], xShape: [Int], w: [Double], wShape: [Int], bias: [Double]?,
                         group: Int, _ g: WindowGeometry) -> [Double] {
        let n = xShape[0], c = xShape[1], m = wShape[0]
        let cg = c / group, mg = m / group
        let spatial = Array(xShape.dropFirst(2))
        let inPlane = spatial.reduce(1, *), outPlane = g.output.reduce(1, *)
        let kernelCount = g.kernel.reduce(1, *)
        let t = taps(input: spatial, g)
        var y = [Double](repeating: 0, count: n * m * outPlane)
        for b in 0..<n {
            for oc in 0..<m {
                let gi = oc / mg
                let base = (b * m + oc) * outPlane
                let b0 = bias?[oc] ?? 0
                for o in 0..<outPlane {
                    var s = b0
                    for ci in 0..<cg {
                        let xBase = (b * c + gi * cg + ci) * inPlane
                        let wBase = (oc * cg + ci) * kernelCount
                        for (k, i) in t[o] { s += x[xBase + i] * w[wBase + k] }
                    }
                    y[base + o] = s
                }
            }
        }
        return y
    }

    /// Checks X [N, C, spatial...] against W [M, C/group, kernel...] and resolves the window.
    static func convSetup(_ ctx: KernelContext, x: Tensor, w: Tensor) throws(RuntimeError) -> (group: Int, g: WindowGeometry) {
        guard x.shape.count >= 3, w.shape.count == x.shape.count else {
            throw ctx.fail("needs X [N, C, spatial...] and W of the same rank, got \(x.shape) and \(w.shape)")
        }
        let window = try ctx.window()
        let group = window.group
        guard x.shape[1] == w.shape[1] * group, w.shape[0] % group == 0 else {
            throw ctx.fail("X \(x.shape) and W \(w.shape) do not fit group \(group)")
        }
        let g = try ctx.attribute { () throws(GraphError) in
            try window.geometry(input: Array(x.shape.dropFirst(2)), kernel: window.kernel(weight: Array(w.shape.dropFirst(2))), isPooling: false)
        }
        return (group, g)
    }

    static func bias(_ ctx: KernelContext, _ i: Int, channels: Int) throws(RuntimeError) -> [Double]? {
        guard let b = ctx.optionalInput(i) else { return nil }
        guard b.elementCount == channels else { throw ctx.fail("bias has \(b.elementCount) values for \(channels) output channels") }
        return b.doubles()
    }

    static let conv: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        guard x.dtype.isFloatingPoint, w.dtype == x.dtype else { throw ctx.fail("Conv needs floating-point X and W of one type, got \(x.dtype) and \(w.dtype)") }
        let (group, g) = try convSetup(ctx, x: x, w: w)
        let y = convolve(x: x.doubles(), xShape: x.shape, w: w.doubles(), wShape: w.shape,
                         bias: try bias(ctx, 2, channels: w.shape[0]), group: group, g)
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [x.shape[0], w.shape[0]] + g.output)]
    }

    /// ConvInteger: (x − x_zero_point) ⊛ (w − w_zero_point) in int32; padding holds the zero point.
    static let convInteger: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        for t in [x, w] where t.dtype != .int8 && t.dtype != .uint8 {
            throw ctx.fail("ConvInteger needs int8 or uint8 inputs, got \(t.dtype)")
        }
        let (group, g) = try convSetup(ctx, x: x, w: w)
        var xv = x.doubles(), wv = w.doubles()
        if let zp = ctx.optionalInput(2) {
            guard zp.elementCount == 1 else { throw ctx.fail("x_zero_point must be a scalar, got \(zp.shape)") }
            let z = zp.doubles()[0]
            xv = xv.map { $0 - z }
        }
        if let zp = ctx.optionalInput(3) {
            let m = w.shape[0], per = w.elementCount / max(m, 1)
            let z = zp.doubles()
            guard z.count == 1 || z.count == m else { throw ctx.fail("w_zero_point has \(z.count) values for \(m) output channels") }
            for i in 0..<wv.count { wv[i] -= z.count == 1 ? z[0] : z[i / per] }
        }
        let y = convolve(x: xv, xShape: x.shape, w: wv, wShape: w.shape, bias: nil, group: group, g)
        return [Tensor.fromDoubles(y, dtype: .int32, shape: [x.shape[0], w.shape[0]] + g.output)]
    }

    /// ConvTranspose: each input element scatters W-weighted copies into the output at
    /// i·stride − pad_begin + k·dilation. W is [C, M/group, kernel...].
    static let convTranspose: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        guard x.dtype.isFloatingPoint, w.dtype == x.dtype else { throw ctx.fail("ConvTranspose needs floating-point X and W of one type") }
        guard x.shape.count >= 3, w.shape.count == x.shape.count else {
            throw ctx.fail("needs X [N, C, spatial...] and W of the same rank, got \(x.shape) and \(w.shape)")
        }
        let r = x.shape.count - 2
        let window = try ctx.window()
        let group = window.group
        let c = x.shape[1]
        guard c % group == 0, w.shape[0] == c else { throw ctx.fail("X \(x.shape) and W \(w.shape) do not fit group \(group)") }
        let mg = w.shape[1], m = mg * group
        let inSpatial = Array(x.shape.dropFirst(2))
        let g = try ctx.attribute { () throws(GraphError) in
            try window.transposedGeometry(input: inSpatial, kernel: window.kernel(weight: Array(w.shape.dropFirst(2))))
        }
        let (kernel, strides, dilations, padsBegin, outSpatial) = (g.kernel, g.strides, g.dilations, g.padsBegin, g.output)
        if x.dtype == .float32, r == 2, ctx.optionalInput(2).map({ $0.dtype == .float32 && $0.elementCount == m }) ?? true {
            return [convTransposeFloat(ctx, x: x, w: w, group: group, strides: strides, dilations: dilations,
                                       padsBegin: padsBegin, outSpatial: outSpatial)]
        }
        let b = try bias(ctx, 2, channels: m)
        let n = x.shape[0], cg = c / group
        let inPlane = inSpatial.reduce(1, *), outPlane = outSpatial.reduce(1, *)
        let kernelCount = kernel.reduce(1, *)
        let outStrides = IndexMath.strides(outSpatial)
        // For each (input position, kernel offset): the output offset, or -1 when outside.
        var target = [Int](repeating: -1, count: inPlane * kernelCount)
        for i in 0..<inPlane {
            let ii = IndexMath.unravel(i, inSpatial)
            for k in 0..<kernelCount {
                let ki = IndexMath.unravel(k, kernel)
                var flat = 0, inside = true
                for d in 0..<r {
                    let pos = ii[d] * strides[d] - padsBegin[d] + ki[d] * dilations[d]
                    if pos < 0 || pos >= outSpatial[d] { inside = false; break }
                    flat += pos * outStrides[d]
                }
                if inside { target[i * kernelCount + k] = flat }
            }
        }
        let xv = x.doubles(), wv = w.doubles()
        var y = [Double](repeating: 0, count: n * m * outPlane)
        for bi in 0..<n {
            for gi in 0..<group {
                for ci in 0..<cg {
                    let ic = gi * cg + ci
                    let xBase = (bi * c + ic) * inPlane
                    for mi in 0..<mg {
                        let oc = gi * mg + mi
                        let yBase = (bi * m + oc) * outPlane
                        let wBase = (ic * mg + mi) * kernelCount
                        for i in 0..<inPlane {
                            let xvI = xv[xBase + i]
                            if xvI == 0 { continue }
                            for k in 0..<kernelCount {
                                let t = target[i * kernelCount + k]
                                if t >= 0 { y[yBase + t] += xvI * wv[wBase + k] }
                            }
                        }
                    }
                }
            }
            if let b {
                for oc in 0..<m { for o in 0..<outPlane { y[(bi * m + oc) * outPlane + o] += b[oc] } }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [n, m] + outSpatial)]
    }

    /// 2-D ConvTranspose on float32 through `Convolution.transposed2D`.
    static func convTransposeFloat(_ ctx: KernelContext, x: Tensor, w: Tensor, group: Int, strides: [Int],
                                   dilations: [Int], padsBegin: [Int], outSpatial: [Int]) -> Tensor {
        let n = x.shape[0], m = w.shape[1] * group
        let y = ctx.makeOutput(.float32, shape: [n, m] + outSpatial)
        guard y.elementCount > 0 else { return y }
        let p = Convolution.TransposedParams(
            batch: n, inChannels: x.shape[1], inH: x.shape[2], inW: x.shape[3], group: group,
            outChannelsPerGroup: w.shape[1], kernelH: w.shape[2], kernelW: w.shape[3],
            strideH: strides[0], strideW: strides[1], dilationH: dilations[0], dilationW: dilations[1],
            padTop: padsBegin[0], padLeft: padsBegin[1], outH: outSpatial[0], outW: outSpatial[1])
        let bias = ctx.optionalInput(2)
        x.withUnsafeBufferPointer(as: Float.self) { xs in
            w.withUnsafeBufferPointer(as: Float.self) { ws in
                y.withUnsafeMutableBufferPointerInPlace(as: Float.self) { ys in
                    guard let xp = xs.baseAddress, let wp = ws.baseAddress, let yp = ys.baseAddress else { return }
                    if let bias {
                        bias.withUnsafeBufferPointer(as: Float.self) { bs in
                            Convolution.transposed2D(p, input: xp, weight: wp, bias: bs.baseAddress, output: yp)
                        }
                    } else {
                        Convolution.transposed2D(p, input: xp, weight: wp, bias: nil, output: yp)
                    }
                }
            }
        }
        return y
    }

    /// Col2Im: sums column blocks [N, C·∏block, L] back into images [N, C, image_shape...].
    static let col2Im: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let image = try ctx.intList(1), let block = try ctx.intList(2), image.count == block.count, !image.isEmpty else {
            throw ctx.fail("image_shape and block_shape must be integer lists of one length")
        }
        let r = image.count
        guard x.shape.count == 3, image.allSatisfy({ $0 > 0 }), block.allSatisfy({ $0 > 0 }) else {
            throw ctx.fail("needs input [N, C·∏block, L] and positive shapes, got \(x.shape)")
        }
        let window = try ctx.window()
        let (strides, dilations, pads) = try ctx.attribute { () throws(GraphError) in
            (try window.strides(rank: r), try window.dilations(rank: r), try window.pads(rank: r))
        }
        let blockCount = block.reduce(1, *)
        guard x.shape[1] % blockCount == 0 else { throw ctx.fail("dimension 1 (\(x.shape[1])) is not a multiple of the block size \(blockCount)") }
        let c = x.shape[1] / blockCount
        var grid = [Int](repeating: 0, count: r)
        for d in 0..<r {
            let span: Int = image[d] + pads[d] + pads[r + d] - dilations[d] * (block[d] - 1) - 1
            grid[d] = span / strides[d] + 1
        }
        let l = grid.reduce(1, *)
        guard grid.allSatisfy({ $0 > 0 }), x.shape[2] == l else { throw ctx.fail("input has \(x.shape[2]) blocks, the geometry gives \(l)") }
        let imStrides = IndexMath.strides(image)
        let imPlane = image.reduce(1, *)
        let v = x.doubles()
        let n = x.shape[0]
        var y = [Double](repeating: 0, count: n * c * imPlane)
        for k in 0..<blockCount {
            let ki = IndexMath.unravel(k, block)
            for p in 0..<l {
                let pi = IndexMath.unravel(p, grid)
                var flat = 0, inside = true
                for d in 0..<r {
                    let pos = pi[d] * strides[d] - pads[d] + ki[d] * dilations[d]
                    if pos < 0 || pos >= image[d] { inside = false; break }
                    flat += pos * imStrides[d]
                }
                guard inside else { continue }
                for b in 0..<n {
                    for ci in 0..<c {
                        y[(b * c + ci) * imPlane + flat] += v[(b * x.shape[1] + ci * blockCount + k) * l + p]
                    }
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [n, c] + image)]
    }

    /// CausalConvWithState: depthwise 1-D convolution over [past_state | input] (zeros when no
    /// state), optional SiLU, and the last k − 1 steps of that sequence as the new state.
    static let causalConv: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        guard x.dtype.isFloatingPoint, w.dtype == x.dtype else { throw ctx.fail("needs floating-point input and weight of one type") }
        guard x.shape.count == 3, w.shape.count == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
            throw ctx.fail("needs input [B, C, L] and weight [C, 1, k], got \(x.shape) and \(w.shape)")
        }
        let activation = try ctx.string("activation", "none")
        guard ["none", "silu", "swish"].contains(activation) else { throw ctx.fail("activation '\(activation)' is not none, silu or swish") }
        let (nb, c, len) = (x.shape[0], x.shape[1], x.shape[2])
        let k = w.shape[2]
        let b = try bias(ctx, 2, channels: c)
        var past = [Double](repeating: 0, count: nb * c * (k - 1))
        if let ps = ctx.optionalInput(3) {
            guard ps.shape == [nb, c, k - 1] else { throw ctx.fail("past_state must be [\(nb), \(c), \(k - 1)], got \(ps.shape)") }
            past = ps.doubles()
        }
        let xv = x.doubles(), wv = w.doubles()
        let total = len + k - 1
        var y = [Double](repeating: 0, count: nb * c * len)
        var state = [Double](repeating: 0, count: nb * c * (k - 1))
        var seq = [Double](repeating: 0, count: total)
        for bi in 0..<nb {
            for ci in 0..<c {
                let row = bi * c + ci
                for t in 0..<(k - 1) { seq[t] = past[row * (k - 1) + t] }
                for t in 0..<len { seq[k - 1 + t] = xv[row * len + t] }
                for t in 0..<len {
                    var s = b?[ci] ?? 0
                    for j in 0..<k { s += seq[t + j] * wv[ci * k + j] }
                    if activation != "none" {
                        // Round to the element type first, as the spec's reference does.
                        s = x.dtype == .float16 ? Double(Float(Float16(Float(s)))) : s
                        s = s / (1 + exp(-s))
                    }
                    y[row * len + t] = s
                }
                for t in 0..<(k - 1) { state[row * (k - 1) + t] = seq[total - (k - 1) + t] }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape),
                Tensor.fromDoubles(state, dtype: x.dtype, shape: [nb, c, k - 1])]
    }

    /// DeformConv (2-D): each kernel tap samples X bilinearly (zeros outside) at its regular
    /// position plus a learned offset, optionally scaled by a mask.
    static let deformConv: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1), off = try ctx.input(2)
        guard x.dtype.isFloatingPoint, w.dtype == x.dtype, off.dtype == x.dtype else { throw ctx.fail("needs floating-point inputs of one type") }
        guard x.shape.count == 4, w.shape.count == 4, off.shape.count == 4 else {
            throw ctx.unsupported("only 2-D DeformConv is supported: X, W and offset must be rank 4, got \(x.shape), \(w.shape), \(off.shape)")
        }
        let (n, ic, ih, iw) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oc = w.shape[0], kh = w.shape[2], kw = w.shape[3]
        let window = try ctx.window()
        let group = window.group, offsetGroup = try ctx.int("offset_group", 1)
        guard offsetGroup >= 1, ic == w.shape[1] * group, oc % group == 0, ic % offsetGroup == 0 else {
            throw ctx.fail("X \(x.shape), W \(w.shape) do not fit group \(group) and offset_group \(offsetGroup)")
        }
        let oh = off.shape[2], ow = off.shape[3]
        guard off.shape[0] == n, off.shape[1] == offsetGroup * kh * kw * 2 else { throw ctx.fail("offset \(off.shape) does not fit the kernel and offset_group") }
        let (strides, dil, pads) = try ctx.attribute { () throws(GraphError) in
            (try window.strides(rank: 2), try window.dilations(rank: 2), try window.pads(rank: 2))
        }
        let b = try bias(ctx, 3, channels: oc)
        let mask = ctx.optionalInput(4)?.doubles()
        if let mask, mask.count != n * offsetGroup * kh * kw * oh * ow { throw ctx.fail("mask has \(mask.count) values, expected \(n * offsetGroup * kh * kw * oh * ow)") }
        let xv = x.doubles(), wv = w.doubles(), ov = off.doubles()
        let icg = w.shape[1], ocg = oc / group, icPerOffset = ic / offsetGroup
        func sample(_ plane: Int, _ h: Double, _ wpos: Double) -> Double {
            // Beyond one pixel outside (or NaN) every neighbour is padding.
            guard h > -2, h < Double(ih + 1), wpos > -2, wpos < Double(iw + 1) else { return 0 }
            let h0 = Int(h.rounded(.down)), w0 = Int(wpos.rounded(.down))
            let fh = h - Double(h0), fw = wpos - Double(w0)
            var s = 0.0
            for (dh, wh) in [(0, 1 - fh), (1, fh)] {
                for (dw, ww) in [(0, 1 - fw), (1, fw)] {
                    let hh = h0 + dh, ww2 = w0 + dw
                    if hh >= 0, hh < ih, ww2 >= 0, ww2 < iw, wh * ww != 0 { s += wh * ww * xv[plane + hh * iw + ww2] }
                }
            }
            return s
        }
        var y = [Double](repeating: 0, count: n * oc * oh * ow)
        let ohw = oh * ow
        for bi in 0..<n {
            for ci in 0..<ic {
                let og = ci / icPerOffset
                let plane = (bi * ic + ci) * ih * iw
                let gi = ci / icg
                // Sample the deformed taps of this channel once, then weight them for every
                // output channel of its group.
                var samples = [Double](repeating: 0, count: kh * kw * ohw)
                for i in 0..<kh {
                    for j in 0..<kw {
                        let tap = i * kw + j
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let pos = oy * ow + ox
                                let offBase = ((bi * offsetGroup + og) * kh * kw + tap) * 2
                                let dh = ov[offBase * ohw + pos], dw = ov[(offBase + 1) * ohw + pos]
                                let h = Double(oy * strides[0] - pads[0] + i * dil[0]) + dh
                                let wq = Double(ox * strides[1] - pads[1] + j * dil[1]) + dw
                                var v = sample(plane, h, wq)
                                if let mask { v *= mask[((bi * offsetGroup + og) * kh * kw + tap) * ohw + pos] }
                                samples[tap * ohw + pos] = v
                            }
                        }
                    }
                }
                for mo in 0..<ocg {
                    let o = gi * ocg + mo
                    let wBase = (o * icg + ci % icg) * kh * kw
                    let yBase = (bi * oc + o) * ohw
                    for tap in 0..<(kh * kw) {
                        let wt = wv[wBase + tap]
                        for pos in 0..<ohw { y[yBase + pos] += wt * samples[tap * ohw + pos] }
                    }
                }
            }
            if let b { for o in 0..<oc { for pos in 0..<ohw { y[(bi * oc + o) * ohw + pos] += b[o] } } }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [n, oc, oh, ow])]
    }
}
