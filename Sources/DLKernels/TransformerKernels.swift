import CKernels

/// The AVX-512 attention core of `CKernels` (see `ckernels_transformer.h`): per head, score rows
/// `Q·Kᵀ` in a small per-thread scratch, scaled, masked and normalised there, then multiplied by
/// V into the output. Callers keep their portable path for when ``isAvailable`` is false or a
/// call returns false.
public enum AttentionCore {
    /// How the scale input applies to the products.
    public enum ScaleOp: Sendable { case none, multiply, divide }

    /// True when the AVX-512 kernels may run (see ``CPUFeatures/avx512``).
    public static var isAvailable: Bool { CPUFeatures.avx512 }

    /// Where a mask broadcast to `[..., s, t]` keeps element (head h, row i, column j):
    /// `base + ((h / headDivisor) % headModulus)·headStride + i·rowStride + j`, heads numbered
    /// over the batch dims in row-major order. See ``init(maskShape:batch:s:t:)``.
    public struct MaskLayout: Sendable, Equatable {
        public var headStride: Int, headDivisor: Int, headModulus: Int, rowStride: Int

        public init(headStride: Int, headDivisor: Int = 1, headModulus: Int = Int(Int32.max), rowStride: Int) {
            self.headStride = headStride
            self.headDivisor = headDivisor
            self.headModulus = headModulus
            self.rowStride = rowStride
        }

        /// The layout of a contiguous mask of shape `maskShape` added to scores of shape
        /// `batch + [s, t]` (numpy broadcasting), or nil when it cannot be read that way: a mask
        /// broadcast along the columns, or varying along batch dims that are not one run (say
        /// over the batch and the query rows but not over heads in between is fine: `[B, 1, S, T]`;
        /// `[B, 1, H2, ...]` against `[B, H1, H2, ...]` is not).
        public init?(maskShape: [Int], batch: [Int], s: Int, t: Int) {
            let r = batch.count + 2
            guard !maskShape.isEmpty, maskShape.count <= r else { return nil }
            let m = [Int](repeating: 1, count: r - maskShape.count) + maskShape
            guard m[r - 1] == t, m[r - 2] == s || m[r - 2] == 1 else { return nil }
            let varying = (0..<batch.count).filter { m[$0] != 1 }
            guard varying.allSatisfy({ m[$0] == batch[$0] }) else { return nil }
            let plane = m[r - 2] * t
            guard let a = varying.first, let b = varying.last.map({ $0 + 1 }) else {
                self.init(headStride: 0, headDivisor: 1, headModulus: 1, rowStride: m[r - 2] == 1 ? 0 : t)
                return
            }
            // Inside the run, the mask must follow every dim of the scores (a 1 there against a
            // bigger dim would need a second broadcast).
            guard (a..<b).allSatisfy({ m[$0] == batch[$0] }) else { return nil }
            self.init(headStride: plane, headDivisor: batch[b...].reduce(1, *), headModulus: batch[a..<b].reduce(1, *),
                      rowStride: m[r - 2] == 1 ? 0 : t)
        }

        /// The offset of head `h`'s mask plane.
        public func offset(head h: Int) -> Int { (h / headDivisor) % headModulus * headStride }
    }

    /// Heads `heads` of `O = softmax(scale(Q·Kᵀ) + M)·V`. Element strides in floats:
    /// Q `s × d` at `q + h·qHead + i·qRow + c`; Kᵀ `d × t` at `kt + h·kHead + c·kRow + j`;
    /// V `t × dv` at `v + h·vHead + j·vRow + c`; the mask as `maskLayout` says;
    /// O `s × dv` at `out + h·outHead + i·outRow + c`. With `nanToZero`, NaN probabilities are
    /// taken as 0 (torch's `Where(IsNaN(p), 0, p)`: a row masked out entirely gives zeros).
    /// - Returns: false when the kernel did not run (unsupported, sizes beyond `Int32`, or no
    ///   scratch memory); then nothing was written.
    public static func run(
        heads: Range<Int>, s: Int, t: Int, d: Int, dv: Int,
        q: UnsafePointer<Float>, qHead: Int, qRow: Int,
        kt: UnsafePointer<Float>, kHead: Int, kRow: Int,
        v: UnsafePointer<Float>, vHead: Int, vRow: Int,
        mask: UnsafePointer<Float>?, maskLayout: MaskLayout, scaleOp: ScaleOp, scale: Float, nanToZero: Bool = false,
        out: UnsafeMutablePointer<Float>, outHead: Int, outRow: Int
    ) -> Bool {
        let limit = Int(Int32.max)
        guard isAvailable, heads.lowerBound >= 0, heads.upperBound <= limit, s <= limit, t <= limit, d <= limit,
              dv <= limit, maskLayout.headDivisor >= 1, maskLayout.headModulus >= 1 else { return false }
        let op: Int32
        switch scaleOp {
        case .none: op = Int32(DLK_SCALE_NONE)
        case .multiply: op = Int32(DLK_SCALE_MUL)
        case .divide: op = Int32(DLK_SCALE_DIV)
        }
        return dlk_attention(Int32(heads.lowerBound), Int32(heads.upperBound), Int32(s), Int32(t), Int32(d), Int32(dv),
                             q, qHead, qRow, kt, kHead, kRow, v, vHead, vRow,
                             mask, maskLayout.headStride, maskLayout.headDivisor, maskLayout.headModulus, maskLayout.rowStride,
                             op, scale, nanToZero ? 1 : 0, out, outHead, outRow) == 0
    }
}
