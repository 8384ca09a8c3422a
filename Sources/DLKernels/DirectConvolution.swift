import CKernels

/// Convolution at strides 1 and 2 without an im2col matrix, on the AVX-512 micro-kernel of
/// `CKernels`.
///
/// Each image (and group) is copied once into a zero-padded plane; the kernel then reads the
/// input for kernel tap (channel, i, j) as 32 neighbouring pixels of one padded row, at a fixed
/// offset from the output pixel, and multiplies them with the packed weights. (Where rows are
/// short, the 32 pixels run on across row ends and the columns between rows are dropped. At
/// stride 2 along rows, the copy stores each row's even columns, then its odd ones, so a tap's
/// inputs are neighbours again.) im2col wrote and OpenBLAS repacked a `cin·kh·kw × pixels`
/// matrix per call; here the only extra pass is the padding copy (one input-sized write). Bias,
/// residual and activation run in the kernel's epilogue while the results are in registers (the
/// residual read where it lies; on the Winograd path it is first copied into the output, which
/// the epilogue then accumulates onto).
extension Convolution {
    /// True when ``conv2DDirect(_:input:weights:bias:residual:output:activation:)`` takes `p`:
    /// strides 1 or 2 and the packed kernels supported here. (Stride 2 along rows reads the
    /// padded copy's rows stored as even columns, then odd ones: the taps' inputs are again
    /// neighbouring floats.)
    public static func directApplies(_ p: Conv2DParams) -> Bool {
        PackedMatrix.isSupported && (1...2).contains(p.strideH) && (1...2).contains(p.strideW)
    }

    /// True when the direct kernel is the faster choice for `p` (which it takes): output rows of
    /// at least 8 pixels, or shorter rows that fill at least a third of the kernel's tiles when
    /// the tiles run on across row ends (`dlk_conv2d_direct` then wraps them). Its tiles are 32
    /// pixels, so a short row on its own leaves most lanes idle and im2col with a GEMM wins
    /// (silero-vad's 1-D convolutions over 3 frames: 0.14 against 0.02 ms), while wrapped tiles
    /// win on several short rows (openWakeWord's 1 × 3 convolutions on rows of 2 to 8 pixels).
    ///
    /// Strided, the padded image is split into phase planes (`dlk_pad2d_phases`) in which every
    /// tap reads as at stride 1, so strided tiles wrap across rows too (of ⌈padded width / stride⌉
    /// floats). Before, they could not, and a strided convolution went direct only when its rows
    /// filled 3/4 of their tiles: YOLOv8n's 3 × 3 stride-2 convolutions onto 40, 20 and 10
    /// columns ran im2col + GEMM at about 0.6 of the direct kernel's speed.
    public static func directPays(_ p: Conv2DParams) -> Bool {
        let wp = p.inW + p.padLeft + p.padRight
        if p.strideH != 1 || p.strideW != 1 {
            return stridedDirectPays(outH: p.outH, outW: p.outW, rowWidth: (wp + p.strideW - 1) / p.strideW,
                                     kernelH: p.kernelH, kernelW: p.kernelW)
        }
        return wrappedTilesPay(outH: p.outH, outW: p.outW, rowWidth: wp)
    }

    /// Output rows of at least 8 pixels, or rows `rowWidth` apart that, laid end to end, fill at
    /// least a third of the kernel's 32-pixel tiles.
    static func wrappedTilesPay(outH: Int, outW: Int, rowWidth: Int) -> Bool {
        if outW >= 8 { return true }
        let tiles = ((outH - 1) * rowWidth + outW + 31) / 32
        return 3 * outH * outW >= tiles * 32
    }

    /// The strided half of ``directPays(_:)``: a 2-D kernel (where it was measured to pay: 3 × 3
    /// and larger image convolutions) whose wrapped tiles pay. A strided kernel of one row or
    /// column, as a CQT's long decimation filters (basic-pitch: 1 × 256, stride 2), keeps im2col
    /// + GEMM: one accumulator over its 256 taps moved the outputs further from ONNX Runtime's
    /// (max difference 1.9e-5 → 2.8e-5) and TFLite's. (Plans ask this before packing a strided
    /// convolution's weights, with `rowWidth` from the output's width.)
    public static func stridedDirectPays(outH: Int, outW: Int, rowWidth: Int, kernelH: Int, kernelW: Int) -> Bool {
        kernelH > 1 && kernelW > 1 && wrappedTilesPay(outH: outH, outW: outW, rowWidth: rowWidth)
    }

