import DLGraph
import DLKernels
import DLTensor

/// Ops that order elements: TopK (the k largest or smallest along an axis) and Unique (sorted or
/// in order of first occurrence, with indices, inverse indices and counts).
enum SortingKernels {
    static var all: [KernelEntry] { [.init("TopK", topK), .init("Unique", unique)] }

    static let topK: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let k = try ctx.intList(1)?.first else { throw ctx.fail("TopK needs k") }
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let largest = try ctx.int("largest", 1) != 0
        guard k >= 0, k <= x.shape[axis] else { throw ctx.fail("k \(k) is outside 0...\(x.shape[axis])") }
        let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
        let v = x.doubles(), iv = x.dtype.isInteger ? x.int64s() : []
        var map: [Int] = [], indices: [Int64] = []
        var shape = x.shape
        shape[axis] = k
        var order = [Int](repeating: 0, count: k * outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * size * inner + i
                let sorted = (0..<size).sorted { a, b in
                    let (p, q) = iv.isEmpty ? (v[base + a * inner], v[base + b * inner]) : (Double(iv[base + a * inner]), Double(iv[base + b * inner]))
                    if iv.isEmpty == false && iv[base + a * inner] != iv[base + b * inner] {
                        return largest ? iv[base + a * inner] > iv[base + b * inner] : iv[base + a * inner] < iv[base + b * inner]
                    }
                    if p != q { return largest ? p > q : p < q }
                    return a < b
                }
                for j in 0..<k { order[(o * k + j) * inner + i] = sorted[j] }
            }
        }
        map.reserveCapacity(order.count)
        for o in 0..<outer { for j in 0..<k { for i in 0..<inner {
            let s = order[(o * k + j) * inner + i]
            map.append(o * size * inner + s * inner + i)
            indices.append(Int64(s))
        } } }
        return [x.gathered(map, shape: shape), Tensor.fromInt64s(indices, dtype: .int64, shape: shape)]
    }

    static let unique: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let sorted = try ctx.int("sorted", 1) != 0
        // Slices compared as keys: whole elements when there is no axis, else slices along it.
        let axis: Int? = ctx.node.attribute("axis") == nil ? nil : try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let flat = axis == nil ? try MovementKernels.relabel(ctx, x, [x.elementCount]) : x
        let a = axis ?? 0
        let (outer, size, inner) = IndexMath.around(flat.shape, axis: a)
        let v = x.dtype == .string ? [] : x.doubles()
        func key(_ s: Int) -> [String] {
            var k: [String] = []
            for o in 0..<outer { for i in 0..<inner {
                let j = (o * size + s) * inner + i
                k.append(x.dtype == .string ? x.strings[j] : "\(v[j])")
            } }
            return k
        }
        func keyValues(_ s: Int) -> [Double] {
            var k: [Double] = []
            for o in 0..<outer { for i in 0..<inner { k.append(v[(o * size + s) * inner + i]) } }
            return k
        }
        var firstOf: [[String]: Int] = [:]
        var uniques: [Int] = []
        var counts: [Int] = []
        var inverse: [Int] = []
        for s in 0..<size {
            let k = key(s)
            if let u = firstOf[k] { counts[u] += 1; inverse.append(u) } else {
                firstOf[k] = uniques.count
                inverse.append(uniques.count)
                uniques.append(s)
                counts.append(1)
            }
        }
        var order = Array(0..<uniques.count)
        if sorted {
            order.sort { p, q in
                if x.dtype == .string { return key(uniques[p]).lexicographicallyPrecedes(key(uniques[q])) }
                return keyValues(uniques[p]).lexicographicallyPrecedes(keyValues(uniques[q]))
            }
        }
        var rank = [Int](repeating: 0, count: order.count)
        for (r, u) in order.enumerated() { rank[u] = r }
        var map: [Int] = []
        for o in 0..<outer { for r in order { for i in 0..<inner { map.append((o * size + uniques[r]) * inner + i) } } }
        var shape = flat.shape
        shape[a] = order.count
        return [flat.gathered(map, shape: shape),
                Tensor.fromInt64s(order.map { Int64(uniques[$0]) }, dtype: .int64, shape: [order.count]),
                Tensor.fromInt64s(inverse.map { Int64(rank[$0]) }, dtype: .int64, shape: [inverse.count]),
                Tensor.fromInt64s(order.map { Int64(counts[$0]) }, dtype: .int64, shape: [order.count])]
    }
}
