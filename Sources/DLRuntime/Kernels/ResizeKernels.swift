import DLGraph
import DLKernels
import DLTensor

/// Resize (opset 10 to 19 forms) and Upsample, separably: one 1-D resampling plan per resized
/// axis, computed in Double and rounded (integers: round half to even, saturating) once on store.
enum ResizeKernels {
    static var all: [KernelEntry] { [.init("Resize", resize), .init("Upsample", upsample)] }

    /// A float input read as Doubles; nil when left out or empty (ONNX leaves unused inputs empty).
    static func floatList(_ ctx: KernelContext, _ i: Int) -> [Double]? {
        guard let t = ctx.optionalInput(i), t.elementCount > 0 else { return nil }
        return t.doubles()
    }

    static let resize: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let rank = x.shape.count
        var roi: [Double]? = nil, scales: [Double]? = nil, sizes: [Int]? = nil
        if ctx.inputCount == 2 {
            // Resize-10: (X, scales).
            scales = floatList(ctx, 1)
        } else {
            roi = floatList(ctx, 1)
            scales = floatList(ctx, 2)
            if let t = ctx.optionalInput(3), t.elementCount > 0 { sizes = try ctx.intList(3) }
        }
        let axes: [Int]
        if let a = try ctx.ints("axes") {
            var seen = Set<Int>()
            var out: [Int] = []
            for v in a {
                let n = try ctx.axis(v, rank: rank)
                guard seen.insert(n).inserted else { throw ctx.fail("axes \(a) repeat an axis") }
                out.append(n)
            }
            axes = out
        } else {
            axes = Array(0..<rank)
        }
        let modeName = try ctx.string("mode", "nearest")
        let legacy = ctx.inputCount == 2
        let coordinateName = try ctx.string("coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel")
        guard let coordinates = Resampling.CoordinateMode(rawValue: coordinateName) else {
            throw ctx.fail("coordinate_transformation_mode '\(coordinateName)' is not one the spec defines")
        }
        let nearestName = try ctx.string("nearest_mode", legacy ? "floor" : "round_prefer_floor")
        let mode: Resampling.Mode
        switch modeName {
        case "nearest":
            guard let r = Resampling.NearestRounding(rawValue: nearestName) else { throw ctx.fail("nearest_mode '\(nearestName)' is not one the spec defines") }
            mode = .nearest(r)
        case "linear", "bilinear", "trilinear": mode = .linear
        case "cubic", "bicubic": mode = .cubic(a: Double(try ctx.float("cubic_coeff_a", -0.75)))
        default: throw ctx.fail("mode '\(modeName)' is not nearest, linear or cubic")
        }
        let antialias = try ctx.int("antialias", 0) != 0
        if antialias, case .nearest = mode { throw ctx.fail("antialias is not defined for nearest mode") }
        let policy = try ctx.string("keep_aspect_ratio_policy", "stretch")
        guard ["stretch", "not_larger", "not_smaller"].contains(policy) else {
            throw ctx.fail("keep_aspect_ratio_policy '\(policy)' is not stretch, not_larger or not_smaller")
        }

