import DLTensor

/// Element access in a common wide type, for kernels that serve every dtype with one loop.
///
/// Floating-point kernels compute in Double and round once when storing, which is at least as
/// accurate as computing in the element type; integer kernels compute in Int64 (uint64 by bit
/// pattern) so 64-bit values stay exact. These paths are for breadth; hot float32 ops keep their
/// own kernels.
extension Tensor {
    /// The elements as Int64: integers exactly (uint64 by bit pattern), bool as 0/1, floats
    /// truncated toward zero (NaN as 0, saturating at the Int64 bounds).
    func int64s() -> [Int64] {
        let n = elementCount
        var out = [Int64](repeating: 0, count: n)
        withUnsafeBytes { raw in
            func load<T: FixedWidthInteger>(_: T.Type) {
                let p = raw.bindMemory(to: T.self)
                for i in 0..<n { out[i] = Int64(truncatingIfNeeded: p[i]) }
            }
            switch dtype {
            case .int8: load(Int8.self)
            case .int16: load(Int16.self)
            case .int32: load(Int32.self)
            case .int64: load(Int64.self)
            case .uint8, .bool: load(UInt8.self)
            case .uint16: load(UInt16.self)
            case .uint32: load(UInt32.self)
            case .uint64: load(UInt64.self)
            case .int4, .int2: load(Int8.self)
            case .uint4, .uint2: load(UInt8.self)
            case .float32, .float64, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2,
                 .float8e5m2fnuz, .float8e8m0, .float4e2m1:
                let d = doubles()
                for i in 0..<n { out[i] = Tensor.truncatedInt64(d[i]) }
            case .string: break
            }
        }
        return out
    }

    /// The elements as Swift Bools (non-zero is true).
    func bools() -> [Bool] {
        if dtype == .bool { return withUnsafeBytes { raw in raw.prefix(elementCount).map { $0 != 0 } } }
        if dtype.isFloatingPoint { return doubles().map { $0 != 0 } }
        return int64s().map { $0 != 0 }
    }

    /// Truncation toward zero that never traps.
    static func truncatedInt64(_ v: Double) -> Int64 {
        if v.isNaN { return 0 }
        if v >= 9.223372036854775807e18 { return .max }
        if v <= -9.223372036854775808e18 { return .min }
        return Int64(v.rounded(.towardZero))
    }

    /// A tensor of `dtype` from Doubles. Floats round to nearest; integers truncate toward zero
    /// and wrap to their width (as a C cast does); bool is `v != 0`.
    static func fromDoubles(_ values: [Double], dtype: DType, shape: [Int]) -> Tensor {
        if dtype.isFloatingPoint {
            let t = Tensor(shape: shape, scalars: values)
            return t.converted(to: dtype)
        }
        if dtype == .bool { return fromInt64s(values.map { $0 != 0 && !$0.isNaN ? 1 : 0 }, dtype: .bool, shape: shape) }
        if dtype == .uint64 {
            return fromInt64s(values.map { v in
                v >= 9.223372036854775807e18 && v < 1.8446744073709552e19
                    ? Int64(bitPattern: UInt64(v.rounded(.towardZero))) : truncatedInt64(v)
            }, dtype: dtype, shape: shape)
        }
        return fromInt64s(values.map(truncatedInt64), dtype: dtype, shape: shape)
    }

    /// A tensor of `dtype` from Int64 values, wrapped to the type's width (bool: non-zero);
    /// floats convert to the nearest value.
    static func fromInt64s(_ values: [Int64], dtype: DType, shape: [Int]) -> Tensor {
        if dtype.isFloatingPoint {
            return fromDoubles(values.map { Double($0) }, dtype: dtype, shape: shape)
        }
        var t = Tensor(zeros: dtype, shape: shape)
        let n = values.count
        t.withUnsafeMutableBytes { raw in
            func store<T: FixedWidthInteger>(_: T.Type) {
                let p = raw.bindMemory(to: T.self)
                for i in 0..<n { p[i] = T(truncatingIfNeeded: values[i]) }
            }
            switch dtype {
            case .int8: store(Int8.self)
            case .int16: store(Int16.self)
            case .int32: store(Int32.self)
            case .int64: store(Int64.self)
            case .uint8: store(UInt8.self)
            case .uint16: store(UInt16.self)
            case .uint32: store(UInt32.self)
            case .uint64: store(UInt64.self)
            case .int4, .int2:
                let shift = Int64(8 - dtype.bitWidth)
                let p = raw.bindMemory(to: Int8.self)
                for i in 0..<n { p[i] = Int8(truncatingIfNeeded: (values[i] << shift)) >> Int8(shift) }
            case .uint4, .uint2:
                let mask = Int64((1 << dtype.bitWidth) - 1)
                let p = raw.bindMemory(to: UInt8.self)
                for i in 0..<n { p[i] = UInt8(truncatingIfNeeded: values[i] & mask) }
            case .bool:
                let p = raw.bindMemory(to: UInt8.self)
                for i in 0..<n { p[i] = values[i] != 0 ? 1 : 0 }
            default: break
            }
        }
        return t
    }

    static func fromBools(_ values: [Bool], shape: [Int]) -> Tensor {
        fromInt64s(values.map { $0 ? 1 : 0 }, dtype: .bool, shape: shape)
    }

    /// A tensor of the same dtype whose element `i` is element `indices[i]` of this one.
    /// - Precondition: every index is in range (callers validate indices that come from data).
    func gathered(_ indices: [Int], shape: [Int]) -> Tensor {
        if dtype == .string { return Tensor(shape: shape, strings: indices.map { strings[$0] }) }
        var out = Tensor(zeros: dtype, shape: shape)
        let w = dtype.byteWidth
        withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                switch w {
                case 1:
                    let sp = s.assumingMemoryBound(to: UInt8.self), dp = d.assumingMemoryBound(to: UInt8.self)
                    for (i, j) in indices.enumerated() { dp[i] = sp[j] }
                case 2:
                    let sp = s.assumingMemoryBound(to: UInt16.self), dp = d.assumingMemoryBound(to: UInt16.self)
                    for (i, j) in indices.enumerated() { dp[i] = sp[j] }
                case 4:
                    let sp = s.assumingMemoryBound(to: UInt32.self), dp = d.assumingMemoryBound(to: UInt32.self)
                    for (i, j) in indices.enumerated() { dp[i] = sp[j] }
                default:
                    let sp = s.assumingMemoryBound(to: UInt64.self), dp = d.assumingMemoryBound(to: UInt64.self)
                    for (i, j) in indices.enumerated() { dp[i] = sp[j] }
                }
            }
        }
        return out
    }

    /// Copies element `srcIndex` of `source` (same dtype) into element `dstIndex` of this tensor.
    mutating func assign(from source: Tensor, pairs: [(dst: Int, src: Int)]) {
        if dtype == .string {
            var s = strings
            for (d, j) in pairs { s[d] = source.strings[j] }
            self = Tensor(shape: shape, strings: s)
            return
        }
        let w = dtype.byteWidth
        source.withUnsafeBytes { src in
            withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let t = dst.baseAddress else { return }
                for (d, j) in pairs { (t + d * w).copyMemory(from: s + j * w, byteCount: w) }
            }
        }
    }

    /// A zero-filled tensor of the same dtype with another shape ("" for strings).
    func emptyLike(shape: [Int]) -> Tensor { Tensor(zeros: dtype, shape: shape) }
}
