/// Axis attributes and inputs (Softmax, Concat, Gather, Flatten, Split, the reductions,
/// Squeeze/Unsqueeze, ...): a negative axis counts from the end. The one normalisation for shape
/// inference, kernels, gradient rules, passes and importers.
package enum Axes {
    /// `a` as an index into `rank` dims; nil when out of range. With `inclusive`, `rank` itself
    /// is allowed too (a position between dims, as Flatten's axis).
    package static func normalise(_ a: Int, rank: Int, inclusive: Bool = false) -> Int? {
        let v = a < 0 ? a + rank : a
        return v >= 0 && (v < rank || (inclusive && v == rank)) ? v : nil
    }

    /// Every axis of `list` normalised against `rank`; nil when one is out of range or two
    /// name the same dim.
    package static func normalise(_ list: [Int], rank: Int) -> [Int]? {
        var out: [Int] = []
        for a in list {
            guard let v = normalise(a, rank: rank), !out.contains(v) else { return nil }
            out.append(v)
        }
        return out
    }
}

extension Node {
    /// The dims a Shape node returns for an input of `rank` dims: its `start` and `end`
    /// attributes (negative counting from the end) clamped to 0...rank; empty when they cross.
    /// - Throws: `GraphError.attributeType` when one is not an int.
    package func shapeRange(rank: Int) throws(GraphError) -> Range<Int> {
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let s = clamp(try int("start", default: 0)), e = clamp(try int("end", default: rank))
        return s < e ? s..<e : s..<s
    }

    /// The int attribute `name` (default `defaultValue`) normalised as an axis of a rank-`rank`
    /// value (see ``Axes/normalise(_:rank:inclusive:)``).
    /// - Throws: `GraphError.invalidAttribute` naming the node when it is out of range.
    package func axis(_ name: String = "axis", default defaultValue: Int, rank: Int, inclusive: Bool = false) throws(GraphError) -> Int {
        let a = try int(name, default: defaultValue)
        guard let v = Axes.normalise(a, rank: rank, inclusive: inclusive) else {
            let range = inclusive ? "-\(rank)...\(rank)" : "-\(rank)...\(rank - 1)"
            throw .invalidAttribute(node: displayName, attribute: name, reason: "is \(a), outside \(range) for rank \(rank)")
        }
        return v
    }
}
