import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a GEMM or convolution applies to its result before storing it: the activation fused into
/// the epilogue, so the output is written once instead of written and re-read by a separate op.
/// NaN stays NaN in every one.
public enum Activation: Sendable, Hashable {
    case none
    case relu
    /// `max(x < 0 ? alpha * x : x, floor)`: LeakyRelu, and a `Max` with a constant after it
    /// (openWakeWord's `maximum(leaky_relu(x), -0.4)`); no floor by default.
    case leakyRelu(alpha: Float, floor: Float = -.infinity)
    /// `min(max(x, lower), upper)` (ONNX `Clip`, ReLU6).
    case clip(lower: Float, upper: Float)
    /// `1 / (1 + e⁻ˣ)`
    case sigmoid
    /// `x · sigmoid(x)` (SiLU, Swish-1: YOLO's activation).
    case silu
    /// `max(0, min(1, alpha·x + beta))` (ONNX `HardSigmoid`).
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x · max(0, min(1, x/6 + 1/2))` (ONNX `HardSwish`, MobileNetV3's activation).
    case hardSwish
    /// `(x · ½) · (erf(x / √2) + 1)` (ONNX `Gelu` without approximation: BERT's activation).
    case gelu
    /// `x < 0 ? slope[c] · x : x` on channel `c` (ONNX `PRelu` with one slope per channel:
    /// MediaPipe's face and palm models). Convolutions only: their epilogues take the slopes per
    /// output channel (``slopes(from:)``, ``forChannel(_:)``); an element-by-element apply
    /// knows no channel and uses channel 0's.
    case prelu(ChannelSlopes)
}

/// One slope per channel for ``Activation/prelu(_:)``, at an address that stays put while the
/// activation lives (the C kernels' epilogues read it).
public final class ChannelSlopes: @unchecked Sendable, Hashable {
    public let count: Int
    let storage: UnsafeMutablePointer<Float>

    /// - Precondition: `values` is not empty.
    public init(_ values: [Float]) {
        precondition(!values.isEmpty, "PRelu needs at least one slope")
        count = values.count
        storage = .allocate(capacity: values.count)
        storage.initialize(from: values, count: values.count)
    }

    deinit { storage.deallocate() }

    /// The slope of channel `c` (channels past the count wrap, as one slope broadcasts).
    public subscript(c: Int) -> Float { storage[c % count] }

    public static func == (a: ChannelSlopes, b: ChannelSlopes) -> Bool {
        a === b || (a.count == b.count && (0..<a.count).allSatisfy { a.storage[$0].bitPattern == b.storage[$0].bitPattern })
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for i in 0..<count { hasher.combine(storage[i].bitPattern) }
    }
}

extension Activation {
    /// The C kernels' form: a DLK_ACT_* code and its two parameters.
    var cForm: (code: Int32, a: Float, b: Float) {
        switch self {
        case .none: (Int32(DLK_ACT_NONE), 0, 0)
        case .relu: (Int32(DLK_ACT_RELU), 0, 0)
        case .leakyRelu(let a, let f): (Int32(DLK_ACT_LEAKY_RELU), a, f)
        case .clip(let lo, let hi): (Int32(DLK_ACT_CLIP), lo, hi)
        case .sigmoid: (Int32(DLK_ACT_SIGMOID), 0, 0)
        case .silu: (Int32(DLK_ACT_SILU), 0, 0)
        case .hardSigmoid(let a, let b): (Int32(DLK_ACT_HARD_SIGMOID), a, b)
        case .hardSwish: (Int32(DLK_ACT_HARD_SWISH), 0, 0)
        case .gelu: (Int32(DLK_ACT_GELU), 0, 0)
        case .prelu: (Int32(DLK_ACT_PRELU), 0, 0)
        }
    }

    /// PRelu's slopes from channel `c` on (nil for every other activation): the epilogue's
    /// `rowSlope` or `columnSlope`, offset as its bias is.
    public func slopes(from c: Int) -> UnsafePointer<Float>? {
        if case .prelu(let s) = self { return UnsafePointer(s.storage + c) }
        return nil
    }

    /// The activation of channel `c`'s elements: PRelu as a LeakyRelu of that channel's slope,
    /// any other as it is.
    @inline(__always)
    public func forChannel(_ c: Int) -> Activation {
        if case .prelu(let s) = self { return .leakyRelu(alpha: s[c]) }
        return self
    }

    /// True for PRelu, whose slope depends on the channel.
    public var isPerChannel: Bool {
        if case .prelu = self { return true }
        return false
    }

    /// The activation of one float (the portable path; the AVX-512 one agrees to an ulp or two).
    @inline(__always)
    public func scalar(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return x < 0 ? 0 : x
        case .leakyRelu(let a, let f):
            let y = x < 0 ? a * x : x
            return y < f ? f : y
        case .clip(let lo, let hi): return x < lo ? lo : (x > hi ? hi : x)
        case .sigmoid: return Self.sigmoid(x)
        case .silu: return x * Self.sigmoid(x)
        case .hardSigmoid(let a, let b): return Self.unitClamp(a * x + b)
        case .hardSwish: return x * Self.unitClamp(x / 6 + 0.5)
        case .gelu: return (x * 0.5) * (erff(x / 1.41421356) + 1)
        case .prelu(let s): return x < 0 ? s[0] * x : x
        }
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        // From e^-|x|, so nothing overflows.
        let e = expf(-abs(x))
        return x < 0 ? e / (1 + e) : 1 / (1 + e)
    }

    /// `max(0, min(1, v))`, NaN kept.
    @inline(__always)
    static func unitClamp(_ v: Float) -> Float { v < 0 ? 0 : (v > 1 ? 1 : v) }

    /// `y[j] = act(x[j] + bias)` for `count` floats (`y` may be `x`): the AVX-512 kernel when it
    /// may run, else eight lanes at a time for ReLU and LeakyRelu and one at a time for the rest.
    public func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, bias: Float = 0) {
        if isPerChannel {
            forChannel(0).apply(x, y, count: count, bias: bias)
            return
        }
        let c = cForm
        if CPUFeatures.avx512, dlk_activate(c.code, c.a, c.b, bias, x, y, count) == 0 { return }
        switch self {
        case .none where bias == 0:
            if UnsafePointer(y) != x { y.update(from: x, count: count) }
        case .relu where bias == 0: Elementwise.relu(x, y, count: count)
        case .leakyRelu(let a, -.infinity) where bias == 0: Elementwise.leakyRelu(x, y, count: count, alpha: a)
        default:
            for j in 0..<count { y[j] = scalar(x[j] + bias) }
        }
    }

    /// Applies the activation in place to `count` floats.
    @inline(__always)
    public func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        if self == .none { return }
        apply(p, p, count: count)
    }

    /// `row[j] = act(row[j] + b)` for `count` floats: a per-channel bias and the activation in one pass.
    @inline(__always)
    func addBiasAndApply(_ b: Float, _ row: UnsafeMutablePointer<Float>, count: Int) {
        apply(row, row, count: count, bias: b)
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
