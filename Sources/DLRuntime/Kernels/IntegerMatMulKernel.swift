import DLGraph
import DLKernels
import DLTensor

/// MatMulInteger on 8-bit operands through DLKernels' `IntegerGemm` (AVX-512 VNNI or its scalar
/// loop): A [..., M, K] (leading dims folded into rows) times a 2-D B [K, N], the zero points one
/// value, or one per row of a 2-D A and one per column of B. With VNNI and one zero point for A,
/// the product is a 1×1 channels-last convolution on `IntegerConvolution`, B packed once (the
/// conv kernel's cache). Anything else (batched B, wider types, a depth past
/// `IntegerGemm.maxDepth`) is left to the general kernel.
enum IntegerMatMulKernel {
    static func product(_ ctx: KernelContext, _ a: Tensor, _ b: Tensor) throws(RuntimeError) -> Tensor? {
        let bytes: Set<DType> = [.int8, .uint8]
        guard bytes.contains(a.dtype), bytes.contains(b.dtype), a.rank >= 2, b.rank == 2 else { return nil }
        let k = a.shape[a.rank - 1], n = b.shape[1], rows = a.shape.dropLast().reduce(1, *)
        guard b.shape[0] == k, k > 0, n > 0, rows > 0, k <= IntegerGemm.maxDepth else { return nil }
        let az = ctx.optionalInput(2), bz = ctx.optionalInput(3)
        guard az.map({ $0.dtype == a.dtype && ($0.elementCount == 1 || (a.rank == 2 && $0.elementCount == rows)) }) ?? true,
              bz.map({ $0.dtype == b.dtype && ($0.elementCount == 1 || $0.elementCount == n) }) ?? true else { return nil }
        let aZero = az?.int64s().map { Int32($0) } ?? [], bZero = bz?.int64s().map { Int32($0) } ?? []
        var c = [Int32](repeating: 0, count: rows * n)
        if IntegerGemm.vnni, aZero.count <= 1 {
            let p = IntegerConvolution.Geometry(n: 1, h: 1, w: rows, c: k, m: n, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1,
                                                pt: 0, pl: 0, oh: 1, ow: rows, group: 1)
            if let packed = IntegerConvKernel.packedWeights(b, zeroPoints: bZero, geometry: p, columns: true) {
                let done = a.withUnsafeBytes { pa in
                    c.withUnsafeMutableBufferPointer { pc in
                        pc.baseAddress.map {
                            IntegerConvolution.run(p, x: pa, xSigned: a.dtype == .int8, xZero: aZero.first ?? 0, weights: packed, bias: [], into: $0)
                        } ?? false
                    }
                }
                if done { return Tensor(shape: Array(a.shape.dropLast()) + [n], scalars: c) }
            }
        }
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    guard let out = pc.baseAddress else { return }
                    IntegerGemm.multiply(IntegerGemm.Operand(bytes: pa, signed: a.dtype == .int8, rows: rows, cols: k, zeroPoints: aZero),
                                         IntegerGemm.Operand(bytes: pb, signed: b.dtype == .int8, rows: k, cols: n, zeroPoints: bZero),
                                         into: out)
                }
            }
        }
        return Tensor(shape: Array(a.shape.dropLast()) + [n], scalars: c)
    }
}
