/// One dimension of a shape as a graph knows it before it runs: a number, a named symbol shared by
/// every place that uses the same name (`batch`, `seq`), or not known at all.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)
    case unknown

    public var value: Int? {
        if case .fixed(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .fixed(let v): String(v)
        case .symbolic(let s): s
        case .unknown: "?"
        }
    }
}

extension Array where Element == Dim {
    /// The concrete sizes when every dimension is fixed.
    public var concrete: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(count)
        for d in self {
            guard let v = d.value else { return nil }
            out.append(v)
        }
        return out
    }

    public init(_ sizes: [Int]) { self = sizes.map { .fixed($0) } }
}

/// Helpers on concrete shapes (`[Int]`, row-major).
public enum ShapeMath {
    /// The element count of a shape, or nil when a size is negative or the product overflows `Int`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Row-major strides, in elements.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc &*= shape[i]
        }
        return s
    }
}
