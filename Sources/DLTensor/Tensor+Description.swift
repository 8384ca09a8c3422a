/// `Tensor` as a value: equality of type, shape and bytes, and a printable form.
extension Tensor: Equatable, CustomStringConvertible {
    /// Equal when dtype, shape and every element's bytes are equal (for strings, the strings). This
    /// is bitwise equality, not IEEE comparison: a NaN equals the same NaN (so `==` stays
    /// reflexive, as `Equatable` requires) and `0.0` differs from `-0.0`. Compare values with a
    /// tolerance for numerics.
    public static func == (a: Tensor, b: Tensor) -> Bool { a.bitwiseEqual(b) }

    /// `float32[2, 3] [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]`; tensors of more than 1,000 elements show
    /// their first and last three elements in row-major order.
    public var description: String {
        let head = "\(dtype)\(shape)"
        if dtype == .string {
            let quoted = strings.prefix(1_000).map { "\"\($0)\"" }
            return "\(head) \(nest(quoted, dims: shape))"
        }
        let n = elementCount
        if n <= 1_000 { return "\(head) \(nest(Self.format(doubles(), dtype), dims: shape))" }
        let w = dtype.byteWidth
        let ends: [Double] = withUnsafeBytes { raw in
            let pick = [0, 1, 2, n - 3, n - 2, n - 1]
            var bytes: [UInt8] = []
            for i in pick { bytes += raw[(i * w)..<((i + 1) * w)] }
            return bytes.withUnsafeBytes { b in (try? Tensor(dtype: dtype, shape: [6], bytes: b))?.doubles() ?? [] }
        }
        let shown = Self.format(ends, dtype)
        return "\(head) [\(shown.prefix(3).joined(separator: ", ")), ..., \(shown.suffix(3).joined(separator: ", "))]"
    }

    /// Elements as text in their own precision (a float32 0.1 prints as 0.1, not 0.10000000149).
    static func format(_ values: [Double], _ dtype: DType) -> [String] {
        switch dtype {
        case .bool: values.map { $0 != 0 ? "true" : "false" }
        case .float64: values.map { "\($0)" }
        case _ where dtype.isFloatingPoint: values.map { "\(Float($0))" }
        default: values.map { $0.isFinite && abs($0) < 9.2e18 ? "\(Int64($0))" : "\($0)" }
        }
    }

    /// Nests a flat list into brackets by `dims` (a scalar prints bare).
    func nest(_ items: [String], dims: [Int]) -> String {
        guard let first = dims.first else { return items.first ?? "" }
        let inner = dims.dropFirst().reduce(1, *)
        var parts: [String] = []
        for i in 0..<first {
            let lo = i * inner
            guard lo <= items.count else { break }
            let slice = Array(items[lo..<min(lo + inner, items.count)])
            parts.append(dims.count == 1 ? (slice.first ?? "") : nest(slice, dims: Array(dims.dropFirst())))
        }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}
