import DLGraph
import DLRuntime
import DLTensor
import Testing

/// ReduceMax and ReduceMin of float32 over adjacent axes (the fast variant) against the
/// definition written out element by element: every axis set, with and without the reduced
/// dimensions kept, infinities kept, a NaN anywhere in a group giving NaN; and axes that are not
/// adjacent, which the general kernel takes.
struct ReduceExtremumTests {
    static let shape = [2, 3, 4, 5]

    /// The input: values of both signs, ±infinity, and one NaN in group (n = 1, c = 2).
    func input() -> [Float] {
        var v = (0..<120).map { Float(($0 * 37) % 23) - 11.5 }
        v[3] = .infinity
        v[50] = -.infinity
        v[1 * 60 + 2 * 20 + 7] = .nan
        return v
    }

    func expected(_ v: [Float], axes: [Int], largest: Bool) -> [Float] {
        let s = Self.shape
        var out: [Int: Float] = [:]
        var order: [Int] = []
        for i in 0..<v.count {
            var rest = i, idx = [Int](repeating: 0, count: 4)
            for d in (0..<4).reversed() { idx[d] = rest % s[d]; rest /= s[d] }
            var key = 0
            for d in 0..<4 { key = key * s[d] + (axes.contains(d) ? 0 : idx[d]) }
            guard let a = out[key] else { out[key] = v[i]; order.append(key); continue }
            let b = v[i]
            out[key] = a.isNaN || b.isNaN ? .nan : (largest ? max(a, b) : min(a, b))
        }
        return order.sorted().map { out[$0]! }
    }

    @Test(arguments: [[1], [2, 3], [0, 1], [3], [0, 1, 2, 3], [0, 2]])
    func reducesAsDefined(_ axes: [Int]) throws {
        let v = input()
        for (op, largest) in [("ReduceMax", true), ("ReduceMin", false)] {
            for keep in [0, 1] {
                let y = try runOne(op, [Tensor(shape: Self.shape, scalars: v), Tensor(shape: [axes.count], scalars: axes.map { Int64($0) })],
                                   weights: [1], attributes: [Attribute(name: "keepdims", value: .int(keep))])
                let want = expected(v, axes: axes, largest: largest)
                let got = y.scalars(as: Float.self)
                #expect(got.count == want.count)
                #expect(zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }, "\(op) \(axes) keepdims \(keep)")
                let kept = Self.shape.indices.map { axes.contains($0) ? 1 : Self.shape[$0] }
                #expect(y.shape == (keep == 1 ? kept : kept.indices.filter { !axes.contains($0) }.map { kept[$0] }))
            }
        }
    }
}
