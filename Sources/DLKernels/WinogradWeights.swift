import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Winograd-transformed 3×3 weights (`dlk_wino_weights`), made on first use for each packed
/// weight matrix and kept while that matrix lives, so a run does not transform them again
/// (8192 kernels in the residual CNN: ~5% of a batch-1 run). Keyed by the `PackedMatrix` of the
/// same convolution through a weak reference: an entry whose matrix is gone is freed on the
/// next lookup, and a new matrix at a reused address can never match it.
final class WinogradWeights: @unchecked Sendable {
    static let shared = WinogradWeights()

    private struct Entry {
        weak var key: PackedMatrix?
        let pointer: UnsafeMutablePointer<Float>
        let m: Int, cin: Int
    }

    private var entries: [Entry] = []
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Live entries kept at most; past that, callers transform per call.
    let limit = 64

    init() { pthread_mutex_init(lock, nil) }

    /// The transform of `raw` (`[m][cin][3][3]`) for the convolution whose packed weights are
    /// `key`, or nil when the cache is full (the caller then transforms into scratch memory).
    /// The pointer stays valid while `key` lives.
    func transformed(for key: PackedMatrix, raw: UnsafePointer<Float>, m: Int, cin: Int) -> UnsafePointer<Float>? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if let e = entries.first(where: { $0.key === key && $0.m == m && $0.cin == cin }) { return UnsafePointer(e.pointer) }
        for e in entries where e.key == nil { e.pointer.deallocate() }
        entries.removeAll { $0.key == nil }
        guard entries.count < limit else { return nil }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 16 * m * cin)
        dlk_wino_weights(raw, Int32(m), Int32(cin), p)
        entries.append(Entry(key: key, pointer: p, m: m, cin: cin))
        return UnsafePointer(p)
    }
}
