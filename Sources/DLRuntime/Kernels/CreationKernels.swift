#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLTensor

/// Ops that make tensors from shapes and attributes, convert types, and the integer ops with
/// attributes of their own (Mod, BitShift).
enum CreationKernels {
    static var all: [KernelEntry] {
        [.init("Cast", cast), .init("CastLike", castLike), .init("Shape", shape), .init("Size", size),
         .init("ConstantOfShape", constantOfShape), .init("Range", range), .init("EyeLike", eyeLike), .init("OneHot", oneHot),
         .init("Trilu", trilu), .init("BitCast", bitCast), .init("Mod", mod), .init("BitShift", bitShift)]
    }

    static func dtype(_ ctx: KernelContext, code: Int) throws(RuntimeError) -> DType {
        guard let t = DType(onnxCode: Int32(truncatingIfNeeded: code)) else {
            throw ctx.unsupported("element type \(code) is not supported (float8, 4-bit and complex types are not implemented)")
        }
        return t
    }

    static func convert(_ ctx: KernelContext, _ x: Tensor, to t: DType) throws(RuntimeError) -> Tensor {
        if x.dtype == t { return x }
        if t.isLowPrecisionFloat && x.dtype != .string {
            // `saturate` (default 1) clamps out-of-range values, infinities included, to the
            // largest finite value; float8e8m0 also has `round_mode` (default up).
            let saturate = try ctx.int("saturate", 1) != 0
            let values = x.doubles()
            var out = Tensor(zeros: t, shape: x.shape)
            if t == .float8e8m0 {
                let mode = try ctx.string("round_mode", "up")
                guard ["up", "down", "nearest"].contains(mode) else { throw ctx.fail("round_mode '\(mode)' is not up, down or nearest") }
                out.withUnsafeMutableBytes { b in
                    for i in values.indices { b[i] = CreationKernels.e8m0(values[i], saturate: saturate, mode: mode) }
                }
                return out
            }
            out.withUnsafeMutableBytes { b in
                for i in values.indices { b[i] = LowPrecision.encode(values[i], t, saturate: saturate) }
            }
            return out
        }
        if t == .string {
            if x.dtype == .bool { return Tensor(shape: x.shape, strings: x.bools().map { $0 ? "True" : "False" }) }
            if x.dtype.isInteger { return Tensor(shape: x.shape, strings: x.int64s().map { x.dtype == .uint64 ? String(UInt64(bitPattern: $0)) : String($0) }) }
            return Tensor(shape: x.shape, strings: x.doubles().map { formatFloat($0, x.dtype) })
        }
        if x.dtype == .string {
            var vals: [Double] = []
            for s in x.strings {
                let low = s.lowercased()
                if let v = Double(s) { vals.append(v) } else if ["inf", "+inf", "infinity", "+infinity"].contains(low) { vals.append(.infinity) }
                else if ["-inf", "-infinity"].contains(low) { vals.append(-.infinity) }
                else if low == "nan" || low == "-nan" { vals.append(.nan) }
                else { throw ctx.fail("string '\(s)' is not a number") }
            }
            if t.isInteger, t == .int64 || t == .uint64 {
                return Tensor.fromInt64s(x.strings.map { Int64($0) ?? UInt64($0).map { Int64(bitPattern: $0) } ?? Tensor.truncatedInt64(Double($0) ?? 0) }, dtype: t, shape: x.shape)
            }
            return Tensor.fromDoubles(vals, dtype: t, shape: x.shape)
        }
        if x.dtype.isInteger || x.dtype == .bool { return Tensor.fromInt64s(x.int64s(), dtype: t, shape: x.shape) }
        if t.isFloatingPoint && x.dtype == .float32 && t == .float16 { return x.converted(to: t) }
        return Tensor.fromDoubles(x.doubles(), dtype: t, shape: x.shape)
    }

