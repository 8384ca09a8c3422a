#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLTensor

/// Output buffers recycled by liveness during one planned run, and kept from run to run.
///
/// A plan run hands each value's storage back here right after the value's last reader (the plan
/// computed that step once, from the graph), provided nothing else still holds the storage: a view
/// (Reshape's output, a kernel returning its input) keeps it alive until the view dies too, and a
/// constant or a caller's tensor is never uniquely held. Kernels ask ``take(byteCount:)`` for
/// their outputs (`KernelContext.makeFloatOutput`); a buffer of the same size freed earlier is
/// reused, so the same sequence of steps on the same shapes allocates nothing after its first run.
/// Graph outputs go to the caller; their storages are remembered and taken back once the caller
/// has dropped them.
///
/// Not thread-safe: one run uses a pool at a time (``PoolSet`` hands them out).
final class BufferPool {
    /// Free storages by byte count.
    private var free: [Int: [TensorStorage]] = [:]
    /// Storages of earlier runs' outputs, reclaimed when no tensor of the caller holds them.
    private var lent: [TensorStorage] = []
    /// Storages allocated (not reused) since the counter was last reset.
    private(set) var allocations = 0
    /// Storages handed out by `take` during the current step (for the unpooled-output check).
    private(set) var issued: [ObjectIdentifier] = []

    /// A storage of `byteCount` bytes with unspecified contents: a freed one when there is one.
    func take(byteCount: Int) -> TensorStorage {
        if let s = free[byteCount]?.popLast() {
            issued.append(ObjectIdentifier(s))
            return s
        }
        if reclaim(byteCount: byteCount), let s = free[byteCount]?.popLast() {
            issued.append(ObjectIdentifier(s))
            return s
        }
        allocations += 1
        let s = TensorStorage(uninitializedByteCount: byteCount, maker: ObjectIdentifier(self))
        issued.append(ObjectIdentifier(s))
        return s
    }

    /// Takes back `tensor`'s storage when this pool made it and `tensor` is its only holder.
    /// `tensor` is consumed either way.
    ///
    /// A storage made elsewhere (a kernel's own allocation, another plan's output) is let go: a
    /// pool that kept those would gain some on every run without ever asking for their sizes
    /// (silero-vad's plan kept its float16 Slice and Pad outputs, about 10 KB a run), and a
    /// subgraph's pool takes its lent outputs back once nobody holds them.
    func give(_ tensor: inout Tensor?) {
        guard var t = tensor else { return }
        tensor = nil
        guard t.dtype != .string, t.byteCount > 0, t.sharedStorage.maker == ObjectIdentifier(self),
              t.isUniquelyOwnedAndWritable() else { return }
        let s = t.sharedStorage
        free[s.byteCount, default: []].append(s)
    }

    /// Remembers the storage of an output handed to the caller, to reuse once the caller drops it
    /// (when this pool made it: a subgraph passing an enclosing value through lends nothing).
    func lend(_ tensor: Tensor) {
        let s = tensor.sharedStorage
        guard tensor.dtype != .string, tensor.byteCount > 0, s.maker == ObjectIdentifier(self) else { return }
        guard !lent.contains(where: { $0 === s }) else { return }
        if lent.count >= 32 { lent.removeFirst() }
        lent.append(s)
    }

    /// Moves lent storages of `byteCount` bytes nobody else holds back to the free list.
    private func reclaim(byteCount: Int) -> Bool {
        var found = false
        var i = 0
        while i < lent.count {
            if lent[i].byteCount == byteCount, isKnownUniquelyReferenced(&lent[i]) {
                free[byteCount, default: []].append(lent.remove(at: i))
                found = true
            } else {
                i += 1
            }
        }
        return found
    }

    /// A writable view of `byteCount` bytes at `offset` in `parent` (a storage this pool made),
    /// counted as issued by this step like a storage from ``take(byteCount:)``. The pool never
    /// takes a view back; `parent` returns when its own last holder dies.
    func slab(of parent: TensorStorage, offset: Int, byteCount: Int) -> TensorStorage {
        let s = TensorStorage(slabOf: parent, offset: offset, count: byteCount)
        issued.append(ObjectIdentifier(s))
        return s
    }

    func beginStep() { issued.removeAll(keepingCapacity: true) }

    /// How many free storages the pool holds.
    var freeCount: Int { free.values.reduce(0) { $0 + $1.count } }

    func resetCounters() { allocations = 0 }
}

/// The buffer pools of one plan: a run checks one out and returns it, so concurrent runs of a
/// plan never share a pool. At most a few idle pools are kept.
final class PoolSet: @unchecked Sendable {
    private var idle: [BufferPool] = []
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let keep = 4

    init() { pthread_mutex_init(lock, nil) }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    func checkOut() -> BufferPool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return idle.popLast() ?? BufferPool()
    }

    func checkIn(_ pool: BufferPool) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if idle.count < keep { idle.append(pool) }
    }
}
