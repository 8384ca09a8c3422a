import DLGraph
import DLKernels
import DLTensor
import Foundation

extension Rules {
    static let neural: [(String, GradientRule)] = [
        ("MaxPool", pool(max: true)), ("AveragePool", pool(max: false)), ("GlobalAveragePool", globalAveragePool),
        ("BatchNormalization", batchNorm), ("LayerNormalization", layerNorm), ("Dropout", dropout),
    ]

    struct Window {
        var batchChannels: Int, inH: Int, inW: Int, outH: Int, outW: Int
        var kH: Int, kW: Int, sH: Int, sW: Int, pT: Int, pL: Int, pB: Int, pR: Int, dH: Int, dW: Int
    }

    static func window(_ c: RuleContext, x: Tensor, y: Tensor) throws(AutogradError) -> Window {
        guard x.rank == 3 || x.rank == 4 else { throw c.unsupported("only 1-D and 2-D pooling is differentiable") }
        let oneD = x.rank == 3
        let kernel = try c.ints("kernel_shape") ?? []
        guard kernel.count == x.rank - 2 else { throw c.fail("kernel_shape must have \(x.rank - 2) values") }
        let strides = try c.ints("strides") ?? [Int](repeating: 1, count: kernel.count)
        let dil = try c.ints("dilations") ?? [Int](repeating: 1, count: kernel.count)
        var pads = try c.ints("pads") ?? [Int](repeating: 0, count: 2 * kernel.count)
        let autoPad = try c.string("auto_pad", "NOTSET")
        let d = kernel.count
        let inSp = Array(x.shape.dropFirst(2)), outSp = Array(y.shape.dropFirst(2))
        if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            pads = [Int](repeating: 0, count: 2 * d)
            for i in 0..<d {
                let total = max(0, (outSp[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - inSp[i])
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[i + d] = total - pads[i]
            }
        } else if autoPad == "VALID" {
            pads = [Int](repeating: 0, count: 2 * d)
        }
        let bc = x.shape[0] * x.shape[1]
        if oneD {
            return Window(batchChannels: bc, inH: 1, inW: inSp[0], outH: 1, outW: outSp[0], kH: 1, kW: kernel[0], sH: 1,
                          sW: strides[0], pT: 0, pL: pads[0], pB: 0, pR: pads[1], dH: 1, dW: dil[0])
        }
        return Window(batchChannels: bc, inH: inSp[0], inW: inSp[1], outH: outSp[0], outW: outSp[1], kH: kernel[0], kW: kernel[1],
                      sH: strides[0], sW: strides[1], pT: pads[0], pL: pads[1], pB: pads[2], pR: pads[3], dH: dil[0], dW: dil[1])
    }

    /// MaxPool sends each output gradient to the first maximum of its window; AveragePool spreads
    /// it evenly over the taps counted by the divisor.
    static func pool(max isMax: Bool) -> GradientRule {
        { c throws(AutogradError) in
            let x = try c.input(0)
            guard let y = c.outputs.first else { throw c.fail("no output recorded") }
            let w = try window(c, x: x, y: y)
            let includePad = try c.int("count_include_pad", 0) != 0
            let xT = Ops.float32(x)
            let gT = c.outputGrads.first.flatMap { $0 }.map(Ops.float32) ?? Tensor(zeros: .float32, shape: y.shape)
            var gxT = Tensor(zeros: .float32, shape: x.shape)
            let inPlane = w.inH * w.inW, outPlane = w.outH * w.outW
            xT.withUnsafeBufferPointer(as: Float.self) { xv in
            gT.withUnsafeBufferPointer(as: Float.self) { g in
            gxT.withUnsafeMutableBufferPointer(as: Float.self) { gx in
            if isMax {
                guard let x0 = xv.baseAddress, let g0 = g.baseAddress, let gx0 = gx.baseAddress else { return }
                TrainingBackward.maxPool2DBackward(
                    x: x0, gradient: g0, into: gx0, planes: w.batchChannels, inH: w.inH, inW: w.inW, outH: w.outH,
                    outW: w.outW, kernelH: w.kH, kernelW: w.kW, strideH: w.sH, strideW: w.sW, padTop: w.pT, padLeft: w.pL,
                    dilationH: w.dH, dilationW: w.dW)
                return
            }
            for p in 0..<w.batchChannels {
                for oh in 0..<w.outH {
                    for ow in 0..<w.outW {
                        let gv = g[p * outPlane + oh * w.outW + ow]
                        let h0 = oh * w.sH - w.pT, w0 = ow * w.sW - w.pL
                        if isMax {
                            var best = -1
                            var bestValue = -Float.infinity
                            search: for kh in 0..<w.kH {
                                let ih = h0 + kh * w.dH
                                if ih < 0 || ih >= w.inH { continue }
                                for kw in 0..<w.kW {
                                    let iw = w0 + kw * w.dW
                                    if iw < 0 || iw >= w.inW { continue }
                                    let idx = p * inPlane + ih * w.inW + iw
                                    let v = xv[idx]
                                    if best < 0 || v > bestValue || v.isNaN { best = idx; bestValue = v }
                                    if v.isNaN { break search }
                                }
                            }
                            if best >= 0 { gx[best] += gv }
                        } else {
                            var count = 0, padded = 0
                            for kh in 0..<w.kH {
                                let ih = h0 + kh * w.dH
                                let inPadH = ih >= -w.pT && ih < w.inH + w.pB
                                for kw in 0..<w.kW {
                                    let iw = w0 + kw * w.dW
                                    if inPadH && iw >= -w.pL && iw < w.inW + w.pR { padded += 1 }
                                    if ih >= 0 && ih < w.inH && iw >= 0 && iw < w.inW { count += 1 }
                                }
                            }
                            let divisor = includePad ? padded : count
                            guard divisor > 0 else { continue }
                            let share = gv / Float(divisor)
                            for kh in 0..<w.kH {
                                let ih = h0 + kh * w.dH
                                if ih < 0 || ih >= w.inH { continue }
                                for kw in 0..<w.kW {
                                    let iw = w0 + kw * w.dW
                                    if iw >= 0 && iw < w.inW { gx[p * inPlane + ih * w.inW + iw] += share }
                                }
                            }
                        }
                    }
                }
            }
            }}}
            return [gxT]
        }
    }

    static let globalAveragePool: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard x.rank >= 2 else { throw c.fail("input must have a channel axis") }
        let plane = x.shape.dropFirst(2).reduce(1, *)
        let g = c.grad()
        var gx = [Float](repeating: 0, count: x.elementCount)
        for p in 0..<(x.shape[0] * x.shape[1]) {
            let v = g[p] / Float(plane)
            for i in 0..<plane { gx[p * plane + i] = v }
        }
        return [Ops.tensor(x.shape, gx)]
    }

