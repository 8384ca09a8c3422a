/// How two operands broadcast to an output, numpy style, reduced to the fewest loop dimensions.
///
/// Built once per shape triple (the runtime can build it when it plans and reuse it on every run);
/// running a binary kernel with it then allocates nothing on the heap.
///
/// Shapes are right-aligned: an operand of lower rank gains leading 1s, so `[3, 1]` against
/// `[2, 3, 4]` is `[1, 3, 1]`. A dimension of size 1 is read with stride 0. Adjacent dimensions
/// that are contiguous (or broadcast) in both operands are merged, so equal shapes become one
/// flat loop, and `[N, C, H, W] + [C, 1, 1]` becomes `[N, C, H*W]` with the bias constant along the
/// innermost run.
public struct BroadcastPlan: Hashable, Sendable {
    /// Elements in the output.
    public let outputCount: Int
    /// Loop sizes, outermost first, after merging; empty for a scalar output.
    public let dims: [Int]
    /// Element strides of each operand along `dims` (0 where it is broadcast).
    public let aStrides: [Int]
    public let bStrides: [Int]

    /// - Precondition: neither operand has a higher rank than `outShape`, and each of their sizes
    ///   equals the output's size there or is 1 (`ShapeMath.broadcast` gives such an `outShape`).
    ///   The caller validates shapes from user data first.
    public init(outShape: [Int], aShape: [Int], bShape: [Int]) {
        let r = outShape.count
        precondition(aShape.count <= r && bShape.count <= r, "operand rank exceeds output rank")
        var count = 1
        for d in outShape { count *= d }
        outputCount = count

        // Innermost first: (size, aStride, bStride), skipping size-1 output dimensions.
        var sizes: [Int] = [], sa: [Int] = [], sb: [Int] = []
        var accA = 1, accB = 1
        for i in stride(from: r - 1, through: 0, by: -1) {
            let n = outShape[i]
            let da = i >= r - aShape.count ? aShape[i - (r - aShape.count)] : 1
            let db = i >= r - bShape.count ? bShape[i - (r - bShape.count)] : 1
            precondition((da == n || da == 1) && (db == n || db == 1), "shapes do not broadcast")
            let strideA = da == 1 ? 0 : accA
            let strideB = db == 1 ? 0 : accB
            accA *= da
            accB *= db
            if n == 1 { continue }
            if let last = sizes.last,
               strideA == sa[sa.count - 1] * last, strideB == sb[sb.count - 1] * last {
                sizes[sizes.count - 1] *= n
            } else {
                sizes.append(n)
                sa.append(strideA)
                sb.append(strideB)
            }
        }
        dims = sizes.reversed()
        aStrides = sa.reversed()
        bStrides = sb.reversed()
    }

    /// Runs `F` over every output element: the innermost run goes to a contiguous kernel chosen by
    /// which operand is constant along it; the outer dimensions are walked recursively (depth at
    /// most the rank), so nothing is allocated.
    @inline(__always)
    func run<F: BinaryFunctor>(
        _: F.Type, _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>,
        _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        if outputCount == 0 { return }
        if dims.isEmpty {
            out.pointee = F.scalar(a.pointee, b.pointee)
            return
        }
        walk(F.self, 0, a, b, out)
    }

    /// Runs dimensions `d...` starting at the given operand and output positions.
    func walk<F: BinaryFunctor>(
        _: F.Type, _ d: Int, _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>,
        _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        let last = dims.count - 1
        if d == last {
            rows(F.self, 1, 0, 0, a, b, out)
        } else if d == last - 1 {
            rows(F.self, dims[d], aStrides[d], bStrides[d], a, b, out)
        } else {
            let sa = aStrides[d], sb = bStrides[d]
            let block = outputCount / outerCount(through: d)
            for i in 0..<dims[d] {
                walk(F.self, d + 1, a + i * sa, b + i * sb, out + i * block)
            }
        }
    }

    /// `count` rows of the innermost dimension, row `i` reading `a + i * sa` and `b + i * sb`:
    /// the choice of contiguous loop is made once for all rows, and short rows (fewer than eight
    /// elements, where vector loops only add overhead) run as plain scalar loops.
    @inline(__always)
    func rows<F: BinaryFunctor>(
        _: F.Type, _ count: Int, _ sa: Int, _ sb: Int,
        _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>, _ out: UnsafeMutablePointer<F.Scalar>
    ) {
        let n = dims[dims.count - 1]
        let ia = aStrides[dims.count - 1], ib = bStrides[dims.count - 1]
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
