import DLGraph
import DLKernels
import DLTensor

/// Fast variants of ops whose inputs or outputs are not all float32, on the shapes real models
/// give them: Where (float32, int32 or int64 branches, broadcast), the comparisons (int32, int64
/// or float32 operands), IsNaN, Cast between bool, int32, int64 and float32, and
/// ReduceSum/ReduceMean/ReduceMax/ReduceMin of float32 over adjacent axes. Each declines (nil)
/// what it does not take, and the general kernel runs.
enum SelectKernels {
    static var fast: [FastEntry] {
        let operands = "two int32, int64 or float32 operands of one type"
        return [
            .init("Where", "float32, int32 or int64 branches of one type", whereKernel),
            .init("Equal", operands, comparison(.equal)), .init("Greater", operands, comparison(.greater)),
            .init("Less", operands, comparison(.less)), .init("GreaterOrEqual", operands, comparison(.greaterOrEqual)),
            .init("LessOrEqual", operands, comparison(.lessOrEqual)),
            .init("IsNaN", "float32", isNaN),
            .init("Cast", "bool, int32, int64 to float32 or a wider integer", cast),
            .init("ReduceSum", "float32 over adjacent axes", reduce(mean: false)),
            .init("ReduceMean", "float32 over adjacent axes", reduce(mean: true)),
            .init("ReduceMax", "float32 over adjacent axes", reduceExtremum(largest: true)),
            .init("ReduceMin", "float32 over adjacent axes", reduceExtremum(largest: false)),
        ]
    }

    /// Where over branches of one type, float32, int32 or int64 (the general kernel widens every
    /// element to Double or Int64 through index arrays: an 8-bit softmax's rounding nudges, int64
    /// over [1, 1000], took 4 us each).
    static let whereKernel: FastKernel = { ctx throws(RuntimeError) in
        let c = try ctx.input(0), a = try ctx.input(1), b = try ctx.input(2)
        guard c.dtype == .bool, a.dtype == b.dtype, [.float32, .int32, .int64].contains(a.dtype),
              let shape = try? Broadcast.shape([c.shape, a.shape, b.shape]),
              let walk = try? BroadcastPlan(outShape: shape, operands: [c.shape, a.shape, b.shape]) else { return nil }
        let out = ctx.makeOutput(a.dtype, shape: shape)
        guard out.elementCount > 0 else { return [out] }
        func run<T: TensorScalar>(_: T.Type) {
            let n = walk.rowLength, st = walk.rowStrides
            c.withUnsafeBufferPointer(as: Bool.self) { pc in
            a.withUnsafeBufferPointer(as: T.self) { pa in
            b.withUnsafeBufferPointer(as: T.self) { pb in
            out.withUnsafeMutableBufferPointerInPlace(as: T.self) { po in
                guard let cc = pc.baseAddress, let aa = pa.baseAddress, let bb = pb.baseAddress, let y = po.baseAddress else { return }
                let sc = st[0], sa = st[1], sb = st[2]
                walk.forEachRow { o, off in
                    let cr = cc + off[0], ar = aa + off[1], br = bb + off[2], yr = y + o
                    for j in 0..<n { yr[j] = cr[j * sc] ? ar[j * sa] : br[j * sb] }
                }
            }
            }
            }
            }
        }
        switch a.dtype {
        case .int32: run(Int32.self)
        case .int64: run(Int64.self)
        default: run(Float.self)
        }
        return [out]
    }

    enum Comparison { case equal, greater, less, greaterOrEqual, lessOrEqual }

    /// A comparison of two operands of one type, int32, int64 or float32, broadcast (the general
    /// kernel widens every element through index arrays: 5 ns an element). Signed integers and
    /// IEEE floats, as the general kernel compares them: anything against NaN is false.
    static func comparison(_ op: Comparison) -> FastKernel {
        { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            guard a.dtype == b.dtype, [.int32, .int64, .float32].contains(a.dtype),
                  let shape = try? Broadcast.shape(a.shape, b.shape),
                  let walk = try? BroadcastPlan(outShape: shape, operands: [a.shape, b.shape]) else { return nil }
            let out = ctx.makeOutput(.bool, shape: shape)
            guard out.elementCount > 0 else { return [out] }
            func run<T: TensorScalar & Comparable>(_: T.Type) {
                let n = walk.rowLength, st = walk.rowStrides, sa = st[0], sb = st[1]
                a.withUnsafeBufferPointer(as: T.self) { pa in
                b.withUnsafeBufferPointer(as: T.self) { pb in
                out.withUnsafeMutableBufferPointerInPlace(as: Bool.self) { po in
                    guard let aa = pa.baseAddress, let bb = pb.baseAddress, let y = po.baseAddress else { return }
                    walk.forEachRow { o, off in
                        let ar = aa + off[0], br = bb + off[1], yr = y + o
                        switch op {
                        case .equal: for j in 0..<n { yr[j] = ar[j * sa] == br[j * sb] }
                        case .greater: for j in 0..<n { yr[j] = ar[j * sa] > br[j * sb] }
                        case .less: for j in 0..<n { yr[j] = ar[j * sa] < br[j * sb] }
                        case .greaterOrEqual: for j in 0..<n { yr[j] = ar[j * sa] >= br[j * sb] }
                        case .lessOrEqual: for j in 0..<n { yr[j] = ar[j * sa] <= br[j * sb] }
                        }
                    }
                }
                }
                }
            }
            switch a.dtype {
            case .int32: run(Int32.self)
            case .int64: run(Int64.self)
            default: run(Float.self)
            }
            return [out]
        }
    }