    /// Per-channel batch statistics of an NCHW... tensor: (mean, biased variance), in Double.
    static func channelStats(_ xv: [Float], shape: [Int]) -> (mean: [Double], variance: [Double], count: Int) {
        let n = shape[0], ch = shape[1], plane = shape.dropFirst(2).reduce(1, *)
        var mean = [Double](repeating: 0, count: ch), variance = mean
        for cidx in 0..<ch {
            var s = 0.0
            for b in 0..<n { for i in 0..<plane { s += Double(xv[(b * ch + cidx) * plane + i]) } }
            let m = s / Double(n * plane)
            var v = 0.0
            for b in 0..<n { for i in 0..<plane { let d = Double(xv[(b * ch + cidx) * plane + i]) - m; v += d * d } }
            mean[cidx] = m
            variance[cidx] = v / Double(n * plane)
        }
        return (mean, variance, n * plane)
    }

    /// BatchNormalization in training mode: normalises with the batch statistics and updates the
    /// running ones as PyTorch does (`running = momentum * running + (1 - momentum) * batch`, ONNX's
    /// momentum being 1 - PyTorch's; the variance folded in is the unbiased one).
    static let batchNormForward: TrainingForward = { node, inputs, _ throws(AutogradError) in
        func fail(_ r: String) -> AutogradError { .invalidInput(node: node.displayName, reason: r) }
        guard inputs.count >= 5, let x = inputs[0], let scale = inputs[1], let bias = inputs[2],
              let rm = inputs[3], let rv = inputs[4] else { throw fail("needs X, scale, B, mean and var") }
        guard x.rank >= 2 else { throw fail("input must have a channel axis") }
        let eps: Float, momentum: Float
        do throws(GraphError) { eps = try node.float("epsilon", default: 1e-5); momentum = try node.float("momentum", default: 0.9) } catch { throw .runtime(.node(node.displayName, error)) }
        let xv = Ops.floats(x), sv = Ops.floats(scale), bv = Ops.floats(bias)
        let (mean, variance, count) = channelStats(xv, shape: x.shape)
        let ch = x.shape[1], plane = x.shape.dropFirst(2).reduce(1, *)
        guard sv.count == ch, bv.count == ch else { throw fail("scale and B must have \(ch) values") }
        var y = [Float](repeating: 0, count: xv.count)
        var invstd = [Float](repeating: 0, count: ch)
        for cidx in 0..<ch { invstd[cidx] = Float(1 / (variance[cidx] + Double(eps)).squareRoot()) }
        for b in 0..<x.shape[0] {
            for cidx in 0..<ch {
                let m = Float(mean[cidx]), s = invstd[cidx] * sv[cidx], sh = bv[cidx]
                let base = (b * ch + cidx) * plane
                for i in 0..<plane { y[base + i] = (xv[base + i] - m) * s + sh }
            }
        }
        let rmv = Ops.floats(rm), rvv = Ops.floats(rv)
        var newMean = rmv, newVar = rvv
        let unbias = count > 1 ? Double(count) / Double(count - 1) : 1
        for cidx in 0..<min(ch, rmv.count, rvv.count) {
            newMean[cidx] = momentum * rmv[cidx] + (1 - momentum) * Float(mean[cidx])
            newVar[cidx] = momentum * rvv[cidx] + (1 - momentum) * Float(variance[cidx] * unbias)
        }
        let meanT = Ops.tensor([ch], mean.map { Float($0) }), invT = Ops.tensor([ch], invstd)
        var outs = [Ops.tensor(x.shape, y)]
        if node.outputs.count > 1 { outs.append(Ops.tensor(rm.shape, newMean)) }
        if node.outputs.count > 2 { outs.append(Ops.tensor(rv.shape, newVar)) }
        var updates: [(String, Tensor)] = []
        if let n = node.input(3) { updates.append((n, Ops.tensor(rm.shape, newMean))) }
        if let n = node.input(4) { updates.append((n, Ops.tensor(rv.shape, newVar))) }
        return TrainingForwardResult(outputs: outs, saved: [meanT, invT], stateUpdates: updates)
    }

