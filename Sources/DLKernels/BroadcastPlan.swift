import DLTensor

/// How operands broadcast to an output (the rule is `DLTensor.Broadcast`), reduced to the fewest
/// loop dimensions: the one walk over broadcast indices for every kernel and gradient.
///
/// Built once per shape list (the runtime can build it when it plans and reuse it on every run);
/// walking it then allocates nothing on the heap.
///
/// Shapes are right-aligned: an operand of lower rank gains leading 1s, so `[3, 1]` against
/// `[2, 3, 4]` is `[1, 3, 1]`. A dimension of size 1 is read with stride 0. Adjacent dimensions
/// that are contiguous (or broadcast) in every operand are merged, so equal shapes become one
/// flat loop, and `[N, C, H, W] + [C, 1, 1]` becomes `[N, C, H*W]` with the bias constant along the
/// innermost run.
///
/// Three ways to walk it: `run` (two operands of one element type, through the vectorised binary
/// loops: contiguous, scalar and row-broadcast runs), `forEachRow` (any number of operands, one
/// call per innermost run with each operand's offset) and `offsets(of:)` (one operand's flat index
/// for every output element).
public struct BroadcastPlan: Hashable, Sendable {
    /// Elements in the output.
    public let outputCount: Int
    /// Loop sizes, outermost first, after merging; empty for a scalar output.
    public let dims: [Int]
    /// Per operand, its element strides along `dims` (0 where it is broadcast).
    public let strides: [[Int]]

    /// - Throws: when an operand does not broadcast to `outShape` (`Broadcast.shape` of the
    ///   operands gives one they do).
    package init(outShape: [Int], operands: [[Int]]) throws(Broadcast.Mismatch) {
        if let flat = Self.flat(outShape: outShape, operands: operands) {
            self = flat
            return
        }
        let full = try operands.map { (s) throws(Broadcast.Mismatch) in try Broadcast.strides(of: s, along: outShape) }
        var count = 1
        for d in outShape { count &*= d }
        outputCount = count

        // Innermost first, skipping size-1 output dimensions.
        var sizes: [Int] = []
        var merged = [[Int]](repeating: [], count: operands.count)
        for i in stride(from: outShape.count - 1, through: 0, by: -1) {
            let n = outShape[i]
            if n == 1 { continue }
            if let last = sizes.last, full.indices.allSatisfy({ full[$0][i] == merged[$0][merged[$0].count - 1] * last }) {
                sizes[sizes.count - 1] *= n
            } else {
                sizes.append(n)
                for k in full.indices { merged[k].append(full[k][i]) }
            }
        }
        dims = sizes.reversed()
        strides = merged.map { $0.reversed() }
    }

    /// The plan when every operand is the output's elements in order (its shape the output's
    /// with fewer leading 1s) or a single value: one flat run, or none for a single element,
    /// as the general construction merges them, without its arrays per dimension. nil otherwise
    /// (an elementwise op of small tensors spent a fifth of its time building its plan).
    private static func flat(outShape: [Int], operands: [[Int]]) -> BroadcastPlan? {
        var count = 1
        for d in outShape { count &*= d }
        guard count > 0 else { return nil }
        var strides: [[Int]] = []
        strides.reserveCapacity(operands.count)
        for shape in operands {
            guard shape.count <= outShape.count else { return nil }
            var n = 1
            for d in shape { n &*= d }
            if count == 1 {
                guard n == 1 else { return nil }
                strides.append([])
            } else if n == 1 {
                strides.append([0])
            } else if n == count, shape.elementsEqual(outShape.suffix(shape.count)) {
                strides.append([1])
            } else {
                return nil
            }
        }
        return BroadcastPlan(outputCount: count, dims: count == 1 ? [] : [count], strides: strides)
    }

    private init(outputCount: Int, dims: [Int], strides: [[Int]]) {
        self.outputCount = outputCount
        self.dims = dims
        self.strides = strides
    }

    /// Calls `body(part, outputOffset, aOffset, bOffset)` for parts of a two-operand plan cut
    /// along the outermost loop and run on the runtime's workers (one call, the whole plan at
    /// offsets 0, under `Elementwise.splitMinimum` elements or with one worker; nothing is
    /// allocated then). A single flat loop is cut at multiples of 16 elements, so every element
    /// falls at the same vector lane as in one pass and gets the same bits.
    func forEachPart(_ body: (BroadcastPlan, Int, Int, Int) -> Void) {
        precondition(strides.count == 2, "parts of a plan of two operands")
        guard let outer = dims.first, outputCount >= Elementwise.splitMinimum else {
            body(self, 0, 0, 0)
            return
        }
        let grain = dims.count == 1 ? 16 : 1, inner = outputCount / outer
        let units = (outer + grain - 1) / grain
        ParallelFor.run(units, cost: inner * grain) { lo, hi in
            let r0 = lo * grain, r1 = min(outer, hi * grain)
            if r0 == 0 && r1 == outer {
                body(self, 0, 0, 0)
                return
            }
            let part = BroadcastPlan(outputCount: (r1 - r0) * inner, dims: [r1 - r0] + dims.dropFirst(), strides: strides)
            body(part, r0 * inner, r0 * strides[0][0], r0 * strides[1][0])
        }
    }

