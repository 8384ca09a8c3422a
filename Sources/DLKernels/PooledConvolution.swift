import CKernels

/// A stride-1 convolution followed by a 2×2 stride-2 max pool, on the AVX-512 kernels: each
/// pair of output rows is pooled while it is in cache, so the full-resolution activation is
/// never written (a CNN's Conv → Relu → MaxPool; at batch 32 the skipped tensor was 16 MB).
extension Convolution {
    /// True when ``conv2DDirectMaxPool2(_:input:weights:bias:output:activation:)`` may take `p`.
    public static func directMaxPool2Applies(_ p: Conv2DParams) -> Bool {
        directApplies(p) && p.strideH == 1 && p.strideW == 1 && p.outH >= 2 && p.outW >= 2
    }

    /// True where the fused kernel beats the convolution and the pool run apart: output rows of
    /// at least 16 pixels. It computes two output rows at a time, so on shorter rows most of its
    /// 32-pixel tiles are idle, where the convolution alone wraps its tiles across rows
    /// (openWakeWord at batch 16: 96 channels 3 x 1 on 8 x 2 0.86 ms fused against ONNX Runtime's
    /// 0.12; the model 21.1 -> 19.4 ms at 1 thread run apart).
    public static func directMaxPool2Pays(_ p: Conv2DParams) -> Bool { directMaxPool2Applies(p) && p.outW >= 16 }

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
        guard cg * plane <= Int(Int32.max), hp <= Int(Int32.max), wp <= Int(Int32.max) else { return false }

        // Winograd when it applies: each 2×2 output tile is then one pooling window. The pool
        // drops an odd size's last row or column, so the tiles stop before it.
        let winograd = winogradWeights(p, weights: weights, rawWeights: rawWeights)
        defer { if let scratch = winograd?.scratch { ConvolutionScratch.shared.give(scratch) } }
        let wino = winograd?.weights

        func rows(_ n: Int, _ g: Int, _ src: UnsafePointer<Float>, _ r0: Int, _ r1: Int) -> Bool {
            let y = output + (n * p.outChannels + g * ocg) * outPlane
            var e = GEMMEpilogue(rowBias: bias.map { $0 + g * ocg }, activation: activation,
                                 rowSlope: activation.slopes(from: g * ocg)).c()
            if let u = wino {
                return dlk_conv3x3_wino_maxpool2(src, Int32(cg), Int32(hp), Int32(wp), Int32(2 * ph), Int32(2 * pw),
                                                 Int32(r0), Int32(r1), u, Int32(ocg), y, outPlane, &e) == 0
            }
            return dlk_conv2d_s1_maxpool2(src, Int32(cg), Int32(hp), Int32(wp), Int32(p.kernelH), Int32(p.kernelW),
                                          Int32(p.dilationH), Int32(p.dilationW), Int32(p.outH), Int32(p.outW),
                                          Int32(r0), Int32(r1), weights[g].storage, Int32(ocg), y, outPlane, &e) == 0
        }

        return forEachPaddedImage(p, input: input, units: ph, unitCost: 2 * p.outChannels * p.outW * kDim,
                                  splitParts: min(ph, ParallelFor.workerCount * 2), rows)
    }
}