    static let batchNorm: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0), scale = try c.input(1)
        let ch = x.shape[1], n = x.shape[0], plane = x.shape.dropFirst(2).reduce(1, *)
        let xv = Ops.floats(x), sv = Ops.floats(scale), g = c.grad()
        let mean: [Float], invstd: [Float]
        let training = c.saved.count == 2
        if training {
            mean = Ops.floats(c.saved[0])
            invstd = Ops.floats(c.saved[1])
        } else {
            let eps = try c.float("epsilon", 1e-5)
            mean = Ops.floats(try c.input(3))
            invstd = Ops.floats(try c.input(4)).map { 1 / ($0 + eps).squareRoot() }
        }
        var gx = [Float](repeating: 0, count: xv.count)
        var gs = [Float](repeating: 0, count: ch), gb = gs
        let m = Float(n * plane)
        for cidx in 0..<ch {
            var sumG: Float = 0, sumGX: Float = 0
            for b in 0..<n {
                let base = (b * ch + cidx) * plane
                for i in 0..<plane {
                    let xh = (xv[base + i] - mean[cidx]) * invstd[cidx]
                    sumG += g[base + i]
                    sumGX += g[base + i] * xh
                }
            }
            gs[cidx] = sumGX
            gb[cidx] = sumG
            let k = sv[cidx] * invstd[cidx]
            for b in 0..<n {
                let base = (b * ch + cidx) * plane
                for i in 0..<plane {
                    if training {
                        let xh = (xv[base + i] - mean[cidx]) * invstd[cidx]
                        gx[base + i] = k / m * (m * g[base + i] - sumG - xh * sumGX)
                    } else {
                        gx[base + i] = k * g[base + i]
                    }
                }
            }
        }
        return [Ops.tensor(x.shape, gx), Ops.tensor(scale.shape, gs), c.need(2) ? Ops.tensor([ch], gb) : nil]
    }

    /// LayerNormalization over the axes from `axis` on; scale and bias span those axes.
    static let layerNorm: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0), scale = try c.input(1)
        let axis = try c.axis(try c.int("axis", -1), rank: x.rank)
        let eps = try c.float("epsilon", 1e-5)
        let outer = x.shape[..<axis].reduce(1, *), size = x.shape[axis...].reduce(1, *)
        let xv = Ops.floats(x), g = c.grad()
        let sv = Ops.broadcast(Ops.floats(scale), from: scale.shape, to: Array(x.shape[axis...]))
        var gx = [Float](repeating: 0, count: xv.count)
        var gs = [Float](repeating: 0, count: size), gb = gs
        for o in 0..<outer {
            let base = o * size
            var mean = 0.0, v = 0.0
            for i in 0..<size { mean += Double(xv[base + i]) }
            mean /= Double(size)
            for i in 0..<size { let d = Double(xv[base + i]) - mean; v += d * d }
            let inv = Float(1 / (v / Double(size) + Double(eps)).squareRoot())
            var sumA: Float = 0, sumB: Float = 0
            for i in 0..<size {
                let xh = (xv[base + i] - Float(mean)) * inv
                let gh = g[base + i] * sv[i]
                sumA += gh
                sumB += gh * xh
                gs[i] += g[base + i] * xh
                gb[i] += g[base + i]
            }
            for i in 0..<size {
                let xh = (xv[base + i] - Float(mean)) * inv
                let gh = g[base + i] * sv[i]
                gx[base + i] = inv * (gh - sumA / Float(size) - xh * sumB / Float(size))
            }
        }
        var out: [Tensor?] = [Ops.tensor(x.shape, gx), Ops.tensor(scale.shape, Ops.reduce(gs, from: Array(x.shape[axis...]), to: scale.shape))]
        if c.inputs.count > 2, let b = c.inputs[2] { out.append(Ops.tensor(b.shape, Ops.reduce(gb, from: Array(x.shape[axis...]), to: b.shape))) }
        return out
    }

    /// Dropout in training mode: zeroes each element with probability `ratio` (drawn from the
    /// training generator) and scales the rest by 1 / (1 - ratio). A `training_mode` input that is
    /// false makes it the identity, as at inference.
    static let dropoutForward: TrainingForward = { node, inputs, rng throws(AutogradError) in
        guard let x = inputs.first ?? nil else { throw .invalidInput(node: node.displayName, reason: "input 0 is missing") }
        var ratio: Float = 0.5
        if inputs.count > 1, let r = inputs[1] { ratio = Ops.floats(r).first ?? 0.5 } else {
            do throws(GraphError) { ratio = try node.float("ratio", default: 0.5) } catch { throw .runtime(.node(node.displayName, error)) }
        }
        var active = true
        if inputs.count > 2, let t = inputs[2] { active = (t.doubles().first ?? 0) != 0 }
        let xv = Ops.floats(x)
        var mask = [Float](repeating: 1, count: xv.count)
        var y = xv
        if active && ratio > 0 {
            let keep = 1 / (1 - ratio)
            for i in 0..<xv.count {
                let drop = rng.nextUnitFloat() < ratio
                mask[i] = drop ? 0 : keep
                y[i] = xv[i] * mask[i]
            }
        }
        var outs = [Ops.tensor(x.shape, y)]
        if node.outputs.count > 1 { outs.append(Tensor(shape: x.shape, scalars: mask.map { $0 != 0 })) }
        return TrainingForwardResult(outputs: outs, saved: [Ops.tensor(x.shape, mask)])
    }

    static let dropout: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        let g = c.grad()
        guard let mask = c.saved.first else { return [Ops.tensor(x.shape, g)] }
        let mv = Ops.floats(mask)
        return [Ops.tensor(x.shape, zip(g, mv).map { $0 * $1 })]
    }
}