    /// Floats as numpy prints them in the suite's Cast-to-string cases (shortest round-trip,
    /// exponent form for large or tiny magnitudes).
    static func formatFloat(_ v: Double, _ t: DType) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "INF" : "-INF" }
        let s = t == .float32 ? "\(Float(v))" : "\(v)"
        return s
    }

    /// float8e8m0 encoding with the three rounding modes of Cast-24 (on the float32 bits).
    static func e8m0(_ v: Double, saturate: Bool, mode: String) -> UInt8 {
        let bits = Float(v).bitPattern
        let e = Int((bits >> 23) & 0xFF)
        if e == 0xFF { return 0xFF }
        var out = e
        switch mode {
        case "nearest":
            let g = bits & 0x40_0000 != 0, r = bits & 0x20_0000 != 0, s = bits & 0x1F_FFFF != 0
            let lsb = e > 0
            if g && (r || s || lsb) && !(saturate && e == 0xFE) { out += 1 }
        case "up":
            if bits & 0x7F_FFFF != 0 && !(saturate && e == 0xFE) { out += 1 }
        default: break
        }
        return UInt8(truncatingIfNeeded: out)
    }

    static let cast: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        return [try convert(ctx, x, to: try dtype(ctx, code: try ctx.int("to", 1)))]
    }

    static let castLike: Kernel = { ctx throws(RuntimeError) in
        [try convert(ctx, try ctx.input(0), to: try ctx.input(1).dtype)]
    }

    static let shape: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let dims = Array(x.shape[try ctx.attribute { () throws(GraphError) in try ctx.node.shapeRange(rank: x.rank) }])
        return [Tensor.fromInt64s(dims.map(Int64.init), dtype: .int64, shape: [dims.count])]
    }

    static let size: Kernel = { ctx throws(RuntimeError) in
        [Tensor.fromInt64s([Int64(try ctx.input(0).elementCount)], dtype: .int64, shape: [])]
    }

    static let constantOfShape: Kernel = { ctx throws(RuntimeError) in
        guard let dims = try ctx.intList(0), dims.allSatisfy({ $0 >= 0 }), ShapeMath.elementCount(dims) != nil else {
            throw ctx.fail("the shape input must hold non-negative sizes")
        }
        let value = try ctx.attribute { () throws(GraphError) in try ctx.node.tensor("value") } ?? Tensor(shape: [1], scalars: [Float(0)])
        guard value.elementCount == 1 else { throw ctx.fail("value must hold one element") }
        let n = dims.reduce(1, *)
        try ctx.checkValueSized(elements: n, value.dtype)
        let flat = (try? value.reshaped(to: [1])) ?? value
        return [flat.gathered([Int](repeating: 0, count: n), shape: dims)]
    }

    static let range: Kernel = { ctx throws(RuntimeError) in
        let s = try ctx.input(0), l = try ctx.input(1), d = try ctx.input(2)
        // Scalars by the spec; a file may give any shape (found by fuzz-onnx-attributes).
        guard s.elementCount == 1, l.elementCount == 1, d.elementCount == 1 else {
            throw ctx.fail("start, limit and delta must be scalars, not \(s.shape), \(l.shape), \(d.shape)")
        }
        if s.dtype.isInteger {
            let a = s.int64s()[0], b = l.int64s()[0], step = d.int64s()[0]
            guard step != 0 else { throw ctx.fail("delta is 0") }
            // In Double: b - a may overflow Int64, and the count is checked before it becomes an Int.
            let count = max(0, ((Double(b) - Double(a)) / Double(step)).rounded(.up))
            guard count <= Double(1 << 31) else { throw ctx.fail("range of \(count) elements is too large") }
            let n = Int(count)
            try ctx.checkValueSized(elements: n, s.dtype)
            return [Tensor.fromInt64s((0..<n).map { a &+ Int64($0) &* step }, dtype: s.dtype, shape: [n])]
        }
        let a = s.doubles()[0], b = l.doubles()[0], step = d.doubles()[0]
        guard step != 0, step.isFinite, a.isFinite, b.isFinite else { throw ctx.fail("start, limit and delta must be finite and delta non-zero") }
        let count = max(0, ((b - a) / step).rounded(.up))
        guard count <= Double(1 << 31) else { throw ctx.fail("range of \(count) elements is too large") }
        let n = Int(count)
        try ctx.checkValueSized(elements: n, s.dtype)
        // Accumulate in the element type, as the spec's loop does.
        var out: [Double] = []
        out.reserveCapacity(n)
        if s.dtype == .float32 {
            var v = Float(a)
            for _ in 0..<n { out.append(Double(v)); v += Float(step) }
        } else {
            for i in 0..<n { out.append(a + Double(i) * step) }
        }
        return [Tensor.fromDoubles(out, dtype: s.dtype, shape: [n])]
    }

    static let eyeLike: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.rank == 2 else { throw ctx.fail("EyeLike needs a 2-D input, got rank \(x.rank)") }
        let t = ctx.node.attribute("dtype") == nil ? x.dtype : try dtype(ctx, code: try ctx.int("dtype", 1))
        let k = try ctx.int("k", 0)
        var v = [Int64](repeating: 0, count: x.elementCount)
        for r in 0..<x.shape[0] where r + k >= 0 && r + k < x.shape[1] { v[r * x.shape[1] + r + k] = 1 }
        return [Tensor.fromInt64s(v, dtype: t, shape: x.shape)]
    }

    static let oneHot: Kernel = { ctx throws(RuntimeError) in
        let ind = try ctx.input(0), depthT = try ctx.input(1), values = try ctx.input(2)
        guard values.elementCount == 2 else { throw ctx.fail("values must hold [off, on]") }
        let depth = Int(depthT.doubles().first ?? 0)
        guard depth > 0 else { throw ctx.fail("depth must be positive") }
        let r = ind.rank + 1
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: r)
        var shape = ind.shape
        shape.insert(depth, at: axis)
        let idx = ind.doubles().map { Int64($0) }
        let (outer, _, inner) = IndexMath.around(shape, axis: axis)
        var map = [Int](repeating: 0, count: shape.reduce(1, *))
        let flatValues = (try? values.reshaped(to: [2])) ?? values
        for o in 0..<outer {
            for i in 0..<inner {
                var hot = idx[o * inner + i]
                if hot < 0 { hot += Int64(depth) }
                for d in 0..<depth { map[(o * depth + d) * inner + i] = Int64(d) == hot ? 1 : 0 }
            }
        }
        return [flatValues.gathered(map, shape: shape)]
    }

    static let trilu: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.rank >= 2 else { throw ctx.fail("Trilu needs rank 2 or more") }
        let k = try ctx.intList(1)?.first ?? 0
        let upper = try ctx.int("upper", 1) != 0
        let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
        let zero = Tensor(zeros: x.dtype, shape: [1])
        let src = MathKernels.concatFlat((try? x.reshaped(to: [x.elementCount])) ?? x, zero)
        var map = Array(0..<x.elementCount)
        for i in 0..<x.elementCount {
            let c = i % cols, r = (i / max(cols, 1)) % max(rows, 1)
            let keep = upper ? c - r >= k : c - r <= k
            if !keep { map[i] = x.elementCount }
        }
        return [src.gathered(map, shape: x.shape)]
    }

    static let bitCast: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let t = try dtype(ctx, code: try ctx.int("to", 1))
        guard t != .string, x.dtype != .string else { throw ctx.fail("BitCast of strings is not defined") }
        var shape = x.shape
        if t.byteWidth != x.dtype.byteWidth {
            if t.byteWidth < x.dtype.byteWidth { shape.append(x.dtype.byteWidth / t.byteWidth) } else {
                guard shape.last == t.byteWidth / x.dtype.byteWidth else { throw ctx.fail("the last dimension must be \(t.byteWidth / x.dtype.byteWidth) to cast \(x.dtype) to \(t)") }
                shape.removeLast()
            }
        }
        do {
            return [try x.withUnsafeBytes { (b) throws(TensorError) in try Tensor(dtype: t, shape: shape, bytes: b) }]
        } catch { throw ctx.fail("\(error)") }
    }

    static let mod: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1)
        let fmodMode = try ctx.int("fmod", 0) != 0
        let (shape, maps) = try MathKernels.broadcast(ctx, [a, b])
        let n = shape.reduce(1, *)
        if a.dtype.isFloatingPoint {
            let x = a.doubles(), y = b.doubles()
            return [Tensor.fromDoubles((0..<n).map { i in
                let p = x[maps[0][i]], q = y[maps[1][i]]
                let r = fmod(p, q)
                return fmodMode || r == 0 || (r < 0) == (q < 0) ? r : r + q
            }, dtype: a.dtype, shape: shape)]
        }
        let x = a.int64s(), y = b.int64s(), u = a.dtype.isUnsigned
        return [Tensor.fromInt64s((0..<n).map { i in
            let p = x[maps[0][i]], q = y[maps[1][i]]
            if q == 0 { return 0 }
            if u { return Int64(bitPattern: UInt64(bitPattern: p) % UInt64(bitPattern: q)) }
            if q == -1 { return 0 }
            let r = p % q
            return fmodMode || r == 0 || (r < 0) == (q < 0) ? r : r + q
        }, dtype: a.dtype, shape: shape)]
    }

    static let bitShift: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1)
        let left = try ctx.string("direction", "") == "LEFT"
        let (shape, maps) = try MathKernels.broadcast(ctx, [a, b])
        let width = Int64(a.dtype.byteWidth * 8)
        let signed = !a.dtype.isUnsigned
        let x = a.int64s(), y = b.int64s()
        // Signed values shift arithmetically; a shift that is negative or at least the width
        // leaves 0, or the sign (-1 or 0) for a signed right shift.
        return [Tensor.fromInt64s((0..<shape.reduce(1, *)).map { i in
            let v = x[maps[0][i]], s = y[maps[1][i]]
            let outOfRange = s < 0 || s >= width || (a.dtype == .uint64 && UInt64(bitPattern: s) >= 64)
            if left { return outOfRange ? 0 : v << s }
            if outOfRange { return signed && v < 0 ? -1 : 0 }
            if signed { return v >> s }
            return Int64(bitPattern: UInt64(bitPattern: v) >> UInt64(s))
        }, dtype: a.dtype, shape: shape)]
    }
}
