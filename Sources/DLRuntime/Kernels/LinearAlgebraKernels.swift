import DLGraph
import DLKernels
import DLTensor

/// MatMul and Gemm beyond float32 (the OpenBLAS kernels in LinearKernels stay the float32
/// path), Einsum, and Dropout with numpy-compatible seeded masks.
enum LinearAlgebraKernels {
    static var all: [KernelEntry] {
        [.init("MatMul", matmul), .init("Gemm", gemm), .init("Einsum", einsum), .init("Dropout", dropout)]
    }

    static let matmul: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1)
        guard a.dtype == b.dtype, a.dtype.isFloatingPoint || a.dtype.isInteger else {
            throw ctx.fail("MatMul needs two numeric inputs of one type, got \(a.dtype) and \(b.dtype)")
        }
        if a.dtype.isInteger {
            let (y, shape) = try QuantizeKernels.integerMatMul(ctx, a.int64s(), a.shape, b.int64s(), b.shape)
            return [Tensor.fromInt64s(y, dtype: a.dtype, shape: shape)]
        }
        let (y, shape) = try floatMatMul(ctx, a.doubles(), a.shape, b.doubles(), b.shape)
        return [Tensor.fromDoubles(y, dtype: a.dtype, shape: shape)]
    }

    /// numpy matmul (1-D operands promoted, batch dims broadcast) over any element arithmetic:
    /// Double for floats, wrapping Int64 for integers.
    static func batchedMatMul<T>(_ ctx: KernelContext, _ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int],
                                 zero: T, mulAdd: (T, T, T) -> T) throws(RuntimeError) -> ([T], [Int]) {
        guard !aShape.isEmpty, !bShape.isEmpty else { throw ctx.fail("MatMul operands must have rank 1 or more") }
        let a2 = aShape.count == 1 ? [1] + aShape : aShape, b2 = bShape.count == 1 ? bShape + [1] : bShape
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        guard b2[b2.count - 2] == k else { throw ctx.fail("inner sizes differ: \(aShape) and \(bShape)") }
        let ab = Array(a2.dropLast(2)), bb = Array(b2.dropLast(2))
        let (batch, maps) = try ctx.broadcastMaps([ab, bb])
        let amap = maps[0], bmap = maps[1]
        let count = batch.reduce(1, *)
        var out = [T](repeating: zero, count: count * m * n)
        for e in 0..<count {
            let ao = amap[e] * m * k, bo = bmap[e] * k * n, oo = e * m * n
            for i in 0..<m { for j in 0..<n {
                var s = zero
                for p in 0..<k { s = mulAdd(s, a[ao + i * k + p], b[bo + p * n + j]) }
                out[oo + i * n + j] = s
            } }
        }
        var shape = batch
        if aShape.count > 1 { shape.append(m) }
        if bShape.count > 1 { shape.append(n) }
        return (out, shape)
    }

    static func floatMatMul(_ ctx: KernelContext, _ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int]) throws(RuntimeError) -> ([Double], [Int]) {
        try batchedMatMul(ctx, a, aShape, b, bShape, zero: 0.0) { $0 + $1 * $2 }
    }

    static let gemm: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1), c = ctx.optionalInput(2)
        guard a.dtype == b.dtype, a.rank == 2, b.rank == 2, a.dtype.isFloatingPoint || a.dtype.isInteger else {
            throw ctx.fail("Gemm needs 2-D numeric A and B of one type, got \(a.dtype) \(a.shape) and \(b.dtype) \(b.shape)")
        }
        let transA = try ctx.int("transA", 0) != 0, transB = try ctx.int("transB", 0) != 0
        let alpha = Double(try ctx.float("alpha", 1)), beta = Double(try ctx.float("beta", 1))
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else { throw ctx.fail("inner sizes differ: A \(a.shape) and B \(b.shape)") }
        let av = a.doubles(), bv = b.doubles()
        var y = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += av[transA ? p * m + i : i * k + p] * bv[transB ? j * k + p : p * n + j] }
            y[i * n + j] = alpha * s
        } }
        if let c, beta != 0 {
            let map = try ctx.broadcastMaps([c.shape], to: [m, n]).maps[0]
            let cv = c.doubles()
            for (i, s) in map.enumerated() { y[i] += beta * cv[s] }
        }
        return [Tensor.fromDoubles(y, dtype: a.dtype, shape: [m, n])]
    }

    /// Einsum over any equation (explicit or implicit output, ellipsis, repeated labels for
    /// diagonals) by summing over every assignment of the labels.
    static let einsum: Kernel = { ctx throws(RuntimeError) in
        let operands = try (0..<ctx.inputCount).map { (i) throws(RuntimeError) in try ctx.input(i) }
        guard let first = operands.first else { throw ctx.fail("Einsum needs at least one input") }
        guard operands.allSatisfy({ $0.dtype == first.dtype && ($0.dtype.isFloatingPoint || $0.dtype.isInteger) }) else {
            throw ctx.fail("Einsum inputs must share one numeric type")
        }
        let equation = try ctx.string("equation", "").filter { !$0.isWhitespace }
        let sides = equation.components(separatedBy: "->")
        guard sides.count <= 2 else { throw ctx.fail("equation '\(equation)' has more than one '->'") }
        let terms = sides[0].components(separatedBy: ",")
        guard terms.count == operands.count else { throw ctx.fail("equation '\(equation)' names \(terms.count) operands, the node has \(operands.count)") }
        // Labels as Characters; the dims an ellipsis covers get private labels, right-aligned.
        var ellipsisRank = 0
        for (term, t) in zip(terms, operands) {
            let letters = term.replacingOccurrences(of: "...", with: "").count
            if term.contains("...") { ellipsisRank = max(ellipsisRank, t.rank - letters) }
        }
        let ellipsisLabels = (0..<ellipsisRank).map { Character(UnicodeScalar(0x100 + $0)!) }
        func expand(_ term: String, rank: Int?) throws(RuntimeError) -> [Character] {
            guard term.contains("...") else { return Array(term) }
            let parts = term.components(separatedBy: "...")
            guard parts.count == 2 else { throw ctx.fail("term '\(term)' has more than one ellipsis") }
            let covered = rank.map { $0 - parts[0].count - parts[1].count } ?? ellipsisRank
            guard covered >= 0 else { throw ctx.fail("term '\(term)' has more labels than its operand's rank") }
            return Array(parts[0]) + Array(ellipsisLabels.suffix(covered)) + Array(parts[1])
        }
        var sizes: [Character: Int] = [:]
        var labelsPer: [[Character]] = []
        for (term, t) in zip(terms, operands) {
            let labels = try expand(term, rank: t.rank)
            guard labels.count == t.rank else { throw ctx.fail("term '\(term)' has \(labels.count) labels for an operand of rank \(t.rank)") }
            for (l, d) in zip(labels, t.shape) {
                if let s = sizes[l], s != d {
                    if s == 1 { sizes[l] = d } else if d != 1 { throw ctx.fail("label '\(l)' has sizes \(s) and \(d)") }
                } else if sizes[l] == nil { sizes[l] = d }
            }
            labelsPer.append(labels)
        }
        let output: [Character]
        if sides.count == 2 {
            output = try expand(sides[1], rank: nil)
            for l in output where sizes[l] == nil { throw ctx.fail("output label '\(l)' is not in any input") }
        } else {
            var counts: [Character: Int] = [:]
            for labels in labelsPer { for l in labels where !ellipsisLabels.contains(l) { counts[l, default: 0] += 1 } }
            output = ellipsisLabels + counts.filter { $0.value == 1 }.keys.sorted()
        }
        let summed = sizes.keys.filter { !output.contains($0) }.sorted()
        let all = output + summed
        let position = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, $0) })
        let allSizes = all.map { sizes[$0] ?? 1 }
        let outShape = output.map { sizes[$0] ?? 1 }
        let outCount = outShape.reduce(1, *), sumCount = summed.map { sizes[$0] ?? 1 }.reduce(1, *)
        // For each operand, the stride of each label position (broadcast dims of size 1 stay put).
        let strides: [[Int]] = zip(labelsPer, operands).map { labels, t in
            var s = [Int](repeating: 0, count: all.count)
            let ts = IndexMath.strides(t.shape)
            for (k, l) in labels.enumerated() where t.shape[k] != 1 { s[position[l]!] += ts[k] }
            return s
        }
        let values = operands.map { $0.doubles() }
        var y = [Double](repeating: 0, count: outCount)
        var index = [Int](repeating: 0, count: all.count)
        for o in 0..<outCount {
            let oi = IndexMath.unravel(o, outShape)
            for k in 0..<output.count { index[k] = oi[k] }
            var total = 0.0
            for s in 0..<sumCount {
                let si = IndexMath.unravel(s, Array(allSizes[output.count...]))
                for k in 0..<summed.count { index[output.count + k] = si[k] }
                var product = 1.0
                for (v, st) in zip(values, strides) {
                    var off = 0
                    for k in 0..<all.count { off += index[k] * st[k] }
                    product *= v[off]
                }
                total += product
            }
            y[o] = total
        }
        return [first.dtype.isInteger ? Tensor.fromInt64s(y.map { Int64($0) }, dtype: first.dtype, shape: outShape)
                : Tensor.fromDoubles(y, dtype: first.dtype, shape: outShape)]
    }

    /// Inference: the input and an all-true mask. Training (`training_mode` input true): keep
    /// each element with probability 1 - ratio, scaled by 1 / (1 - ratio). With a `seed` the
    /// mask is numpy's `RandomState(seed).uniform(0, 1, shape) >= ratio`.
    static let dropout: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        var ratio = Double(try ctx.float("ratio", 0.5))
        if let r = ctx.optionalInput(1) {
            guard r.elementCount == 1, r.dtype.isFloatingPoint else { throw ctx.fail("ratio must be one floating-point value") }
            ratio = r.doubles()[0]
        }
        guard ratio >= 0, ratio <= 1 else { throw ctx.fail("ratio must be in [0, 1], got \(ratio)") }
        let training = ctx.optionalInput(2).map { $0.elementCount == 1 && $0.bools()[0] } ?? false
        guard training, ratio > 0 else { return [x, Tensor.fromBools([Bool](repeating: true, count: x.elementCount), shape: x.shape)] }
        guard x.dtype.isFloatingPoint else { throw ctx.fail("training Dropout needs a floating-point input, got \(x.dtype)") }
        var rng: MersenneTwister
        if ctx.node.attribute("seed") != nil {
            rng = MersenneTwister(seed: UInt32(truncatingIfNeeded: try ctx.int("seed", 0)))
        } else {
            var system = SystemRandomNumberGenerator()
            rng = MersenneTwister(seed: system.next())
        }
        let mask = (0..<x.elementCount).map { _ in rng.nextDouble() >= ratio }
        let scale = ratio < 1 ? 1 / (1 - ratio) : 0
        let y = zip(x.doubles(), mask).map { $1 ? $0 * scale : 0 }
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: x.shape), Tensor.fromBools(mask, shape: x.shape)]
    }
}
