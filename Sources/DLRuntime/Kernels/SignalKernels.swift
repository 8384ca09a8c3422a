#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLKernels
import DLTensor

/// DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix, in Double.
enum SignalKernels {
    static var all: [KernelEntry] {
        [.init("DFT", dft), .init("STFT", stft), .init("MelWeightMatrix", melWeightMatrix),
         .init("HannWindow", window { n, size in 0.5 - 0.5 * cos(2 * .pi * n / size) }),
         .init("HammingWindow", window { n, size in 25.0 / 46.0 - (21.0 / 46.0) * cos(2 * .pi * n / size) }),
         .init("BlackmanWindow", window { n, size in 0.42 - 0.5 * cos(2 * .pi * n / size) + 0.08 * cos(4 * .pi * n / size) })]
    }

    /// A scalar integer input.
    static func scalarInt(_ ctx: KernelContext, _ i: Int, _ label: String) throws(RuntimeError) -> Int {
        guard let v = try ctx.intList(i), v.count == 1 else { throw ctx.fail("\(label) must be one integer") }
        return v[0]
    }

    /// The complex DFT of `n` points read through `sample(k) -> (re, im)`; `inverse` uses the
    /// positive exponent and divides by `n`. Returns the first `count` bins.
    static func transform(n: Int, count: Int, inverse: Bool, _ sample: (Int) -> (Double, Double)) -> [(Double, Double)] {
        let input = (0..<n).map(sample)
        let sign = inverse ? 1.0 : -1.0
        return (0..<count).map { k in
            var re = 0.0, im = 0.0
            for (t, (xr, xi)) in input.enumerated() {
                let angle = sign * 2 * .pi * Double((k * t) % max(n, 1)) / Double(n)
                let c = cos(angle), s = sin(angle)
                re += xr * c - xi * s
                im += xr * s + xi * c
            }
            return inverse ? (re / Double(n), im / Double(n)) : (re, im)
        }
    }

