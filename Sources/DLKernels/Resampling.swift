#if canImport(Glibc)
import Glibc
#endif

/// One-dimensional resampling as used by ONNX Resize: where each output index maps in the input
/// (the coordinate transformation), and which input taps with which weights make it (nearest,
/// linear or cubic, optionally antialiased). Resize is separable, so an N-D resize applies one
/// such plan per resized axis.
public enum Resampling {
    public enum Mode: Sendable, Equatable {
        case nearest(NearestRounding)
        case linear
        /// Keys' cubic convolution with coefficient `a` (-0.75 in ONNX, -0.5 in TensorFlow).
        case cubic(a: Double)
    }

    public enum NearestRounding: String, Sendable, Equatable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }

    public enum CoordinateMode: String, Sendable, Equatable {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric, tfCropAndResize = "tf_crop_and_resize"
    }

    /// The taps of one output index: input indices (already clamped into range, as edge
    /// padding) and their weights; `extrapolate` when tf_crop_and_resize maps it outside.
    public struct Taps: Sendable, Equatable {
        public var indices: [Int]
        public var weights: [Double]
        public var extrapolate: Bool
    }

    /// The input coordinate of output index `y`.
    /// - Parameters:
    ///   - scale: output size over input size along this axis (as given or computed).
    ///   - roi: the region of interest (start, end) in normalised coordinates, for tf_crop_and_resize.
    public static func sourceCoordinate(_ y: Int, mode: CoordinateMode, scale: Double, inputSize: Int,
                                        outputSize: Int, roi: (Double, Double)) -> Double {
        let yd = Double(y)
        let outputWidth = scale * Double(inputSize)
        switch mode {
        case .alignCorners:
            return outputWidth == 1 ? 0 : yd * Double(inputSize - 1) / (outputWidth - 1)
        case .asymmetric:
            return yd / scale
        case .tfCropAndResize:
            let x = outputWidth == 1
                ? (roi.1 - roi.0) * Double(inputSize - 1) / 2
                : yd * (roi.1 - roi.0) * Double(inputSize - 1) / (outputWidth - 1)
            return x + roi.0 * Double(inputSize - 1)
        case .pytorchHalfPixel:
            return outputWidth == 1 ? -0.5 : (yd + 0.5) / scale - 0.5
        case .halfPixel:
            return (yd + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = Double(outputSize) / outputWidth
            let offset = Double(inputSize) / 2 * (1 - adjustment)
            return offset + (yd + 0.5) / scale - 0.5
        }
    }

    /// The interpolation weights for fractional position `ratio` in (0, 1] past the left tap.
    static func coefficients(_ mode: Mode, ratio: Double, scale: Double, antialias: Bool) -> [Double] {
        switch mode {
        case .nearest(let rounding):
            if ratio == 1 { return [0, 1] }
            switch rounding {
            case .roundPreferFloor: return ratio <= 0.5 ? [1, 0] : [0, 1]
            case .roundPreferCeil: return ratio < 0.5 ? [1, 0] : [0, 1]
            case .floor: return [1, 0]
            case .ceil: return [0, 1]
            }
        case .linear:
            guard antialias else { return [1 - ratio, ratio] }
            let s = min(scale, 1)
            let start = Int((-1 / s).rounded(.down)) + 1
            let footprint = 2 - 2 * start
            let c = (0..<footprint).map { i in max(0, min(1, 1 - abs((Double(start + i) - ratio) * s))) }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        case .cubic(let a):
            guard antialias else {
                let r1 = ratio + 1, q = 1 - ratio, q1 = q + 1
                return [((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                        ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
                        ((a + 2) * q - (a + 3)) * q * q + 1,
                        ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a]
            }
            let s = min(scale, 1)
            let start = Int((-2 / s).rounded(.down)) + 1
            let c = (start..<(2 - start)).map { i -> Double in
                let x = abs(s * (Double(i) - ratio))
                if x <= 1 { return (a + 2) * x * x * x - (a + 3) * x * x + 1 }
                if x < 2 { return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a }
                return 0
            }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        }
    }

    /// The taps of every output index along one axis.
    public static func plan(inputSize: Int, outputSize: Int, scale: Double, mode: Mode,
                            coordinates: CoordinateMode, roi: (Double, Double) = (0, 1),
                            antialias: Bool = false, excludeOutside: Bool = false) -> [Taps] {
        (0..<outputSize).map { y in
            let x = sourceCoordinate(y, mode: coordinates, scale: scale, inputSize: inputSize, outputSize: outputSize, roi: roi)
            let extrapolate = coordinates == .tfCropAndResize && (x < 0 || x > Double(inputSize - 1))
            let xFloor = x.rounded(.down)
            let ratio = x == xFloor ? 1 : x - xFloor
            var weights = coefficients(mode, ratio: ratio, scale: scale, antialias: antialias)
            let n = weights.count
            // The n taps nearest to x, ties to the left: for even n centred between taps.
            let p = Int(xFloor)
            let frac = x - xFloor
            let start: Int
            if n % 2 == 0 {
                start = p + (frac == 0 ? -(n / 2) : -(n / 2) + 1)
            } else {
                start = p - (n - 1) / 2 + (frac <= 0.5 ? 0 : 1)
            }
            var indices = (0..<n).map { start + $0 }
            if excludeOutside {
                for i in 0..<n where indices[i] < 0 || indices[i] >= inputSize { weights[i] = 0 }
                let sum = weights.reduce(0, +)
                if sum != 0 { weights = weights.map { $0 / sum } }
            }
            indices = indices.map { max(0, min(inputSize - 1, $0)) }
            return Taps(indices: indices, weights: weights, extrapolate: extrapolate)
        }
    }

    /// Applies `taps` along the middle axis of a row-major [outer, inputSize, inner] array.
    public static func apply(_ taps: [Taps], to data: [Double], outer: Int, inputSize: Int, inner: Int,
                             extrapolationValue: Double = 0) -> [Double] {
        let outSize = taps.count
        var out = [Double](repeating: 0, count: outer * outSize * inner)
        for o in 0..<outer {
            let src = o * inputSize * inner, dst = o * outSize * inner
            for (j, t) in taps.enumerated() {
                let row = dst + j * inner
                if t.extrapolate {
                    for k in 0..<inner { out[row + k] = extrapolationValue }
                    continue
                }
                for (i, w) in zip(t.indices, t.weights) where w != 0 {
                    let from = src + i * inner
                    for k in 0..<inner { out[row + k] += w * data[from + k] }
                }
            }
        }
        return out
    }

    /// The input index each output copies, when every output of `taps` copies exactly one input
    /// (weight 1, inside the input: nearest sampling); nil otherwise.
    public static func copySources(_ taps: [Taps]) -> [Int]? {
        var from: [Int] = []
        from.reserveCapacity(taps.count)
        for t in taps {
            let used = zip(t.indices, t.weights).filter { $0.1 != 0 }
            guard !t.extrapolate, used.count == 1, used[0].1 == 1 else { return nil }
            from.append(used[0].0)
        }
        return from
    }

    /// ``apply(_:to:outer:inputSize:inner:extrapolationValue:)`` on float32 buffers: `input` is
    /// `[outer, inputSize, inner]`, `output` `[outer, taps.count, inner]`; weights rounded to
    /// float once, sums in float (as ONNX Runtime computes float resizes). Rows of `outer` are
    /// split over the runtime's workers.
    public static func apply(_ taps: [Taps], input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                             outer: Int, inputSize: Int, inner: Int, extrapolationValue: Float = 0) {
        let outSize = taps.count
        // Flattened: the taps of output j are entries start[j] ..< start[j + 1].
        var start = [Int](repeating: 0, count: outSize + 1)
        var index: [Int] = [], weight: [Float] = []
        for (j, t) in taps.enumerated() {
            if !t.extrapolate {
                for (i, w) in zip(t.indices, t.weights) where w != 0 {
                    index.append(i * inner)
                    weight.append(Float(w))
                }
            }
            start[j + 1] = index.count
        }
        let extrapolate = taps.map(\.extrapolate)
        // Nearest (or any plan whose outputs each copy one input): a gather, the values as they
        // are (a sum from zero turned -0 into +0, and cost a loop per element along the last axis).
        let copies = copySources(taps) != nil
        index.withUnsafeBufferPointer { index in
            weight.withUnsafeBufferPointer { weight in
                ParallelFor.run(outer, cost: outSize * inner * 2) { lo, hi in
                    for o in lo..<hi {
                        let src = input + o * inputSize * inner, dst = output + o * outSize * inner
                        if inner == 1 && copies {
                            for j in 0..<outSize { dst[j] = src[index[start[j]]] }
                            continue
                        }
                        if inner == 1 {
                            for j in 0..<outSize {
                                var v: Float = extrapolate[j] ? extrapolationValue : 0
                                for e in start[j]..<start[j + 1] { v += weight[e] * src[index[e]] }
                                dst[j] = v
                            }
                            continue
                        }
                        for j in 0..<outSize {
                            let row = dst + j * inner
                            let a = start[j], b = start[j + 1]
                            if a == b {
                                row.update(repeating: extrapolate[j] ? extrapolationValue : 0, count: inner)
                                continue
                            }
                            let w0 = weight[a], s0 = src + index[a]
                            if w0 == 1 {
                                row.update(from: s0, count: inner)
                            } else {
                                for k in 0..<inner { row[k] = w0 * s0[k] }
                            }
                            for e in (a + 1)..<b {
                                let w = weight[e], s = src + index[e]
                                for k in 0..<inner { row[k] += w * s[k] }
                            }
                        }
                    }
                }
            }
        }
    }
}
