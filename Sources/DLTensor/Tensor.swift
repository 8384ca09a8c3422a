/// An n-dimensional array of one element type, row-major and contiguous.
///
/// A value type: copies share storage until one of them writes (copy-on-write). A tensor may view
/// bytes of a memory-mapped file; writing to it then copies those bytes first.
/// String tensors keep their elements in `strings`; they exist so graphs can carry them.
public struct Tensor: Sendable {
    public let dtype: DType
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage
    /// Elements of a `.string` tensor; empty for every other type.
    public private(set) var strings: [String]

    public var rank: Int { shape.count }
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.byteWidth }
    /// True when the bytes are a view into a memory-mapped file.
    public var isMapped: Bool { storage.isReadOnly }

    /// A zero-filled tensor.
    /// - Precondition: sizes are non-negative and their product fits in memory; callers that build
    ///   shapes from untrusted data check with `ShapeMath.elementCount` first.
    public init(zeros dtype: DType, shape: [Int]) {
        guard let n = ShapeMath.elementCount(shape) else { preconditionFailure("invalid shape \(shape)") }
        self.dtype = dtype
        self.shape = shape
        self.storage = TensorStorage(zeroedByteCount: n * dtype.byteWidth)
        self.strings = dtype == .string ? Array(repeating: "", count: n) : []
    }

    /// A tensor holding `scalars` in row-major order.
    /// - Precondition: `scalars.count` equals the product of `shape`.
    public init<T: TensorScalar>(shape: [Int], scalars: [T]) {
        guard let n = ShapeMath.elementCount(shape), n == scalars.count else {
            preconditionFailure("shape \(shape) needs a different element count than \(scalars.count)")
        }
        dtype = T.dtype
        self.shape = shape
        storage = TensorStorage(uninitializedByteCount: n * MemoryLayout<T>.stride)
        strings = []
        scalars.withUnsafeBytes { src in
            if let b = src.baseAddress { storage.pointer.copyMemory(from: b, byteCount: src.count) }
        }
    }

    /// A 0-dimensional tensor.
    public init<T: TensorScalar>(scalar: T) { self.init(shape: [], scalars: [scalar]) }

    /// A string tensor.
    public init(shape: [Int], strings: [String]) {
        precondition(ShapeMath.elementCount(shape) == strings.count, "shape and string count differ")
        dtype = .string
        self.shape = shape
        storage = TensorStorage(zeroedByteCount: 0)
        self.strings = strings
    }

    /// A tensor made from the little-endian bytes of its elements (copied).
    /// - Throws: `TensorError.byteCountMismatch` when `bytes` is not exactly the size the shape needs.
    public init(dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws(TensorError) {
        guard dtype != .string else { throw .unsupportedDType(dtype) }
        guard let n = ShapeMath.elementCount(shape) else { throw .invalidShape(shape) }
        let (need, o) = n.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !o, need == bytes.count else {
            throw .byteCountMismatch(shape: shape, dtype: dtype, expected: o ? nil : need, actual: bytes.count)
        }
        self.dtype = dtype
        self.shape = shape
        storage = TensorStorage(uninitializedByteCount: need)
        strings = []
        if let b = bytes.baseAddress, need > 0 { storage.pointer.copyMemory(from: b, byteCount: need) }
    }

    /// A read-only view of `file` bytes `offset ..< offset + byteCount` as a tensor; nothing is copied.
    /// - Throws: `TensorError` when the shape is invalid or the range is not inside the file.
    public init(dtype: DType, shape: [Int], viewing file: MappedFile, offset: Int) throws(TensorError) {
        guard dtype != .string else { throw .unsupportedDType(dtype) }
        guard let n = ShapeMath.elementCount(shape) else { throw .invalidShape(shape) }
        let (need, o) = n.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !o, offset >= 0, offset <= file.byteCount, need <= file.byteCount - offset else {
            throw .outsideFile(path: file.path, offset: offset, byteCount: o ? nil : need, fileSize: file.byteCount)
        }
        self.dtype = dtype
        self.shape = shape
        storage = TensorStorage(view: file, offset: offset, count: need)
        strings = []
    }

    /// Calls `body` with the tensor's bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: byteCount))
    }

    /// Calls `body` with the tensor's bytes for writing, first copying them when they are shared or
    /// a read-only view.
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        makeUniqueAndWritable()
        return try body(UnsafeMutableRawBufferPointer(start: storage.pointer, count: byteCount))
    }

    /// Typed read access. - Precondition: `T.dtype == dtype`.
    public func withUnsafeBufferPointer<T: TensorScalar, R>(
        as: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R
    ) rethrows -> R {
        precondition(T.dtype == dtype, "tensor holds \(dtype), not \(T.dtype)")
        let p = storage.pointer.assumingMemoryBound(to: T.self)
        return try body(UnsafeBufferPointer(start: p, count: elementCount))
    }

    /// Typed write access. - Precondition: `T.dtype == dtype`.
    public mutating func withUnsafeMutableBufferPointer<T: TensorScalar, R>(
        as: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        precondition(T.dtype == dtype, "tensor holds \(dtype), not \(T.dtype)")
        makeUniqueAndWritable()
        let p = storage.pointer.assumingMemoryBound(to: T.self)
        return try body(UnsafeMutableBufferPointer(start: p, count: elementCount))
    }

    /// The elements as a Swift array. - Precondition: `T.dtype == dtype`.
    public func scalars<T: TensorScalar>(as type: T.Type = T.self) -> [T] {
        withUnsafeBufferPointer(as: T.self) { Array($0) }
    }

    /// Every element converted to Double (bool → 0/1, float16/bfloat16 widened).
    public func doubles() -> [Double] {
        let n = elementCount
        let p = UnsafeRawPointer(storage.pointer)
        var out = [Double](repeating: 0, count: n)
        func fill<T: TensorScalar>(_: T.Type) {
            let t = p.assumingMemoryBound(to: T.self)
            for i in 0..<n { out[i] = t[i].doubleValue }
        }
        switch dtype {
        case .float32: fill(Float.self)
        case .float64: fill(Double.self)
        case .float16:
            let t = p.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { out[i] = Double(HalfConversion.float(fromHalfBits: t[i])) }
        case .bfloat16: fill(BFloat16.self)
        case .int8: fill(Int8.self)
        case .int16: fill(Int16.self)
        case .int32: fill(Int32.self)
        case .int64: fill(Int64.self)
        case .uint8: fill(UInt8.self)
        case .uint16: fill(UInt16.self)
        case .uint32: fill(UInt32.self)
        case .uint64: fill(UInt64.self)
        case .bool:
            let t = p.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { out[i] = t[i] != 0 ? 1 : 0 }
        case .int4, .int2: fill(Int8.self)
        case .uint4, .uint2: fill(UInt8.self)
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            let t = p.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { out[i] = LowPrecision.decode(t[i], dtype) }
        case .string: break
        }
        return out
    }

    /// A tensor of `dtype` with the same shape whose elements are these converted (through Double,
    /// integers saturating; for 64-bit integers exact when both sides are integers of that width).
    public func converted(to target: DType) -> Tensor {
        if target == dtype { return self }
        precondition(dtype != .string && target != .string, "string tensors do not convert")
        let values = doubles()
        let out = Tensor(zeros: target, shape: shape)
        let p = out.storage.pointer
        func store<T: TensorScalar>(_: T.Type) {
            let t = p.assumingMemoryBound(to: T.self)
            for i in values.indices { t[i] = T(fromDouble: values[i]) }
        }
        switch target {
        case .float32: store(Float.self)
        case .float64: store(Double.self)
        case .float16:
            let t = p.assumingMemoryBound(to: UInt16.self)
            for i in values.indices { t[i] = HalfConversion.halfBits(from: Float(values[i])) }
        case .bfloat16: store(BFloat16.self)
        case .int8: store(Int8.self)
        case .int16: store(Int16.self)
        case .int32: store(Int32.self)
        case .int64: store(Int64.self)
        case .uint8: store(UInt8.self)
        case .uint16: store(UInt16.self)
        case .uint32: store(UInt32.self)
        case .uint64: store(UInt64.self)
        case .bool: store(Bool.self)
        case .int4, .int2:
            // Wrapped to the width and sign-extended, as a C cast to the narrow type would.
            let shift = 8 - target.bitWidth
            let t = p.assumingMemoryBound(to: Int8.self)
            for i in values.indices { t[i] = Int8(truncatingIfNeeded: Int64(fromDouble: values[i].rounded(.towardZero)) << shift) >> Int8(shift) }
        case .uint4, .uint2:
            let mask = UInt8((1 << target.bitWidth) - 1)
            let t = p.assumingMemoryBound(to: UInt8.self)
            for i in values.indices { t[i] = UInt8(truncatingIfNeeded: Int64(fromDouble: values[i].rounded(.towardZero))) & mask }
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            let t = p.assumingMemoryBound(to: UInt8.self)
            for i in values.indices { t[i] = LowPrecision.encode(values[i], target, saturate: false) }
        case .string: break
        }
        return out
    }

    /// The same elements under another shape of equal element count; shares storage.
    public func reshaped(to newShape: [Int]) throws(TensorError) -> Tensor {
        guard let n = ShapeMath.elementCount(newShape), n == elementCount else {
            throw .reshapeMismatch(from: shape, to: newShape)
        }
        var t = self
        t.shape = newShape
        return t
    }

    /// True when both hold the same type, shape and bytes (strings compared as strings).
    public func bitwiseEqual(_ other: Tensor) -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        if dtype == .string { return strings == other.strings }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in a.elementsEqual(b) } }
    }

    /// A tensor of `shape` over `storage`, which must hold exactly the bytes the shape needs;
    /// shares it, nothing copied (runtimes recycling buffers). - Precondition: sizes agree, not `.string`.
    package init(dtype: DType, shape: [Int], sharing storage: TensorStorage) {
        precondition(dtype != .string && ShapeMath.elementCount(shape).map { $0 * dtype.byteWidth } == storage.byteCount,
                     "storage of \(storage.byteCount) bytes does not fit \(dtype) \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.strings = []
    }

    /// The storage object behind the tensor (shared, not copied).
    package var sharedStorage: TensorStorage { storage }

    /// True when this tensor is the only holder of its bytes and they are an owned, writable
    /// allocation (so they may be reused once this tensor is dropped).
    public mutating func isUniquelyOwnedAndWritable() -> Bool {
        !storage.isReadOnly && isKnownUniquelyReferenced(&storage)
    }

    /// Typed write access that skips copy-on-write: for a runtime that knows no other reader of
    /// these bytes remains (an input that dies at the op overwriting it in place).
    /// - Precondition: `T.dtype == dtype`; the bytes are not a read-only view.
    package func withUnsafeMutableBufferPointerInPlace<T: TensorScalar, R>(
        as: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        precondition(T.dtype == dtype && !storage.isReadOnly, "in-place write to \(dtype) read-only=\(storage.isReadOnly)")
        let p = storage.pointer.assumingMemoryBound(to: T.self)
        return try body(UnsafeMutableBufferPointer(start: p, count: elementCount))
    }

    /// Raw write access that skips copy-on-write (see ``withUnsafeMutableBufferPointerInPlace(as:_:)``).
    /// - Precondition: not a string tensor; the bytes are not a read-only view.
    public func withUnsafeMutableBytesInPlace<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        precondition(dtype != .string && !storage.isReadOnly, "in-place write to \(dtype) read-only=\(storage.isReadOnly)")
        return try body(UnsafeMutableRawBufferPointer(start: storage.pointer, count: storage.byteCount))
    }

    mutating func makeUniqueAndWritable() {
        if storage.isReadOnly || !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(uninitializedByteCount: storage.byteCount)
            if storage.byteCount > 0 {
                copy.pointer.copyMemory(from: storage.pointer, byteCount: storage.byteCount)
            }
            storage = copy
        }
    }
}

public enum TensorError: Error, CustomStringConvertible, Equatable {
    case invalidShape([Int])
    case byteCountMismatch(shape: [Int], dtype: DType, expected: Int?, actual: Int)
    case outsideFile(path: String, offset: Int, byteCount: Int?, fileSize: Int)
    case reshapeMismatch(from: [Int], to: [Int])
    case unsupportedDType(DType)

    public var description: String {
        switch self {
        case .invalidShape(let s): "invalid shape \(s): sizes must be non-negative and their product must fit in memory"
        case .byteCountMismatch(let s, let d, let e, let a):
            "shape \(s) of \(d) needs \(e.map(String.init) ?? "more than addressable") bytes, got \(a)"
        case .outsideFile(let p, let o, let n, let size):
            "\(p): \(n.map(String.init) ?? "too many") bytes at offset \(o) run past the end of the file (\(size) bytes)"
        case .reshapeMismatch(let f, let t): "cannot reshape \(f) to \(t): element counts differ"
        case .unsupportedDType(let d): "\(d) tensors cannot be built from raw bytes"
        }
    }
}