    /// DFT along one signal axis of [batch, signal..., 1 or 2]. onesided keeps n/2 + 1 bins;
    /// inverse + onesided (irfft) reads n/2 + 1 bins and returns n real values.
    static let dft: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint, x.rank >= 3, let last = x.shape.last, last == 1 || last == 2 else {
            throw ctx.fail("input must be floating-point [batch, signal..., 1 or 2], got \(x.dtype) \(x.shape)")
        }
        let inverse = try ctx.int("inverse", 0) != 0, onesided = try ctx.int("onesided", 0) != 0
        // opset 20 reads the axis from input 2 (default -2); older models carry it as an
        // attribute (the importer adds the old default 1 where it was left out).
        var axis = ctx.node.attribute("axis") != nil ? try ctx.int("axis", 1) : -2
        if ctx.optionalInput(2) != nil { axis = try scalarInt(ctx, 2, "axis") }
        guard let signal = Axes.normalise(axis, rank: x.rank), signal >= 1, signal < x.rank - 1 else {
            throw ctx.fail("axis \(axis) is not a signal axis of \(x.shape)")
        }
        axis = signal
        let inLen = x.shape[axis]
        var n = inLen
        if inverse && onesided { n = 2 * (inLen - 1) }
        if ctx.optionalInput(1) != nil {
            n = try scalarInt(ctx, 1, "dft_length")
            guard n > 0 else { throw ctx.fail("dft_length must be positive, got \(n)") }
        }
        let outLen = inverse ? n : (onesided ? n / 2 + 1 : n)
        let outLast = inverse && onesided ? 1 : 2
        var outShape = x.shape
        outShape[axis] = outLen
        outShape[x.rank - 1] = outLast
        let v = x.doubles()
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)..<(x.rank - 1)].reduce(1, *)
        var y = [Double](repeating: 0, count: outShape.reduce(1, *))
        for o in 0..<outer {
            for i in 0..<inner {
                func read(_ k: Int) -> (Double, Double) {
                    guard k < inLen else { return (0, 0) }
                    let e = ((o * inLen + k) * inner + i) * last
                    return (v[e], last == 2 ? v[e + 1] : 0)
                }
                let bins: [(Double, Double)]
                if inverse && onesided {
                    // Hermitian extension of the stored half spectrum.
                    bins = transform(n: n, count: n, inverse: true) { k in
                        if k <= n / 2 { return read(k) }
                        let (re, im) = read(n - k)
                        return (re, -im)
                    }
                } else {
                    bins = transform(n: n, count: outLen, inverse: inverse, read)
                }
                for (k, (re, im)) in bins.enumerated() {
                    let e = ((o * outLen + k) * inner + i) * outLast
                    y[e] = re
                    if outLast == 2 { y[e + 1] = im }
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: outShape)]
    }

    /// Frames of `frame_length` every `frame_step` samples, windowed, transformed:
    /// [batch, frames, bins, 2].
    static let stft: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint, x.rank == 3, x.shape[2] == 1 || x.shape[2] == 2 else {
            throw ctx.fail("signal must be floating-point [batch, length, 1 or 2], got \(x.dtype) \(x.shape)")
        }
        let step = try scalarInt(ctx, 1, "frame_step")
        let window = ctx.optionalInput(2)?.doubles()
        var length = window?.count ?? 0
        if ctx.optionalInput(3) != nil { length = try scalarInt(ctx, 3, "frame_length") }
        guard step > 0, length > 0, length <= x.shape[1] else {
            throw ctx.fail("frame_step \(step) and frame_length \(length) must be positive, the frame at most \(x.shape[1])")
        }
        if let window, window.count != length { throw ctx.fail("window has \(window.count) values, frame_length is \(length)") }
        let onesided = try ctx.int("onesided", 1) != 0
        let (batch, total, last) = (x.shape[0], x.shape[1], x.shape[2])
        let frames = (total - length) / step + 1, bins = onesided ? length / 2 + 1 : length
        let v = x.doubles()
        var y = [Double](repeating: 0, count: batch * frames * bins * 2)
        for b in 0..<batch {
            for f in 0..<frames {
                let out = transform(n: length, count: bins, inverse: false) { k in
                    let e = (b * total + f * step + k) * last, w = window?[k] ?? 1
                    return (v[e] * w, last == 2 ? v[e + 1] * w : 0)
                }
                for (k, (re, im)) in out.enumerated() {
                    y[((b * frames + f) * bins + k) * 2] = re
                    y[((b * frames + f) * bins + k) * 2 + 1] = im
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [batch, frames, bins, 2])]
    }

    /// A window of `size` values: f(n, N) with N = size (periodic) or size - 1 (symmetric).
    static func window(_ f: @escaping @Sendable (Double, Double) -> Double) -> Kernel {
        { ctx throws(RuntimeError) in
            let size = try scalarInt(ctx, 0, "size")
            // A file may give any size; this is computed before the allocation budget sees it.
            guard size >= 0, size <= 1 << 26 else { throw ctx.fail("size must be 0 to 2^26, got \(size)") }
            let code = try ctx.int("output_datatype", 1)
            guard let dtype = DType(onnxCode: Int32(clamping: code)), dtype != .string else { throw ctx.unsupported("output_datatype \(code) is not supported") }
            let periodic = try ctx.int("periodic", 1) != 0
            let denominator = Double(periodic ? size : size - 1)
            let values = (0..<size).map { n in denominator == 0 ? 1 : f(Double(n), denominator) }
            return [Tensor.fromDoubles(values, dtype: dtype, shape: [size])]
        }
    }

    /// Triangular mel filters, [dft_length/2 + 1, num_mel_bins], built the way the ONNX reference
    /// does (edges floored to DFT bins).
    static let melWeightMatrix: Kernel = { ctx throws(RuntimeError) in
        let mels = try scalarInt(ctx, 0, "num_mel_bins"), length = try scalarInt(ctx, 1, "dft_length")
        let rate = try scalarInt(ctx, 2, "sample_rate")
        let lowT = try ctx.input(3), highT = try ctx.input(4)
        guard mels > 0, length > 0, rate > 0, lowT.elementCount == 1, highT.elementCount == 1 else {
            throw ctx.fail("num_mel_bins, dft_length and sample_rate must be positive and the edges single values")
        }
        let code = try ctx.int("output_datatype", 1)
        guard let dtype = DType(onnxCode: Int32(clamping: code)), dtype != .string else { throw ctx.unsupported("output_datatype \(code) is not supported") }
        let spectrogramBins = length / 2 + 1
        // The edge mels are computed in the edges' own precision, as the reference does.
        func mel(_ t: Tensor) -> Double {
            let hz = t.doubles()[0]
            if t.dtype == .float32 { return Double(Float(2595) * log1p(Float(hz) / 700) / log(Float(10))) }
            return 2595 * log1p(hz / 700) / log(10)
        }
        let low = mel(lowT), high = mel(highT)
        let step = (high - low) / Double(mels + 2)
        let edges = (0..<(mels + 2)).map { i -> Int in
            let hz = 700 * expm1((Double(i) * step + low) / 2595 * log(10))
            return Int((Double(length + 1) * hz / Double(rate)).rounded(.down))
        }
        var out = [Double](repeating: 0, count: spectrogramBins * mels)
        func set(_ j: Int, _ i: Int, _ v: Double) throws(RuntimeError) {
            guard j >= 0, j < spectrogramBins else { throw ctx.fail("a mel edge falls outside the \(spectrogramBins) spectrogram bins") }
            out[j * mels + i] = v
        }
        for i in 0..<mels {
            let (l, c, h) = (edges[i], edges[i + 1], edges[i + 2])
            if c == l { try set(c, i, 1) } else { for j in l...max(l, c) { try set(j, i, Double(j - l) / Double(c - l)) } }
            if h > c { for j in c..<h { try set(j, i, Double(h - j) / Double(h - c)) } }
        }
        return [Tensor.fromDoubles(out, dtype: dtype, shape: [spectrogramBins, mels])]
    }
}
