import CTensorFlowProtos

/// Borrowed protobuf-c values to Swift.
enum PB {
    static func string(_ p: UnsafeMutablePointer<CChar>?) -> String {
        guard let p else { return "" }
        return String(cString: p)
    }

    /// The non-NULL elements of a repeated message field.
    static func messages<T>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int) -> [UnsafeMutablePointer<T>] {
        guard let p, n > 0 else { return [] }
        return (0..<n).compactMap { p[$0] }
    }

    static func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
        guard let p, n > 0 else { return [] }
        return (0..<n).map { string(p[$0]) }
    }

    static func scalars<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> [T] {
        guard let p, n > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    static func bytes(_ b: ProtobufCBinaryData) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: b.data, count: b.data == nil ? 0 : b.len)
    }

    /// A shape's dimensions (-1 for unknown); nil when the rank is unknown or a size is invalid.
    static func dims(_ s: UnsafeMutablePointer<Tensorflow__TensorShapeProto>?) -> [Int]? {
        guard let s else { return [] }
        if s.pointee.unknown_rank != 0 { return nil }
        var out: [Int] = []
        for d in messages(s.pointee.dim, s.pointee.n_dim) {
            let n = d.pointee.size
            guard n >= -1, n <= Int64(Int32.max) * 64 else { return nil }
            out.append(Int(n))
        }
        return out
    }
}
