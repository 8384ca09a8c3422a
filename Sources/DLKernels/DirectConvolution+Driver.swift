import CKernels

/// What the direct convolution kernels share: padding each image into scratch, splitting the
/// work over the workers, and the Winograd weights.
extension Convolution {
    /// Calls `body(n, g, source, lo, hi)` for every image `n` and group `g` of `p` over all of
    /// `units` (output rows, pooled row pairs or Winograd tile rows: whatever `body` counts), with
    /// `source` the image's group zero-padded in scratch (the input itself when `p` has no pads).
    ///
    /// At least as many images as workers, or little work: whole images per worker, each padding
    /// into its own scratch. Fewer images than workers: each image padded once, then its units
    /// split into `splitParts` parts. `unitCost` is the multiply-adds of one unit.
    ///
    /// With `paddedRows` (the padded rows that units [lo, hi) read; stride 1 only), fewer images
    /// than workers are not padded once before the split: each part pads just those rows into a
    /// full-size plane of its own scratch. The copy is then split too, and a worker reads rows
    /// that it, not another core, has just written (resnet's 32 × 32 Winograd convolutions at
    /// batch 1 on 2 threads spent a quarter of the caller's time padding while the other waited).
    ///
    /// With `privateCopies` (strided only), fewer images than workers are split into phase
    /// planes by each part into its own scratch, whole: every part reads all of the input's
    /// channels (it computes a share of the output channels), and reading planes another core has
    /// just written cost more than copying them again (resnet's 32 -> 64 channel stride-2
    /// convolution onto 16 × 16 at batch 1 ran slower on two threads than on one).
    /// - Returns: false when some call of `body` returned false.
    static func forEachPaddedImage(
        _ p: Conv2DParams, input: UnsafePointer<Float>, units: Int, unitCost: Int, splitParts: Int,
        paddedRows: ((_ lo: Int, _ hi: Int) -> Range<Int>)? = nil, privateCopies: Bool = false,
        _ body: (_ n: Int, _ g: Int, _ source: UnsafePointer<Float>, _ lo: Int, _ hi: Int) -> Bool
    ) -> Bool {
        let cg = p.inChannelsPerGroup
        let hp = p.inH + p.padTop + p.padBottom, wp = p.inW + p.padLeft + p.padRight
        // Strided, the padded image is split into phase planes (see `dlk_pad2d_phases`), each
        // rounded up to whole phase rows and columns.
        let strided = p.strideH > 1 || p.strideW > 1
        let plane = strided ? p.strideH * p.strideW * ((hp + p.strideH - 1) / p.strideH) * ((wp + p.strideW - 1) / p.strideW) : hp * wp
        let padded = p.padTop + p.padBottom + p.padLeft + p.padRight > 0 || strided

        /// Image n, group g, into `dst` with zero borders; false when a strided copy could not be
        /// made (no scratch for `dlk_pad2d_phases`).
        func pad(_ n: Int, _ g: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
            let src = input + (n * p.inChannels + g * cg) * p.inH * p.inW
            // One C loop instead of a copy call per row (this path runs only with AVX-512), its
            // channels split over the workers: alone on the caller, it left the second thread
            // waiting (a 3 -> 16 channel stride-2 convolution on 320 x 320 ran no faster on two).
            let flags = UnsafeMutableBufferPointer<Bool>.allocate(capacity: cg)
            flags.initialize(repeating: false)
            defer { flags.deallocate() }
            ParallelFor.run(cg, cost: plane) { lo, hi in
                flags[lo] = dlk_pad2d_phases(src + lo * p.inH * p.inW, Int32(hi - lo), Int32(p.inH), Int32(p.inW),
                                             Int32(p.padTop), Int32(p.padLeft), Int32(p.padBottom), Int32(p.padRight),
                                             Int32(p.strideH), Int32(p.strideW), dst + lo * plane) != 0
            }
            if !flags.contains(true) { return true }
            guard !strided else { return false }
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
            return true
        }

        func source(_ n: Int, _ g: Int, _ scratch: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float>? {
            guard let scratch else { return input + (n * p.inChannels + g * cg) * p.inH * p.inW }
            return pad(n, g, into: scratch) ? UnsafePointer(scratch) : nil
        }

        let workers = ParallelFor.workerCount
        if p.batch >= workers || workers == 1 || p.batch * units * unitCost < 1 << 18 || !ParallelFor.canSplit {
            // One flag per chunk start, so no two chunks write the same memory.
            let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: p.batch)
            failed.initialize(repeating: false)
            defer { failed.deallocate() }
            ParallelFor.run(p.batch, cost: units * unitCost) { lo, hi in
                let scratch = padded ? ConvolutionScratch.shared.take(cg * plane) : nil
                defer { if let scratch { ConvolutionScratch.shared.give(scratch) } }
                for n in lo..<hi {
                    for g in 0..<p.groups {
                        guard let src = source(n, g, scratch?.pointer), body(n, g, src, 0, units) else { failed[lo] = true; continue }
                    }
                }
            }
            return !failed.contains(true)
        }
        let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(1, units))
        defer { failed.deallocate() }
        if padded, strided ? privateCopies : paddedRows != nil {
            for n in 0..<p.batch {
                for g in 0..<p.groups {
                    failed.initialize(repeating: false)
                    ParallelFor.split(units, parts: splitParts) { lo, hi in
                        let scratch = ConvolutionScratch.shared.take(cg * plane)
                        defer { ConvolutionScratch.shared.give(scratch) }
                        let src = input + (n * p.inChannels + g * cg) * p.inH * p.inW
                        let ready = if strided {
                            dlk_pad2d_phases(src, Int32(cg), Int32(p.inH), Int32(p.inW), Int32(p.padTop), Int32(p.padLeft),
                                             Int32(p.padBottom), Int32(p.padRight), Int32(p.strideH), Int32(p.strideW), scratch.pointer) == 0
                        } else {
                            paddedRows.map { $0(lo, hi) }.map { rows in
                                dlk_pad2d(src, Int32(cg), Int32(p.inH), Int32(p.inW), Int32(p.padTop), Int32(p.padLeft),
                                          Int32(p.padBottom), Int32(p.padRight), Int32(rows.lowerBound), Int32(rows.upperBound),
                                          scratch.pointer) == 0
                            } ?? false || pad(n, g, into: scratch.pointer)
                        }
                        if !ready || !body(n, g, scratch.pointer, lo, hi) { failed[lo] = true }
                    }
                    if failed.contains(true) { return false }
                }
            }
            return true
        }
        let scratch = padded ? ConvolutionScratch.shared.take(cg * plane) : nil
        defer { if let scratch { ConvolutionScratch.shared.give(scratch) } }
        for n in 0..<p.batch {
            for g in 0..<p.groups {
                guard let src = source(n, g, scratch?.pointer) else { return false }
                failed.initialize(repeating: false)
                ParallelFor.split(units, parts: splitParts) { lo, hi in
                    if !body(n, g, src, lo, hi) { failed[lo] = true }
                }
                if failed.contains(true) { return false }
            }
        }
        return true
    }

    /// True when `p` takes the Winograd path: 3 × 3, stride and dilation 1, one group, at least 16 input
    /// and output channels (the 16 GEMMs of the transform run on k = input channels) and
    /// ``KernelOptions/winograd`` on. Output sizes may be odd: the plain kernel drops the extra
    /// row or column of the last tiles, and the pooled one stops its tiles before an odd size's
    /// last row or column, which the pool drops.
    static func winogradApplies(_ p: Conv2DParams) -> Bool {
        let hp = p.inH + p.padTop + p.padBottom, wp = p.inW + p.padLeft + p.padRight
        return p.kernelH == 3 && p.kernelW == 3 && p.strideH == 1 && p.strideW == 1 && p.dilationH == 1 && p.dilationW == 1 && p.groups == 1
            && p.inChannelsPerGroup >= 16 && p.outChannelsPerGroup >= 16
            && hp >= p.outH + 2 && wp >= p.outW + 2 && KernelOptions.current.winograd
    }

    /// Winograd F(2×2, 3×3) weights (see `dlk_conv3x3_wino`) when `p` takes that path
    /// (``winogradApplies(_:)``). Transformed once per packed weight matrix and kept; if that cache declines, into
    /// `scratch`, which the caller gives back to ``ConvolutionScratch``. Nil when not taken.
    static func winogradWeights(_ p: Conv2DParams, weights: [PackedMatrix], rawWeights: UnsafePointer<Float>?)
        -> (weights: UnsafePointer<Float>, scratch: ConvolutionScratch.Buffer?)?
    {
        let cg = p.inChannelsPerGroup, ocg = p.outChannelsPerGroup
        guard let rawWeights, let first = weights.first, winogradApplies(p) else { return nil }
        if let cached = WinogradWeights.shared.transformed(for: first, raw: rawWeights, m: ocg, cin: cg) {
            return (cached, nil)
        }
        let scratch = ConvolutionScratch.shared.take(16 * ocg * cg)
        dlk_wino_weights(rawWeights, Int32(ocg), Int32(cg), scratch.pointer)
        return (UnsafePointer(scratch.pointer), scratch)
    }
}