        // Full-rank scales, output sizes and roi.
        var scale = [Double](repeating: 1, count: rank)
        var outShape = x.shape
        var fullRoi = [Double](repeating: 0, count: rank) + [Double](repeating: 1, count: rank)
        if let roi {
            guard roi.allSatisfy(\.isFinite) else { throw ctx.fail("roi has non-finite values") }
            guard roi.count == 2 * axes.count else { throw ctx.fail("roi has \(roi.count) values, expected \(2 * axes.count)") }
            for (i, a) in axes.enumerated() { fullRoi[a] = roi[i]; fullRoi[rank + a] = roi[axes.count + i] }
        }
        if let sizes {
            guard scales == nil else { throw ctx.fail("only one of scales and sizes may be given") }
            guard sizes.count == axes.count, sizes.allSatisfy({ $0 >= 0 }) else {
                throw ctx.fail("sizes \(sizes) must list one non-negative size per resized axis (\(axes.count))")
            }
            for (i, a) in axes.enumerated() {
                guard x.shape[a] > 0 else { throw ctx.fail("cannot resize the empty axis \(a)") }
                scale[a] = Double(sizes[i]) / Double(x.shape[a])
                outShape[a] = sizes[i]
            }
            if policy != "stretch" {
                let s = axes.map { scale[$0] }
                let chosen = (policy == "not_larger" ? s.min() : s.max()) ?? 1
                for a in axes {
                    scale[a] = chosen
                    outShape[a] = Int(chosen * Double(x.shape[a]) + 0.5)
                }
            }
        } else if let scales {
            guard scales.count == axes.count, scales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ctx.fail("scales \(scales) must list one positive scale per resized axis (\(axes.count))")
            }
            for (i, a) in axes.enumerated() {
                scale[a] = scales[i]
                let size = scales[i] * Double(x.shape[a])
                guard size < 1e12 else { throw ctx.fail("scale \(scales[i]) makes axis \(a) too large") }
                outShape[a] = Int(size)
            }
        } else {
            throw ctx.fail("Resize needs scales or sizes")
        }
        guard x.dtype.isFloatingPoint || x.dtype.isInteger else { throw ctx.fail("Resize is not defined on \(x.dtype)") }
        let extrapolation = Double(try ctx.float("extrapolation_value", 0))
        let excludeOutside = try ctx.int("exclude_outside", 0) != 0
        // One 1-D plan per axis that changes.
        var passes: [(axis: Int, taps: [Resampling.Taps])] = []
        var shape = x.shape
        for a in axes {
            let identityRoi = fullRoi[a] == 0 && fullRoi[rank + a] == 1
            if abs(scale[a] - 1) < 1e-9, outShape[a] == shape[a], identityRoi || coordinates != .tfCropAndResize { continue }
            guard shape[a] > 0 || outShape[a] == 0 else { throw ctx.fail("cannot resize the empty axis \(a)") }
            passes.append((a, Resampling.plan(inputSize: shape[a], outputSize: outShape[a], scale: scale[a], mode: mode,
                                              coordinates: coordinates, roi: (fullRoi[a], fullRoi[rank + a]),
                                              antialias: antialias, excludeOutside: excludeOutside)))
            shape[a] = outShape[a]
        }
        if x.dtype == .float32, x.rank >= 2, passes.count == 2, passes[0].axis == x.rank - 2, passes[1].axis == x.rank - 1,
           let rows = Resampling.copySources(passes[0].taps), let cols = Resampling.copySources(passes[1].taps) {
            return [nearestPlanes(ctx, x, rows: rows, cols: cols)]
        }
        if x.dtype == .float32 { return [resizeFloat(ctx, x, passes, extrapolation: Float(extrapolation))] }
        var data = x.doubles()
        shape = x.shape
        for (a, taps) in passes {
            let (outer, size, inner) = IndexMath.around(shape, axis: a)
            data = Resampling.apply(taps, to: data, outer: outer, inputSize: size, inner: inner, extrapolationValue: extrapolation)
            shape[a] = taps.count
        }
        return [store(data, like: x.dtype, shape: shape)]
    }

    /// A nearest resize of the last two axes in one pass: output row `oh` of each plane copies
    /// input row `rows[oh]` at the columns `cols`, or the output row before it when that read the
    /// same input row (YOLO's 2x upsampling: every other row). The values as they are, as the
    /// separable passes give them, without their intermediate tensor.
    static func nearestPlanes(_ ctx: KernelContext, _ x: Tensor, rows: [Int], cols: [Int]) -> Tensor {
        let rank = x.rank, inH = x.shape[rank - 2], inW = x.shape[rank - 1], outH = rows.count, outW = cols.count
        let planes = x.shape.dropLast(2).reduce(1, *)
        let out = ctx.makeOutput(.float32, shape: Array(x.shape.dropLast(2)) + [outH, outW])
        guard out.elementCount > 0 else { return out }
        x.withUnsafeBufferPointer(as: Float.self) { src in
            out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                guard let s0 = src.baseAddress, let d0 = dst.baseAddress else { return }
                rows.withUnsafeBufferPointer { rows in
                    cols.withUnsafeBufferPointer { cols in
                        ParallelFor.run(planes * outH, cost: outW * 2) { lo, hi in
                            for r in lo..<hi {
                                let oh = r % outH, d = d0 + r * outW
                                if r > lo, oh > 0, rows[oh] == rows[oh - 1] {
                                    d.update(from: d - outW, count: outW)
                                    continue
                                }
                                let s = s0 + ((r / outH) * inH + rows[oh]) * inW
                                for ow in 0..<outW { d[ow] = s[cols[ow]] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The passes on float32 data, in float, the last one straight into the output buffer.
    static func resizeFloat(_ ctx: KernelContext, _ x: Tensor, _ passes: [(axis: Int, taps: [Resampling.Taps])],
                            extrapolation: Float) -> Tensor {
        var current = x
        for (k, (a, taps)) in passes.enumerated() {
            var shape = current.shape
            let (outer, size, inner) = IndexMath.around(shape, axis: a)
            shape[a] = taps.count
            let out = ctx.makeOutput(.float32, shape: shape)
            if out.elementCount > 0 {
                current.withUnsafeBufferPointer(as: Float.self) { src in
                    out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                        Resampling.apply(taps, input: src.baseAddress!, output: dst.baseAddress!, outer: outer,
                                         inputSize: size, inner: inner, extrapolationValue: extrapolation)
                    }
                }
            }
            // An intermediate pass's buffer goes back to the pool (the plan frees step outputs
            // only): dropped, it was a fresh allocation every run, and its pages faulted in anew.
            var done: Tensor? = current
            current = out
            if k > 0 { ctx.pool?.give(&done) }
        }
        return current
    }

    /// Doubles to `dtype`: integers round half to even and saturate, as the spec's reference does.
    static func store(_ v: [Double], like dtype: DType, shape: [Int]) -> Tensor {
        guard dtype.isInteger else { return Tensor.fromDoubles(v, dtype: dtype, shape: shape) }
        let (lo, hi): (Double, Double)
        switch dtype {
        case .int8: (lo, hi) = (-128, 127)
        case .uint8: (lo, hi) = (0, 255)
        case .int16: (lo, hi) = (-32768, 32767)
        case .uint16: (lo, hi) = (0, 65535)
        case .int32: (lo, hi) = (-2147483648, 2147483647)
        case .uint32: (lo, hi) = (0, 4294967295)
        case .uint64: (lo, hi) = (0, 1.8446744073709552e19)
        default: (lo, hi) = (-9.223372036854775808e18, 9.223372036854775807e18)
        }
        return Tensor.fromDoubles(v.map { max(lo, min(hi, $0.rounded(.toNearestOrEven))) }, dtype: dtype, shape: shape)
    }

    /// Upsample (deprecated since opset 10): scales from the second input (opset 9) or the
    /// `scales` attribute (opset 7); nearest picks floor(y / scale), linear is asymmetric.
    static let upsample: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let scales: [Double]
        if let s = floatList(ctx, 1) { scales = s }
        else if let s = ctx.floats("scales") { scales = s.map(Double.init) }
        else { throw ctx.fail("Upsample needs scales") }
        guard scales.count == x.shape.count, scales.allSatisfy({ $0 >= 1 && $0 < 1e6 }) else {
            throw ctx.fail("scales \(scales) must list one scale of at least 1 per axis of \(x.shape)")
        }
        let modeName = try ctx.string("mode", "nearest")
        let mode: Resampling.Mode
        switch modeName {
        case "nearest": mode = .nearest(.floor)
        case "linear", "bilinear": mode = .linear
        default: throw ctx.fail("Upsample mode '\(modeName)' is not nearest or linear")
        }
        var data = x.doubles()
        var shape = x.shape
        for a in 0..<shape.count where scales[a] != 1 {
            let out = Int(scales[a] * Double(shape[a]))
            let taps = Resampling.plan(inputSize: shape[a], outputSize: out, scale: scales[a], mode: mode, coordinates: .asymmetric)
            let (outer, size, inner) = IndexMath.around(shape, axis: a)
            data = Resampling.apply(taps, to: data, outer: outer, inputSize: size, inner: inner)
            shape[a] = out
        }
        return [store(data, like: x.dtype, shape: shape)]
    }
}
