#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLTensor

/// Sliding-window poolings over any number of spatial dims and any dtype the spec allows:
/// MaxPool (with Indices and storage_order), AveragePool, LpPool, the global poolings and
/// MaxUnpool. Float32 1-D/2-D MaxPool/AveragePool without Indices stay on the fast kernels of
/// ConvolutionKernels; everything else computes in Double and rounds once on store.
enum PoolingKernels {
    static var all: [KernelEntry] {
        [.init("MaxPool", maxPool), .init("AveragePool", averagePool), .init("LpPool", lpPool),
         .init("GlobalMaxPool", global(.max)), .init("GlobalAveragePool", global(.average)), .init("GlobalLpPool", global(.lp)),
         .init("MaxUnpool", maxUnpool)]
    }

    /// The windows of a pooling: for each output position (row-major), the in-plane flat
    /// indices of the input elements it covers; `-1` marks a padding cell inside the declared
    /// pads (counted by count_include_pad), cells beyond them (ceil mode) are left out.
    struct Windows {
        var input: [Int]
        var output: [Int]
        var cells: [[Int]]
    }

    static func windows(_ input: [Int], _ g: WindowGeometry) -> Windows {
        let r = input.count
        let kernelCount = g.kernel.reduce(1, *)
        let inStrides = IndexMath.strides(input)
        let outCount = g.output.reduce(1, *)
        var cells = [[Int]](repeating: [], count: outCount)
        for o in 0..<outCount {
            let oi = IndexMath.unravel(o, g.output)
            var list: [Int] = []
            list.reserveCapacity(kernelCount)
            for k in 0..<kernelCount {
                let ki = IndexMath.unravel(k, g.kernel)
                var flat = 0
                var inside = true, inPads = true
                for d in 0..<r {
                    let pos = oi[d] * g.strides[d] - g.padsBegin[d] + ki[d] * g.dilations[d]
                    if pos < 0 || pos >= input[d] { inside = false }
                    if pos >= input[d] + g.padsEnd[d] { inPads = false }
                    flat += pos * inStrides[d]
                }
                if inside { list.append(flat) } else if inPads { list.append(-1) }
            }
            cells[o] = list
        }
        return Windows(input: input, output: g.output, cells: cells)
    }

    /// Resolves the window attributes of a pooling node against input `x`.
    static func geometry(_ ctx: KernelContext, _ x: Tensor) throws(RuntimeError) -> WindowGeometry {
        guard x.shape.count >= 3 else { throw ctx.fail("\(ctx.node.opType) needs an input of rank 3 or more [N, C, spatial...], got \(x.shape)") }
        let window = try ctx.window()
        let spatial = Array(x.shape.dropFirst(2))
        return try ctx.attribute { () throws(GraphError) in
            try window.geometry(input: spatial, kernel: window.kernel(weight: nil), isPooling: true)
        }
    }

