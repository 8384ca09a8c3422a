import CKernels

/// A stride-1 convolution followed by a 2×2 stride-2 max pool, on the AVX-512 kernels: each
/// pair of output rows is pooled while it is in cache, so the full-resolution activation is
/// never written (a CNN's Conv → Relu → MaxPool; at batch 32 the skipped tensor was 16 MB).
extension Convolution {
    /// True when ``conv2DDirectMaxPool2(_:input:weights:bias:output:activation:)`` may take `p`.
    public static func directMaxPool2Applies(_ p: Conv2DParams) -> Bool {
        directApplies(p) && p.outH >= 2 && p.outW >= 2
    }

    /// `output = maxPool2x2(act(conv(input, weight) + bias))`, the pool 2×2 with stride 2, no
    /// padding, floor: output [batch][outChannels][outH / 2][outW / 2]. Weights packed as for
    /// ``conv2DDirect(_:input:weights:bias:residual:output:activation:)``.
    /// - Returns: false when it did not run (then the output is not fully written and the caller
    ///   runs the convolution and the pool apart).
    public static func conv2DDirectMaxPool2(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weights: [PackedMatrix],
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation,
        rawWeights: UnsafePointer<Float>? = nil
    ) -> Bool {
        let cg = p.inChannelsPerGroup, ocg = p.outChannelsPerGroup
        let kDim = cg * p.kernelH * p.kernelW
        guard directMaxPool2Applies(p), weights.count == p.groups,
              weights.allSatisfy({ $0.arrangement == .rowBlocks && $0.rows == ocg && $0.columns == kDim }) else { return false }
        let hp = p.inH + p.padTop + p.padBottom, wp = p.inW + p.padLeft + p.padRight
        let plane = hp * wp
        let ph = p.outH / 2, pw = p.outW / 2, outPlane = ph * pw
        let padded = p.padTop + p.padBottom + p.padLeft + p.padRight > 0
        guard cg * plane <= Int(Int32.max), hp <= Int(Int32.max), wp <= Int(Int32.max) else { return false }

        // Winograd F(2×2, 3×3) when each 2×2 output tile is one pooling window and there are
        // enough channels for its 16 GEMMs (k = input channels) to run near the kernel's peak.
        let winograd = rawWeights != nil && p.kernelH == 3 && p.kernelW == 3 && p.dilationH == 1 && p.dilationW == 1
            && p.groups == 1 && cg >= 16 && ocg >= 16 && p.outH % 2 == 0 && p.outW % 2 == 0
            && hp >= p.outH + 2 && wp >= p.outW + 2 && dlk_winograd_enabled() != 0
        // Transformed once per packed weight matrix (kept), else once per call into scratch.
        let cached = winograd ? rawWeights.flatMap { WinogradWeights.shared.transformed(for: weights[0], raw: $0, m: ocg, cin: cg) } : nil
        let transformed = winograd && cached == nil ? ConvolutionScratch.shared.take(16 * ocg * cg) : nil
        defer { if let transformed { ConvolutionScratch.shared.give(transformed) } }
        if let transformed, let rawWeights { dlk_wino_weights(rawWeights, Int32(ocg), Int32(cg), transformed.pointer) }
        let wino: UnsafePointer<Float>? = cached ?? transformed.map { UnsafePointer($0.pointer) }

        func rows(_ n: Int, _ g: Int, _ src: UnsafePointer<Float>, _ r0: Int, _ r1: Int) -> Bool {
            let y = output + (n * p.outChannels + g * ocg) * outPlane
            var e = GEMMEpilogue(rowBias: bias.map { $0 + g * ocg }, activation: activation).c()
            if let u = wino {
                return dlk_conv3x3_wino_maxpool2(src, Int32(cg), Int32(hp), Int32(wp), Int32(p.outH), Int32(p.outW),
                                                 Int32(r0), Int32(r1), u, Int32(ocg), y, outPlane, &e) == 0
            }
            return dlk_conv2d_s1_maxpool2(src, Int32(cg), Int32(hp), Int32(wp), Int32(p.kernelH), Int32(p.kernelW),
                                          Int32(p.dilationH), Int32(p.dilationW), Int32(p.outH), Int32(p.outW),
                                          Int32(r0), Int32(r1), weights[g].storage, Int32(ocg), y, outPlane, &e) == 0
        }

        func pad(_ n: Int, _ g: Int, into dst: UnsafeMutablePointer<Float>) {
            let src = input + (n * p.inChannels + g * cg) * p.inH * p.inW
            // One C loop (AVX-512, which this path requires anyway) instead of a copy call per row.
            if dlk_pad2d(src, Int32(cg), Int32(p.inH), Int32(p.inW), Int32(p.padTop), Int32(p.padLeft),
                         Int32(p.padBottom), Int32(p.padRight), dst) == 0 { return }
            for c in 0..<cg {
                let d = dst + c * plane
                d.update(repeating: 0, count: p.padTop * wp)
                for r in 0..<p.inH {
                    let row = d + (p.padTop + r) * wp
                    row.update(repeating: 0, count: p.padLeft)
                    (row + p.padLeft).update(from: src + (c * p.inH + r) * p.inW, count: p.inW)
                    (row + p.padLeft + p.inW).update(repeating: 0, count: p.padRight)
                }
                (d + (p.padTop + p.inH) * wp).update(repeating: 0, count: p.padBottom * wp)
            }
        }

        func source(_ n: Int, _ g: Int, _ scratch: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float> {
            if let scratch {
                pad(n, g, into: scratch)
                return UnsafePointer(scratch)
            }
            return input + (n * p.inChannels + g * cg) * p.inH * p.inW
        }

        let workers = ParallelFor.workerCount
        let pairCost = 2 * p.outChannels * p.outW * kDim
        if p.batch >= workers || workers == 1 || p.batch * ph * pairCost < 1 << 18 || !ParallelFor.canSplit {
            let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: p.batch)
            failed.initialize(repeating: false)
            defer { failed.deallocate() }
            ParallelFor.run(p.batch, cost: ph * pairCost) { lo, hi in
                let scratch = padded ? ConvolutionScratch.shared.take(cg * plane) : nil
                defer { if let scratch { ConvolutionScratch.shared.give(scratch) } }
                for n in lo..<hi {
                    for g in 0..<p.groups where !rows(n, g, source(n, g, scratch?.pointer), 0, ph) { failed[lo] = true }
                }
            }
            return !failed.contains(true)
        }
        // Fewer images than workers: pad each image once, then split its pooled rows.
        let scratch = padded ? ConvolutionScratch.shared.take(cg * plane) : nil
        defer { if let scratch { ConvolutionScratch.shared.give(scratch) } }
        let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: ph)
        defer { failed.deallocate() }
        for n in 0..<p.batch {
            for g in 0..<p.groups {
                let src = source(n, g, scratch?.pointer)
                failed.initialize(repeating: false)
                ParallelFor.split(ph, parts: min(ph, workers * 2)) { lo, hi in
                    if !rows(n, g, src, lo, hi) { failed[lo] = true }
                }
                if failed.contains(true) { return false }
            }
        }
        return true
    }
}
