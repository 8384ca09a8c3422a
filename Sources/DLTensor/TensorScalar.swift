/// A Swift type that is the in-memory form of one `DType`.
public protocol TensorScalar: Sendable {
    static var dtype: DType { get }
    /// The value as a Double (exact for all but 64-bit integers beyond 2^53).
    var doubleValue: Double { get }
    /// The value nearest to `v`, saturating integers at their bounds; NaN becomes 0 for integers.
    init(fromDouble v: Double)
}

extension Float: TensorScalar {
    public static var dtype: DType { .float32 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = Float(v) }
}
extension Double: TensorScalar {
    public static var dtype: DType { .float64 }
    public var doubleValue: Double { self }
    public init(fromDouble v: Double) { self = v }
}
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: TensorScalar {
    public static var dtype: DType { .float16 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = Float16(Float(v)) }
}
#endif
extension BFloat16: TensorScalar {
    public static var dtype: DType { .bfloat16 }
    public var doubleValue: Double { Double(self.floatValue) }
    public init(fromDouble v: Double) { self = BFloat16(Float(v)) }
}
extension Bool: TensorScalar {
    public static var dtype: DType { .bool }
    public var doubleValue: Double { self ? 1 : 0 }
    public init(fromDouble v: Double) { self = v != 0 && !v.isNaN }
}

/// Integer conversion from Double that never traps: NaN → 0, out of range → the nearest bound.
@inline(__always)
func saturating<I: FixedWidthInteger>(_ v: Double, as: I.Type) -> I {
    if v.isNaN { return 0 }
    if v <= Double(I.min) { return I.min }
    if v >= Double(I.max) { return I.max }
    return I(v.rounded(.towardZero))
}

extension Int8: TensorScalar {
    public static var dtype: DType { .int8 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: Int8.self) }
}
extension Int16: TensorScalar {
    public static var dtype: DType { .int16 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: Int16.self) }
}
extension Int32: TensorScalar {
    public static var dtype: DType { .int32 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: Int32.self) }
}
extension Int64: TensorScalar {
    public static var dtype: DType { .int64 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: Int64.self) }
}
extension UInt8: TensorScalar {
    public static var dtype: DType { .uint8 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: UInt8.self) }
}
extension UInt16: TensorScalar {
    public static var dtype: DType { .uint16 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: UInt16.self) }
}
extension UInt32: TensorScalar {
    public static var dtype: DType { .uint32 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: UInt32.self) }
}
extension UInt64: TensorScalar {
    public static var dtype: DType { .uint64 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble v: Double) { self = saturating(v, as: UInt64.self) }
}