    static let maxPool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let wantsIndices = ctx.node.outputs.count > 1 && !ctx.node.outputs[1].isEmpty
        guard x.dtype.isFloatingPoint || x.dtype == .int8 || x.dtype == .uint8 else {
            throw ctx.fail("MaxPool is not defined on \(x.dtype)")
        }
        let g = try geometry(ctx, x)
        let storageOrder = try ctx.int("storage_order", 0)
        guard storageOrder == 0 || storageOrder == 1 else { throw ctx.fail("storage_order must be 0 or 1, got \(storageOrder)") }
        let w = windows(Array(x.shape.dropFirst(2)), g)
        let planes = x.shape[0] * x.shape[1]
        let inPlane = w.input.reduce(1, *), outPlane = w.output.reduce(1, *)
        // Indices in column-major spatial order when storage_order is 1.
        let rowStrides = IndexMath.strides(w.input)
        var colStrides = [Int](repeating: 1, count: w.input.count)
        for d in 1..<max(1, w.input.count) { colStrides[d] = colStrides[d - 1] * w.input[d - 1] }
        let v = x.doubles()
        var y = [Double](repeating: 0, count: planes * outPlane)
        var idx = [Int64](repeating: 0, count: planes * outPlane)
        for p in 0..<planes {
            let base = p * inPlane
            for o in 0..<outPlane {
                var best = -Double.infinity, bestAt = -1
                for c in w.cells[o] where c >= 0 {
                    let value = v[base + c]
                    if bestAt < 0 || value > best { best = value; bestAt = c }
                }
                y[p * outPlane + o] = bestAt < 0 ? 0 : best
                var at = bestAt
                if storageOrder == 1, bestAt >= 0 {
                    at = 0
                    for d in 0..<w.input.count { at += (bestAt / rowStrides[d]) % w.input[d] * colStrides[d] }
                }
                idx[p * outPlane + o] = Int64(base + max(at, 0))
            }
        }
        let shape = Array(x.shape.prefix(2)) + w.output
        return [Tensor.fromDoubles(y, dtype: x.dtype, shape: shape), Tensor.fromInt64s(idx, dtype: .int64, shape: shape)]
    }

    static let averagePool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint else { throw ctx.fail("AveragePool needs a floating-point input, got \(x.dtype)") }
        let includePad = try ctx.window().countIncludePad
        return [try windowReduce(ctx, x) { values, pads in
            let s = values.reduce(0, +)
            let n = values.count + (includePad ? pads : 0)
            return n == 0 ? 0 : s / Double(n)
        }]
    }

    static let lpPool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint else { throw ctx.fail("LpPool needs a floating-point input, got \(x.dtype)") }
        let p = Double(try ctx.int("p", 2))
        guard p > 0 else { throw ctx.fail("p must be positive, got \(p)") }
        return [try windowReduce(ctx, x) { values, _ in lpNorm(values, p) }]
    }

    static func lpNorm(_ values: [Double], _ p: Double) -> Double {
        if p == 1 { return values.reduce(0) { $0 + abs($1) } }
        if p == 2 { return values.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        return pow(values.reduce(0) { $0 + pow(abs($1), p) }, 1 / p)
    }

    /// Applies `f(valid values, padding cells)` to every window of every (n, c) plane.
    static func windowReduce(_ ctx: KernelContext, _ x: Tensor, _ f: ([Double], Int) -> Double) throws(RuntimeError) -> Tensor {
        let g = try geometry(ctx, x)
        let w = windows(Array(x.shape.dropFirst(2)), g)
        let planes = x.shape[0] * x.shape[1]
        let inPlane = w.input.reduce(1, *), outPlane = w.output.reduce(1, *)
        let v = x.doubles()
        var y = [Double](repeating: 0, count: planes * outPlane)
        var values: [Double] = []
        for p in 0..<planes {
            let base = p * inPlane
            for o in 0..<outPlane {
                values.removeAll(keepingCapacity: true)
                var pads = 0
                for c in w.cells[o] { if c >= 0 { values.append(v[base + c]) } else { pads += 1 } }
                y[p * outPlane + o] = f(values, pads)
            }
        }
        return Tensor.fromDoubles(y, dtype: x.dtype, shape: Array(x.shape.prefix(2)) + w.output)
    }

    enum GlobalKind { case max, average, lp }

    static func global(_ kind: GlobalKind) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            guard x.shape.count >= 2 else { throw ctx.fail("\(ctx.node.opType) needs an input of rank 2 or more, got \(x.shape)") }
            guard x.dtype.isFloatingPoint else { throw ctx.fail("\(ctx.node.opType) needs a floating-point input, got \(x.dtype)") }
            let p = Double(try ctx.int("p", 2))
            let planes = x.shape[0] * x.shape[1]
            let spatial = x.shape.dropFirst(2).reduce(1, *)
            let v = x.doubles()
            var y = [Double](repeating: 0, count: planes)
            for i in 0..<planes {
                let s = Array(v[(i * spatial)..<((i + 1) * spatial)])
                switch kind {
                case .max: y[i] = s.max() ?? 0
                case .average: y[i] = spatial == 0 ? 0 : s.reduce(0, +) / Double(spatial)
                case .lp: y[i] = lpNorm(s, p)
                }
            }
            let shape = Array(x.shape.prefix(2)) + Array(repeating: 1, count: x.shape.count - 2)
            return [Tensor.fromDoubles(y, dtype: x.dtype, shape: shape)]
        }
    }

    /// MaxUnpool: scatters X into a zero tensor at the flat positions given by I (as MaxPool's
    /// Indices), of the shape given by output_shape or computed from the pooling attributes.
    static let maxUnpool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1)
        guard ind.shape == x.shape else { throw ctx.fail("indices \(ind.shape) must have the shape of X \(x.shape)") }
        guard x.shape.count >= 3 else { throw ctx.fail("MaxUnpool needs an input of rank 3 or more, got \(x.shape)") }
        let window = try ctx.window()
        let r = x.shape.count - 2
        let (kernel, strides, pads) = try ctx.attribute { () throws(GraphError) in
            let kernel = try window.kernel(weight: nil)
            guard kernel.count == r else {
                throw .invalidAttribute(node: window.node, attribute: "kernel_shape", reason: "has \(kernel.count) sizes for \(r) spatial dims")
            }
            return (kernel, try window.strides(rank: r), try window.pads(rank: r))
        }
        var inferred = Array(x.shape.prefix(2))
        for d in 0..<r { inferred.append((x.shape[d + 2] - 1) * strides[d] + kernel[d] - pads[d] - pads[d + r]) }
        guard inferred.allSatisfy({ $0 >= 0 }) else { throw ctx.fail("the unpooled shape \(inferred) is negative") }
        let total = inferred.reduce(1, *)
        var out = x.emptyLike(shape: inferred)
        var pairs: [(dst: Int, src: Int)] = []
        for (i, j) in ind.int64s().enumerated() {
            guard j >= 0, j < total else { throw ctx.fail("index \(j) is outside the output of \(total) elements") }
            pairs.append((Int(j), i))
        }
        out.assign(from: x, pairs: pairs)
        // An explicit output_shape places the unpooled tensor at its origin, zeros elsewhere.
        if let given = try ctx.intList(2) {
            guard given.count == x.shape.count, given.allSatisfy({ $0 >= 0 }) else { throw ctx.fail("output_shape \(given) does not fit rank \(x.shape.count)") }
            var placed = x.emptyLike(shape: given)
            let gs = IndexMath.strides(given)
            var moves: [(dst: Int, src: Int)] = []
            for i in 0..<total {
                let at = IndexMath.unravel(i, inferred)
                guard zip(at, given).allSatisfy({ $0 < $1 }) else { continue }
                moves.append((zip(at, gs).reduce(0) { $0 + $1.0 * $1.1 }, i))
            }
            placed.assign(from: out, pairs: moves)
            out = placed
        }
        return [out]
    }
}