    /// `output = act(conv(input, weight) + bias + residual)` for a convolution of strides 1 or 2 whose
    /// weights were packed per group with ``PackedMatrix/rowBlocks(_:m:k:)``
    /// (`m = outChannelsPerGroup`, `k = inChannelsPerGroup · kernelH · kernelW`).
    /// - Returns: false when it did not run (a shape it does not take, packed weights of another
    ///   shape, or scratch memory that could not be had); the output is then not fully written
    ///   and the caller runs ``conv2D(_:input:weight:bias:residual:output:activation:)``.
    public static func conv2DDirect(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weights: [PackedMatrix],
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, rawWeights: UnsafePointer<Float>? = nil
    ) -> Bool {
        let cg = p.inChannelsPerGroup, ocg = p.outChannelsPerGroup
        let kDim = cg * p.kernelH * p.kernelW
        guard directApplies(p), weights.count == p.groups, p.outH >= 1, p.outW >= 1,
              weights.allSatisfy({ $0.arrangement == .rowBlocks && $0.rows == ocg && $0.columns == kDim }) else { return false }
        let winograd = winogradWeights(p, weights: weights, rawWeights: rawWeights)
        defer { if let scratch = winograd?.scratch { ConvolutionScratch.shared.give(scratch) } }
        let wino = winograd?.weights
        /// Rows per band: 2 on the Winograd path (one tile row), else 1.
        let step = wino != nil ? 2 : 1
        // Winograd's 2 × 2 output tiles read one more zero row (column) past an odd output height
        // (width): the padded copy gets it.
        var source = p
        if wino != nil {
            source.padBottom += p.outH % 2
            source.padRight += p.outW % 2
        }
        let hp = source.inH + source.padTop + source.padBottom, wp = source.inW + source.padLeft + source.padRight
        let plane = hp * wp, outPlane = p.outH * p.outW
        guard cg * plane <= Int(Int32.max), hp <= Int(Int32.max), wp <= Int(Int32.max) else { return false }

        /// One image and group, output rows [r0, r1) of the output channels of part `part` of
        /// `parts` (`dlk_conv2d_part_channels`), from `src` (padded or the input itself).
        func rows(_ n: Int, _ g: Int, _ src: UnsafePointer<Float>, _ r0: Int, _ r1: Int, part: Int, parts: Int) -> Bool {
            let base = (n * p.outChannels + g * ocg) * outPlane
            let y = output + base
            var c0: Int32 = 0, c1 = Int32(ocg)
            if parts > 1 { dlk_conv2d_part_channels(Int32(ocg), Int32(part), Int32(parts), &c0, &c1) }
            var e = GEMMEpilogue(accumulate: residual != nil, rowBias: bias.map { $0 + g * ocg }, activation: activation,
                                 rowSlope: activation.slopes(from: g * ocg)).c()
            // The direct kernel reads the residual where it lies; Winograd's output transform
            // adds what the output holds, so the residual is copied there first.
            if let residual, wino == nil {
                e.c_source = residual + base
            } else if let residual {
                for c in Int(c0)..<Int(c1) {
                    let at = c * outPlane + r0 * p.outW
                    (y + at).update(from: residual + base + at, count: (min(r1, p.outH) - r0) * p.outW)
                }
            }
            if let u = wino {
                return dlk_conv3x3_wino(src, Int32(cg), Int32(hp), Int32(wp), Int32(p.outH), Int32(p.outW),
                                        Int32(r0 / 2), Int32(r1 / 2), u, Int32(ocg), c0, c1, y, outPlane, &e) == 0
            }
            return dlk_conv2d_direct(src, Int32(cg), Int32(hp), Int32(wp), Int32(p.kernelH), Int32(p.kernelW),
                                     Int32(p.strideH), Int32(p.strideW), Int32(p.dilationH), Int32(p.dilationW),
                                     Int32(p.outH), Int32(p.outW), Int32(r0), Int32(r1), weights[g].storage, Int32(ocg),
                                     Int32(part), Int32(parts), y, outPlane, &e) == 0
        }

        let workers = ParallelFor.workerCount
        let bands = (p.outH + step - 1) / step
        // Winograd bands of at least 32 tiles where the image has them (one full GEMM block:
        // a 16×16 output in 4 bands left each block half empty).
        let fullBlocks = wino != nil ? max(1, bands * ((p.outW + 1) / 2) / 32) : bands
        // Too few rows for the workers (a 1 × 1 convolution's plane flattened into one row, a 1-D
        // convolution): they share out the output channels too, at least 16 each. Before, such an
        // image ran on one worker (MobileNetV3's 1 × 1 convolutions gained 1.1x from a second).
        // A small strided image (its output at most 32 × 32): each worker takes the whole image
        // for its share of the output channels, as row bands cut its wrapped tiles short
        // (resnet's stride-2 convolutions onto 16 × 16, batch 1, 2 threads: the model took
        // 0.42 ms in row bands, 0.39-0.40 so, 0.37-0.41 on im2col + GEMM before the phase planes).
        let smallStrided = wino == nil && workers > 1 && p.batch < workers && (p.strideH > 1 || p.strideW > 1)
            && p.outH * p.outW <= 1024 && ocg >= 32
        // Winograd at batch 1 where sharing out the channels leaves each worker fewer GEMM blocks
        // (32 tiles by its channels) than cutting the tile rows does (YOLOv8n's 10 × 10 and
        // 20 × 20 layers: parts of mostly empty blocks, and a second thread gained nothing on
        // 10 × 10), and the image has fewer tiles than twice the output channels: each worker
        // then transforms the whole input, which cost more than the emptier blocks saved on more
        // tiles (2 threads, 32 -> 32 channels on 40 × 40: 0.22 ms by channels, 0.156 by tile rows;
        // 32 on 80 × 80 0.67 -> 0.46; 64 on 20 × 20 0.141 by channels, 0.167 by rows). At equal
        // blocks the tile rows win: each part then transforms only its tiles.
        let tilesPerRow = (p.outW + 1) / 2, rowParts = min(bands, workers * 2, max(workers, fullBlocks))
        let rowBlocks = (rowParts + workers - 1) / workers * (((bands + rowParts - 1) / rowParts * tilesPerRow + 31) / 32) * ocg
        let channelBlocks = (bands * tilesPerRow + 31) / 32 * ((ocg + workers - 1) / workers)
        let smallWinograd = wino != nil && workers > 1 && p.batch < workers && ocg >= 32 && channelBlocks < rowBlocks
            && bands * tilesPerRow < 2 * ocg
        let channelParts = smallStrided || smallWinograd ? min(workers, ocg / 16)
            : wino == nil && workers > 1 && p.batch < workers && bands < 2 * workers
            ? max(1, min((2 * workers + bands - 1) / bands, ocg / 16)) : 1
        let units = bands * channelParts
        return forEachPaddedImage(source, input: input, units: units, unitCost: step * p.outChannels / channelParts * p.outW * kDim,
                                  splitParts: smallStrided || smallWinograd ? channelParts : min(units, workers * 2, max(workers, fullBlocks * channelParts)),
                                  // A Winograd tile row t reads padded rows 2t to 2t + 3; a part of whole
                                  // channel slices reads them all.
                                  paddedRows: wino != nil ? { lo, hi in
                                      lo / bands != (hi - 1) / bands || hi - lo >= bands
                                          ? 0..<hp : (2 * (lo % bands))..<(2 * ((hi - 1) % bands) + 4)
                                  } : nil, privateCopies: smallStrided) { n, g, src, lo, hi in
            // Unit u is band u % bands of channel part u / bands.
            var u = lo
            while u < hi {
                let part = u / bands, end = min(hi, (part + 1) * bands)
                if !rows(n, g, src, (u - part * bands) * step, (end - part * bands) * step, part: part, parts: channelParts) {
                    return false
                }
                u = end
            }
            return true
        }
    }
}