    /// The plan for the broadcast of `operands` (their shape is `Broadcast.shape(operands)`).
    package init(operands: [[Int]]) throws(Broadcast.Mismatch) {
        try self.init(outShape: Broadcast.shape(operands), operands: operands)
    }

    /// The length of the innermost run (1 for a scalar output).
    public var rowLength: Int { dims.last ?? 1 }

    /// Each operand's stride along the innermost run (0 or 1).
    public var rowStrides: [Int] { strides.map { $0.last ?? 0 } }

    /// Calls `body(outputOffset, operandOffsets)` once per innermost run of `rowLength` output
    /// elements, in order; operand `k` reads `operandOffsets[k] + j * rowStrides[k]` for element `j`.
    public func forEachRow(_ body: (Int, UnsafeBufferPointer<Int>) -> Void) {
        guard outputCount > 0 else { return }
        let k = strides.count, outer = max(dims.count - 1, 0), n = rowLength
        withUnsafeTemporaryAllocation(of: Int.self, capacity: k + outer) { scratch in
            guard let base = scratch.baseAddress else { return }
            let offsets = base, index = base + k
            offsets.initialize(repeating: 0, count: k)
            index.initialize(repeating: 0, count: outer)
            let view = UnsafeBufferPointer(start: offsets, count: k)
            var o = 0
            while true {
                body(o, view)
                o += n
                // Odometer over the outer dims, moving every operand's offset with it.
                var d = outer - 1
                while d >= 0 {
                    index[d] += 1
                    for j in 0..<k { offsets[j] += strides[j][d] }
                    if index[d] < dims[d] { break }
                    for j in 0..<k { offsets[j] -= strides[j][d] * dims[d] }
                    index[d] = 0
                    d -= 1
                }
                if d < 0 { return }
            }
        }
    }

    /// For each output element in row-major order, the flat index of operand `k`'s element that
    /// broadcasts onto it.
    public func offsets(of k: Int) -> [Int] {
        var out = [Int](repeating: 0, count: outputCount)
        let step = rowStrides[k], n = rowLength
        out.withUnsafeMutableBufferPointer { o in
            forEachRow { at, off in
                let start = off[k]
                for j in 0..<n { o[at + j] = start + j * step }
            }
        }
        return out
    }

    /// Runs `F` over every output element of a two-operand plan: the innermost run goes to a
    /// contiguous kernel chosen by which operand is constant along it; the outer dimensions are
    /// walked recursively (depth at most the rank), so nothing is allocated.
    @inline(__always)
    func run<F: BinaryFunctor>(
        _: F.Type, _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>,
        _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        precondition(strides.count == 2, "a binary kernel runs a plan of two operands")
        if outputCount == 0 { return }
        if dims.isEmpty {
            out.pointee = F.scalar(a.pointee, b.pointee)
            return
        }
        walk(F.self, 0, strides[0], strides[1], a, b, out)
    }

    /// Runs dimensions `d...` starting at the given operand and output positions.
    func walk<F: BinaryFunctor>(
        _: F.Type, _ d: Int, _ aStrides: [Int], _ bStrides: [Int],
        _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>, _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        let last = dims.count - 1
        if d == last {
            rows(F.self, 1, 0, 0, aStrides[last], bStrides[last], a, b, out)
        } else if d == last - 1 {
            rows(F.self, dims[d], aStrides[d], bStrides[d], aStrides[last], bStrides[last], a, b, out)
        } else {
            let sa = aStrides[d], sb = bStrides[d]
            let block = outputCount / outerCount(through: d)
            for i in 0..<dims[d] {
                walk(F.self, d + 1, aStrides, bStrides, a + i * sa, b + i * sb, out + i * block)
            }
        }
    }

    /// `count` rows of the innermost dimension, row `i` reading `a + i * sa` and `b + i * sb`
    /// (`ia`, `ib`: the strides along the row): the choice of contiguous loop is made once for all
    /// rows, and short rows (fewer than eight elements, where vector loops only add overhead) run
    /// as plain scalar loops.
    @inline(__always)
    func rows<F: BinaryFunctor>(
        _: F.Type, _ count: Int, _ sa: Int, _ sb: Int, _ ia: Int, _ ib: Int,
        _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>, _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        let n = dims[dims.count - 1]
        if n < 8 {
            var o = out
            for i in 0..<count {
                let ra = a + i * sa, rb = b + i * sb
                for j in 0..<n { o[j] = F.scalar(ra[j * ia], rb[j * ib]) }
                o += n
            }
            return
        }
        switch (ia != 0, ib != 0) {
        case (true, true):
            for i in 0..<count { BinaryLoops.vectorVector(F.self, a + i * sa, b + i * sb, out + i * n, n) }
        case (true, false):
            for i in 0..<count { BinaryLoops.vectorScalar(F.self, a + i * sa, b[i * sb], out + i * n, n) }
        case (false, true):
            for i in 0..<count { BinaryLoops.scalarVector(F.self, a[i * sa], b + i * sb, out + i * n, n) }
        case (false, false):
            for i in 0..<count { (out + i * n).update(repeating: F.scalar(a[i * sa], b[i * sb]), count: n) }
        }
    }

    /// The product of `dims[0...d]`.
    @inline(__always)
    func outerCount(through d: Int) -> Int {
        var c = 1
        for i in 0...d { c *= dims[i] }
        return c
    }
}