    static let isNaN: FastKernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype == .float32 else { return nil }
        let out = ctx.makeOutput(.bool, shape: x.shape)
        guard x.elementCount > 0 else { return [out] }
        x.withUnsafeBufferPointer(as: Float.self) { src in
            out.withUnsafeMutableBufferPointerInPlace(as: Bool.self) { dst in
                for i in 0..<src.count { dst[i] = src[i].isNaN }
            }
        }
        return [out]
    }

    static let cast: FastKernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let to = try CreationKernels.dtype(ctx, code: try ctx.int("to", 1))
        // Widening casts only: float32 to an integer, or int64 to int32, keep the general rules.
        guard [.bool, .int32, .int64].contains(x.dtype), [.float32, .int32, .int64].contains(to), x.dtype != to,
              !(x.dtype == .int64 && to == .int32) else { return nil }
        let out = ctx.makeOutput(to, shape: x.shape)
        guard x.elementCount > 0 else { return [out] }
        func run<S: TensorScalar, D: TensorScalar>(_: S.Type, _: D.Type, _ f: (S) -> D) {
            x.withUnsafeBufferPointer(as: S.self) { src in
                out.withUnsafeMutableBufferPointerInPlace(as: D.self) { dst in
                    for i in 0..<src.count { dst[i] = f(src[i]) }
                }
            }
        }
        switch (x.dtype, to) {
        case (.bool, .float32): run(Bool.self, Float.self) { $0 ? 1 : 0 }
        case (.bool, .int32): run(Bool.self, Int32.self) { $0 ? 1 : 0 }
        case (.bool, .int64): run(Bool.self, Int64.self) { $0 ? 1 : 0 }
        case (.int32, .float32): run(Int32.self, Float.self) { Float($0) }
        case (.int32, .int64): run(Int32.self, Int64.self) { Int64($0) }
        case (.int64, .float32): run(Int64.self, Float.self) { Float($0) }
        default: return nil
        }
        return [out]
    }

    static func reduce(mean: Bool) -> FastKernel {
        adjacentReduction { s, outer, size, inner, d in
            Reduce.sum(s, outer: outer, size: size, inner: inner, scale: mean ? 1 / Float(size) : 1, into: d)
        }
    }

    /// ReduceMax/ReduceMin of float32 (the general kernel widens every element to Double through
    /// an index map: DNSMOS's ReduceMax over a spectrogram took 2.4 ms).
    static func reduceExtremum(largest: Bool) -> FastKernel {
        adjacentReduction { s, outer, size, inner, d in
            Reduce.extremum(s, outer: outer, size: size, inner: inner, largest: largest, into: d)
        }
    }

    /// A float32 reduction over adjacent axes, the input viewed as `[outer, size, inner]`
    /// (`size` ≥ 1) and reduced by `body` into `[outer, inner]`.
    static func adjacentReduction(_ body: @escaping @Sendable (UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void)
        -> FastKernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            guard x.dtype == .float32, x.rank > 0 else { return nil }
            let axes = Set(try ReduceKernels.reducedAxes(ctx, rank: x.rank)).sorted()
            guard let first = axes.first, let last = axes.last, last - first + 1 == axes.count else { return nil }
            let keep = try ctx.int("keepdims", 1) != 0
            let outer = x.shape[..<first].reduce(1, *), size = x.shape[first...last].reduce(1, *)
            let inner = x.shape[(last + 1)...].reduce(1, *)
            guard size > 0 else { return nil }
            var shape = x.shape
            for a in axes { shape[a] = 1 }
            if !keep { shape = (0..<x.rank).filter { !axes.contains($0) }.map { x.shape[$0] } }
            let out = ctx.makeOutput(.float32, shape: shape)
            guard out.elementCount > 0 else { return [out] }
            x.withUnsafeBufferPointer(as: Float.self) { src in
                out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    body(s, outer, size, inner, d)
                }
            }
            return [out]
        }
    }
}
