import CKernels
/// What a GEMM or convolution applies to its result before storing it: the activation fused into
/// the epilogue, so the output is written once instead of written and re-read by a separate op.
public enum Activation: Sendable, Hashable {
    case none
    case relu
    /// `x < 0 ? alpha * x : x`
    case leakyRelu(alpha: Float)
}

extension Activation {
    /// Applies the activation in place to `count` floats (eight lanes at a time).
    @inline(__always)
    public func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none: return
        case .relu: Elementwise.relu(p, p, count: count)
        case .leakyRelu(let a): Elementwise.leakyRelu(p, p, count: count, alpha: a)
        }
    }

    /// `row[j] = act(row[j] + b)` for `count` floats: a per-channel bias and the activation in one pass.
    @inline(__always)
    func addBiasAndApply(_ b: Float, _ row: UnsafeMutablePointer<Float>, count: Int) {
        let vb = SIMD8<Float>(repeating: b)
        var j = 0
        switch self {
        case .none:
            while j + 8 <= count {
                (SIMD8<Float>.load(row + j) + vb).store(row + j)
                j += 8
            }
            while j < count { row[j] += b; j += 1 }
        case .relu:
            let zero = SIMD8<Float>(repeating: 0)
            while j + 8 <= count {
                var v = SIMD8<Float>.load(row + j) + vb
                // NaN stays NaN: only lanes that compare below zero become zero.
                v.replace(with: zero, where: v .< zero)
                v.store(row + j)
                j += 8
            }
            while j < count { let v = row[j] + b; row[j] = v < 0 ? 0 : v; j += 1 }
        case .leakyRelu(let a):
            while j < count { let v = row[j] + b; row[j] = v < 0 ? a * v : v; j += 1 }
        }
    }
}

extension Convolution {
    /// ``conv2D(_:input:weight:bias:residual:output:activation:)`` without a residual: the bias and
    /// `activation` applied in the epilogue, rows of the batch split over the runtime's workers.
    public static func conv2D(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation
    ) {
        conv2D(p, input: input, weight: weight, bias: bias, residual: nil, output: output, activation: activation)
    }
}

extension Pooling {
    /// True when ``maxPool2x2(_:input:output:)`` computes `p`: a 2×2 window, stride 2, no padding
    /// or dilation, and an output of exactly half the input (floor).
    public static func isPlain2x2(_ p: Pool2DParams) -> Bool {
        p.kernelH == 2 && p.kernelW == 2 && p.strideH == 2 && p.strideW == 2
            && p.padTop == 0 && p.padLeft == 0 && p.padBottom == 0 && p.padRight == 0
            && p.dilationH == 1 && p.dilationW == 1 && p.outH == p.inH / 2 && p.outW == p.inW / 2
    }

    /// The common 2×2 stride-2 max pooling (see ``isPlain2x2(_:)``), planes split over the
    /// runtime's workers. NaN propagates, as in ``maxPool2D(_:input:output:)``.
    public static func maxPool2x2(_ p: Pool2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let inH = p.inH, inW = p.inW, outH = p.outH, outW = p.outW
        @inline(__always) func mx(_ a: Float, _ b: Float) -> Float { a > b || a != a ? a : b }
        if PackedMatrix.isSupported {
            // The AVX-512 form (the Swift loop below compiles for SSE only).
            ParallelFor.run(p.batch * p.channels, cost: inH * inW) { lo, hi in
                _ = dlk_maxpool2x2(input + lo * inH * inW, hi - lo, Int32(inH), Int32(inW), output + lo * outH * outW)
            }
            return
        }
        ParallelFor.run(p.batch * p.channels, cost: inH * inW) { lo, hi in
            for plane in lo..<hi {
                let src = input + plane * inH * inW
                let dst = output + plane * outH * outW
                for oh in 0..<outH {
                    let r0 = src + 2 * oh * inW, r1 = r0 + inW
                    let o = dst + oh * outW
                    for ow in 0..<outW {
                        let j = 2 * ow
                        o[ow] = mx(mx(r0[j], r0[j + 1]), mx(r1[j], r1[j + 1]))
                    }
                }
            }
        }
    }
}
