#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLTensor

/// Sampling at computed positions: GridSample (N-D, nearest/linear/cubic, zeros/border/
/// reflection padding), AffineGrid, RoiAlign and NonMaxSuppression. Computed in Double.
enum SamplingKernels {
    static var all: [KernelEntry] {
        [.init("GridSample", gridSample), .init("AffineGrid", affineGrid), .init("RoiAlign", roiAlign),
         .init("NonMaxSuppression", nonMaxSuppression)]
    }

    /// Keys' cubic weights (a = −0.75) for the taps at −1, 0, 1, 2 around fractional part t.
    static func cubicWeights(_ t: Double) -> [Double] {
        let a = -0.75, x = abs(t)
        return [((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a,
                ((a + 2) * x - (a + 3)) * x * x + 1,
                ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1,
                ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a]
    }

    /// Folds x back into [lo, hi] by reflecting at the borders.
    static func reflect(_ x: Double, _ lo: Double, _ hi: Double) -> Double {
        let range = hi - lo
        guard range > 0 else { return lo }
        if x < lo {
            let dx = lo - x, n = (dx / range).rounded(.towardZero), r = dx - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? lo + r : hi - r
        }
        if x > hi {
            let dx = x - hi, n = (dx / range).rounded(.towardZero), r = dx - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? hi - r : lo + r
        }
        return x
    }

    static let gridSample: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), grid = try ctx.input(1)
        let r = x.shape.count - 2
        guard r >= 1, x.dtype.isFloatingPoint, grid.dtype.isFloatingPoint, grid.shape.count == r + 2,
              grid.shape[0] == x.shape[0], grid.shape[r + 1] == r else {
            throw ctx.fail("needs X [N, C, D1..Dr] and grid [N, d1..dr, \(max(r, 0))], got \(x.shape) and \(grid.shape)")
        }
        var mode = try ctx.string("mode", "linear")
        if mode == "bilinear" { mode = "linear" }
        if mode == "bicubic" { mode = "cubic" }
        guard ["nearest", "linear", "cubic"].contains(mode) else { throw ctx.fail("mode '\(mode)' is not nearest, linear or cubic") }
        let padding = try ctx.string("padding_mode", "zeros")
        guard ["zeros", "border", "reflection"].contains(padding) else { throw ctx.fail("padding_mode '\(padding)' is not zeros, border or reflection") }
        let align = try ctx.int("align_corners", 0) != 0
        let (n, c) = (x.shape[0], x.shape[1])
        let dims = Array(x.shape.dropFirst(2))
        let outSpatial = Array(grid.shape.dropFirst().dropLast())
        let outPlane = outSpatial.reduce(1, *), inPlane = dims.reduce(1, *)
        let inStrides = IndexMath.strides(dims)
        let lo = dims.map { _ in align ? 0.0 : -0.5 }
        let hi = dims.map { align ? Double($0 - 1) : Double($0) - 0.5 }
        let xv = x.doubles(), gv = grid.doubles()
        /// In-plane offset of integer position `p` after padding, or nil for a zero.
        func fetch(_ p: [Int]) -> Int? {
            var flat = 0
            for d in 0..<r {
                var i = p[d]
                if i < 0 || i >= dims[d] {
                    switch padding {
                    case "zeros": return nil
                    case "border": i = max(0, min(dims[d] - 1, i))
                    default: i = Int(reflect(Double(i), lo[d], hi[d]))
                    }
                }
                flat += i * inStrides[d]
            }
            return flat
        }
        var y = [Double](repeating: 0, count: n * c * outPlane)
        let taps = mode == "nearest" ? 1 : mode == "linear" ? 2 : 4
        let tapCount = Int(pow(Double(taps), Double(r)))
        for b in 0..<n {
            for o in 0..<outPlane {
                // Grid values are (x, y, z...): innermost spatial dim first.
                let gBase = (b * outPlane + o) * r
                var pos = [Double](repeating: 0, count: r)
                for d in 0..<r {
                    let g = Double(Float(gv[gBase + r - 1 - d]))
                    let size = Double(dims[d])
                    var v = align ? (g + 1) / 2 * (size - 1) : ((g + 1) * size - 1) / 2
                    if mode == "nearest" { v = v.rounded(.toNearestOrEven) }
                    if v < lo[d] || v > hi[d] {
                        if padding == "border" { v = max(0, min(size - 1, v)) }
                        else if padding == "reflection" { v = reflect(v, lo[d], hi[d]) }
                    }
                    // Far outside, every tap is padding: clamp so the index maths stays finite.
                    pos[d] = v.isNaN ? -8 : max(-8, min(size + 8, v))
                }
                // Tap offsets and weights per dim.
                var base = [Int](repeating: 0, count: r)
                var weights = [[Double]](repeating: [1], count: r)
                for d in 0..<r {
                    let f = pos[d].rounded(.down)
                    switch mode {
                    case "nearest": base[d] = Int(pos[d]); weights[d] = [1]
                    case "linear": base[d] = Int(f); weights[d] = [1 - (pos[d] - f), pos[d] - f]
                    default: base[d] = Int(f) - 1; weights[d] = cubicWeights(pos[d] - f)
                    }
                }
                var cells: [(Int, Double)] = []
                for t in 0..<tapCount {
                    var rest = t, wgt = 1.0
                    var p = [Int](repeating: 0, count: r)
                    for d in stride(from: r - 1, through: 0, by: -1) {
                        let k = rest % taps
                        rest /= taps
                        p[d] = base[d] + k
                        wgt *= weights[d][k]
                    }
                    if let at = fetch(p) { cells.append((at, wgt)) }
                }
                for ch in 0..<c {
                    let xBase = (b * c + ch) * inPlane
                    var s = 0.0
                    for (at, w) in cells { s += w * xv[xBase + at] }
                    y[(b * c + ch) * outPlane + o] = s
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [n, c] + outSpatial)]
    }

    /// AffineGrid: the sampling grid [N, (D,) H, W, r] of theta [N, r, r+1] over the normalised
    /// base grid of `size` [N, C, (D,) H, W].
    static let affineGrid: Kernel = { ctx throws(RuntimeError) in
        let theta = try ctx.input(0)
        guard let size = try ctx.intList(1), size.count == 4 || size.count == 5 else { throw ctx.fail("size must list 4 or 5 sizes") }
        let r = size.count - 2
        let n = size[0]
        let spatial = Array(size.dropFirst(2))
        guard theta.dtype.isFloatingPoint, theta.shape == [n, r, r + 1], spatial.allSatisfy({ $0 > 0 }) else {
            throw ctx.fail("theta must be [\(n), \(r), \(r + 1)] floats for size \(size), got \(theta.shape)")
        }
        let align = try ctx.int("align_corners", 0) != 0
        func coord(_ i: Int, _ s: Int) -> Double {
            if align { return s == 1 ? -1 : -1 + Double(i) * 2 / Double(s - 1) }
            return -1 + (Double(2 * i) + 1) / Double(s)
        }
        let t = theta.doubles()
        let plane = spatial.reduce(1, *)
        var out = [Double](repeating: 0, count: n * plane * r)
        for o in 0..<plane {
            let idx = IndexMath.unravel(o, spatial)
            // Homogeneous point (x, y[, z], 1): innermost spatial dim first.
            var h = (0..<r).map { coord(idx[r - 1 - $0], spatial[r - 1 - $0]) }
            h.append(1)
            for b in 0..<n {
                for row in 0..<r {
                    var s = 0.0
                    for k in 0...r { s += t[(b * r + row) * (r + 1) + k] * h[k] }
                    out[(b * plane + o) * r + row] = s
                }
            }
        }
        return [Tensor.fromDoubles(out, dtype: theta.dtype, shape: [n] + spatial + [r])]
    }

    /// RoiAlign: per RoI and channel, average (or max) of bilinear samples on a regular grid
    /// inside each output bin.
    static let roiAlign: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), rois = try ctx.input(1), batchIdx = try ctx.input(2)
        guard x.shape.count == 4, x.dtype.isFloatingPoint else { throw ctx.fail("X must be a float [N, C, H, W], got \(x.shape)") }
        let num = batchIdx.elementCount
        guard rois.shape == [num, 4] else { throw ctx.fail("rois must be [\(num), 4], got \(rois.shape)") }
        let mode = try ctx.string("mode", "avg")
        guard mode == "avg" || mode == "max" else { throw ctx.fail("mode '\(mode)' is not avg or max") }
        let ph = try ctx.int("output_height", 1), pw = try ctx.int("output_width", 1)
        let ratio = try ctx.int("sampling_ratio", 0)
        let scale = Double(try ctx.float("spatial_scale", 1))
        let halfPixel = try ctx.string("coordinate_transformation_mode", "half_pixel") == "half_pixel"
        guard ph > 0, pw > 0, ratio >= 0 else { throw ctx.fail("output sizes must be positive and sampling_ratio not negative") }
        let (n, c, hgt, wid) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let xv = x.doubles(), rv = rois.doubles(), bi = batchIdx.int64s()
        var y = [Double](repeating: 0, count: num * c * ph * pw)
        for ri in 0..<num {
            let b = Int(bi[ri])
            guard b >= 0, b < n else { throw ctx.fail("batch index \(b) is outside 0..<\(n)") }
            let off = halfPixel ? 0.5 : 0
            let sw = rv[ri * 4] * scale - off, sh = rv[ri * 4 + 1] * scale - off
            var rw = rv[ri * 4 + 2] * scale - off - sw, rh = rv[ri * 4 + 3] * scale - off - sh
            guard sw.isFinite, sh.isFinite, rw.isFinite, rh.isFinite, abs(rw) < 1e7, abs(rh) < 1e7 else {
                throw ctx.fail("RoI \(ri) has non-finite or out-of-range coordinates")
            }
            if !halfPixel { rw = max(rw, 1); rh = max(rh, 1) }
            let bh = rh / Double(ph), bw = rw / Double(pw)
            let gh = ratio > 0 ? ratio : Int((rh / Double(ph)).rounded(.up))
            let gw = ratio > 0 ? ratio : Int((rw / Double(pw)).rounded(.up))
            let count = Double(max(gh * gw, 1))
            for py in 0..<ph {
                for px in 0..<pw {
                    // Samples: four (offset, weight) pairs each.
                    var samples: [[(Int, Double)]] = []
                    for iy in 0..<max(gh, 0) {
                        let yy = sh + Double(py) * bh + (Double(iy) + 0.5) * bh / Double(gh)
                        for ix in 0..<max(gw, 0) {
                            let xx = sw + Double(px) * bw + (Double(ix) + 0.5) * bw / Double(gw)
                            if yy < -1 || yy > Double(hgt) || xx < -1 || xx > Double(wid) {
                                samples.append([(0, 0), (0, 0), (0, 0), (0, 0)])
                                continue
                            }
                            var sy = max(yy, 0), sx = max(xx, 0)
                            var yl = Int(sy), xl = Int(sx), yh: Int, xh: Int
                            if yl >= hgt - 1 { yl = hgt - 1; yh = yl; sy = Double(yl) } else { yh = yl + 1 }
                            if xl >= wid - 1 { xl = wid - 1; xh = xl; sx = Double(xl) } else { xh = xl + 1 }
                            let ly = sy - Double(yl), lx = sx - Double(xl)
                            samples.append([(yl * wid + xl, (1 - ly) * (1 - lx)), (yl * wid + xh, (1 - ly) * lx),
                                            (yh * wid + xl, ly * (1 - lx)), (yh * wid + xh, ly * lx)])
                        }
                    }
                    for ch in 0..<c {
                        let base = (b * c + ch) * hgt * wid
                        var acc = 0.0, best = -Double.infinity
                        for s in samples {
                            if mode == "avg" {
                                for (at, w) in s { acc += w * xv[base + at] }
                            } else {
                                let v = s.map { $0.1 * xv[base + $0.0] }.max() ?? 0
                                best = max(best, v)
                            }
                        }
                        y[((ri * c + ch) * ph + py) * pw + px] = mode == "avg" ? acc / count : (samples.isEmpty ? 0 : best)
                    }
                }
            }
        }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: [num, c, ph, pw])]
    }

    /// NonMaxSuppression: per batch and class, greedily keeps the highest-scoring boxes whose IoU
    /// with every kept box is at most iou_threshold. Output [k, 3] of (batch, class, box).
    static let nonMaxSuppression: Kernel = { ctx throws(RuntimeError) in
        let boxes = try ctx.input(0), scores = try ctx.input(1)
        guard boxes.shape.count == 3, boxes.shape[2] == 4, scores.shape.count == 3,
              scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
            throw ctx.fail("needs boxes [B, N, 4] and scores [B, C, N], got \(boxes.shape) and \(scores.shape)")
        }
        let maxOut = ctx.optionalInput(2).flatMap { $0.elementCount > 0 ? $0.int64s()[0] : nil } ?? 0
        let iou = ctx.optionalInput(3).flatMap { $0.elementCount > 0 ? $0.doubles()[0] : nil } ?? 0
        let scoreThreshold = ctx.optionalInput(4).flatMap { $0.elementCount > 0 ? $0.doubles()[0] : nil }
        let center = try ctx.int("center_point_box", 0)
        guard center == 0 || center == 1 else { throw ctx.fail("center_point_box must be 0 or 1, got \(center)") }
        let (nb, nc, nn) = (scores.shape[0], scores.shape[1], scores.shape[2])
        let bv = boxes.doubles(), sv = scores.doubles()
        func corners(_ b: Int, _ i: Int) -> (Double, Double, Double, Double) {
            let p = (b * nn + i) * 4
            if center == 1 {
                let (cx, cy, w, h) = (bv[p], bv[p + 1], bv[p + 2], bv[p + 3])
                return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            }
            return (min(bv[p + 1], bv[p + 3]), min(bv[p], bv[p + 2]), max(bv[p + 1], bv[p + 3]), max(bv[p], bv[p + 2]))
        }
        func suppresses(_ b: Int, _ i: Int, _ j: Int) -> Bool {
            let a = corners(b, i), c = corners(b, j)
            let ix = min(a.2, c.2) - max(a.0, c.0), iy = min(a.3, c.3) - max(a.1, c.1)
            guard ix > 0, iy > 0 else { return false }
            let inter = ix * iy
            let areaA = (a.2 - a.0) * (a.3 - a.1), areaC = (c.2 - c.0) * (c.3 - c.1)
            let union = areaA + areaC - inter
            guard areaA > 0, areaC > 0, union > 0 else { return false }
            return inter / union > iou
        }
        var out: [Int64] = []
        if maxOut > 0 {
            for b in 0..<nb {
                for cl in 0..<nc {
                    let base = (b * nc + cl) * nn
                    var cand = (0..<nn).filter { i in scoreThreshold.map { sv[base + i] > $0 } ?? true }
                    cand.sort { sv[base + $0] != sv[base + $1] ? sv[base + $0] > sv[base + $1] : $0 < $1 }
                    var kept: [Int] = []
                    for i in cand where Int64(kept.count) < maxOut {
                        if kept.contains(where: { suppresses(b, i, $0) }) { continue }
                        kept.append(i)
                        out += [Int64(b), Int64(cl), Int64(i)]
                    }
                }
            }
        }
        return [Tensor.fromInt64s(out, dtype: .int64, shape: [out.count / 3, 3])]
    }
}
