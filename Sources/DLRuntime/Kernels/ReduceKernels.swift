#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLTensor

/// Reductions over chosen axes, arg-reductions and running sums/products, over every numeric type.
enum ReduceKernels {
    static var all: [KernelEntry] {
        var k: [KernelEntry] = [.init("ArgMax", arg(largest: true)), .init("ArgMin", arg(largest: false)),
                                     .init("CumSum", cumulative(product: false)), .init("CumProd", cumulative(product: true))]
        for name in MovementOps_reductions { k.append(.init(name, reduce(name))) }
        return k
    }

    static let MovementOps_reductions = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                         "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]

    /// The reduced axes: input 1 (ReduceSum from 13, the others from 18) or the `axes` attribute.
    /// Empty means all axes, or none with `noop_with_empty_axes`.
    static func reducedAxes(_ ctx: KernelContext, rank: Int) throws(RuntimeError) -> [Int] {
        let given = try MovementKernels.axes(ctx, input: 1, rank: rank) ?? []
        if given.isEmpty { return try ctx.int("noop_with_empty_axes", 0) != 0 ? [] : Array(0..<rank) }
        return given
    }

    static func reduce(_ name: String) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            let axes = try reducedAxes(ctx, rank: x.rank)
            let keep = try ctx.int("keepdims", 1) != 0
            var outShape = x.shape
            for a in axes { outShape[a] = 1 }
            let n = outShape.reduce(1, *)
            // Output index of each input element: reduced axes get stride 0.
            var st = IndexMath.strides(outShape)
            for a in axes { st[a] = 0 }
            let target = IndexMath.strided(x.shape, strides: st, offset: 0)
            let finalShape = keep ? outShape : (0..<x.rank).filter { !axes.contains($0) }.map { x.shape[$0] }
            let emptyInput = x.elementCount == 0
            if (name == "ReduceMax" || name == "ReduceMin"), x.dtype.isInteger || x.dtype == .bool {
                let v = x.int64s()
                let isMax = name == "ReduceMax"
                var acc = [Int64](repeating: isMax ? (x.dtype.isUnsigned ? 0 : .min) : (x.dtype.isUnsigned ? -1 : .max), count: n)
                for i in 0..<v.count {
                    let t = target[i]
                    if x.dtype == .uint64 {
                        let a = UInt64(bitPattern: acc[t]), b = UInt64(bitPattern: v[i])
                        acc[t] = Int64(bitPattern: isMax ? max(a, b) : min(a, b))
                    } else { acc[t] = isMax ? max(acc[t], v[i]) : min(acc[t], v[i]) }
                }
                if x.dtype == .bool { acc = acc.map { min(max($0, 0), 1) } }
                return [Tensor.fromInt64s(acc, dtype: x.dtype, shape: finalShape)]
            }
            if x.dtype.isInteger && ["ReduceSum", "ReduceProd", "ReduceSumSquare", "ReduceL1"].contains(name) {
                let v = x.int64s()
                var acc = [Int64](repeating: name == "ReduceProd" ? 1 : 0, count: n)
                for i in 0..<v.count {
                    let t = target[i]
                    switch name {
                    case "ReduceProd": acc[t] = acc[t] &* v[i]
                    case "ReduceSumSquare": acc[t] = acc[t] &+ v[i] &* v[i]
                    case "ReduceL1": acc[t] = acc[t] &+ (v[i] < 0 ? 0 &- v[i] : v[i])  // wraps like numpy; abs(Int64.min) traps
                    default: acc[t] = acc[t] &+ v[i]
                    }
                }
                return [Tensor.fromInt64s(acc, dtype: x.dtype, shape: finalShape)]
            }
            let v = x.doubles()
            let start: Double
            switch name {
            case "ReduceMax": start = -.infinity
            case "ReduceMin": start = .infinity
            case "ReduceProd": start = 1
            default: start = 0
            }
            var acc = [Double](repeating: start, count: n)
            var count = [Int](repeating: 0, count: n)
            // LogSumExp subtracts the running maximum for stability.
            var peak = [Double](repeating: -.infinity, count: name == "ReduceLogSumExp" ? n : 0)
            if name == "ReduceLogSumExp" { for i in 0..<v.count { peak[target[i]] = max(peak[target[i]], v[i]) } }
            for i in 0..<v.count {
                let t = target[i], e = v[i]
                count[t] += 1
                switch name {
                case "ReduceMax": acc[t] = e.isNaN || acc[t].isNaN ? .nan : max(acc[t], e)
                case "ReduceMin": acc[t] = e.isNaN || acc[t].isNaN ? .nan : min(acc[t], e)
                case "ReduceProd": acc[t] *= e
                case "ReduceL1": acc[t] += abs(e)
                case "ReduceL2", "ReduceSumSquare": acc[t] += e * e
                case "ReduceLogSumExp": acc[t] += peak[t].isInfinite ? exp(e) : exp(e - peak[t])
                default: acc[t] += e
                }
            }
            for t in 0..<n {
                switch name {
                case "ReduceMean": acc[t] = count[t] == 0 ? .nan : acc[t] / Double(count[t])
                case "ReduceL2": acc[t] = acc[t].squareRoot()
                case "ReduceLogSum": acc[t] = log(acc[t])
                case "ReduceLogSumExp": acc[t] = log(acc[t]) + (peak[t].isInfinite ? 0 : peak[t])
                default: break
                }
            }
            _ = emptyInput
            return [Tensor.fromDoubles(acc, dtype: x.dtype, shape: finalShape)]
        }
    }

    static func arg(largest: Bool) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
            let keep = try ctx.int("keepdims", 1) != 0
            let last = try ctx.int("select_last_index", 0) != 0
            let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
            guard size > 0 else { throw ctx.fail("cannot take the arg-extreme of an empty axis") }
            let v = x.doubles()
            var out = [Int64](repeating: 0, count: outer * inner)
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = 0
                    var bv = v[o * size * inner + i]
                    for s in 1..<size {
                        let e = v[(o * size + s) * inner + i]
                        let better = largest ? e > bv : e < bv
                        if better || (last && e == bv) { best = s; bv = e }
                    }
                    out[o * inner + i] = Int64(best)
                }
            }
            var shape = x.shape
            if keep { shape[axis] = 1 } else { shape.remove(at: axis) }
            return [Tensor.fromInt64s(out, dtype: .int64, shape: shape)]
        }
    }

    static func cumulative(product: Bool) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            guard let a = try ctx.intList(1)?.first else { throw ctx.fail("needs an axis") }
            let axis = try ctx.axis(a, rank: x.rank)
            let exclusive = try ctx.int("exclusive", 0) != 0, reverse = try ctx.int("reverse", 0) != 0
            let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
            func run<T>(_ v: [T], _ unit: T, _ op: (T, T) -> T) -> [T] {
                var out = v
                for o in 0..<outer {
                    for i in 0..<inner {
                        var acc = unit
                        for step in 0..<size {
                            let s = reverse ? size - 1 - step : step
                            let j = (o * size + s) * inner + i
                            if exclusive { out[j] = acc; acc = op(acc, v[j]) } else { acc = op(acc, v[j]); out[j] = acc }
                        }
                    }
                }
                return out
            }
            if x.dtype.isInteger {
                let r = run(x.int64s(), product ? 1 : 0, product ? { $0 &* $1 } : { $0 &+ $1 })
                return [Tensor.fromInt64s(r, dtype: x.dtype, shape: x.shape)]
            }
            let r = run(x.doubles(), product ? 1.0 : 0.0, product ? { $0 * $1 } : { $0 + $1 })
            return [Tensor.fromDoubles(r, dtype: x.dtype, shape: x.shape)]
        }
    }
}
