import Dispatch

/// Splits a loop over a fixed number of workers (the runtime's thread count), for the ops that are
/// not GEMMs: elementwise work over large tensors, per-image or per-channel loops.
///
/// Work runs on the calling thread plus `workerCount - 1` threads of Dispatch's pool; a loop too
/// small to be worth splitting runs inline.
public enum ParallelFor {
    /// Written by `setWorkerCount` at start-up (or between runs); a racing reader sees the old or
    /// the new count, either of which is a valid split.
    nonisolated(unsafe) private static var workers = 1

    /// The number of threads a split loop uses (1 runs everything on the caller).
    public static var workerCount: Int { workers }

    /// Sets the number of threads split loops use (at least 1).
    public static func setWorkerCount(_ count: Int) {
        workers = max(1, count)
    }

    /// Calls `body(lo, hi)` on disjoint chunks covering `0..<count`, in parallel when the loop is
    /// large enough; returns when all chunks are done. `cost` is a rough per-item cost in floats touched; loops under about 32k
    /// floats of work run inline.
    @inlinable
    public static func run(_ count: Int, cost: Int = 1, _ body: (Int, Int) -> Void) {
        let w = min(workerCount, count)
        if w <= 1 || count * max(1, cost) < 32_768 {
            if count > 0 { body(0, count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // The chunks are disjoint and concurrentPerform returns after all of them: the
            // caller's non-Sendable state is never touched by two threads at once through `body`.
            let box = UncheckedBox(body)
            let chunk = (count + w - 1) / w
            DispatchQueue.concurrentPerform(iterations: w) { i in
                let lo = i * chunk, hi = min(count, lo + chunk)
                if lo < hi { box.value(lo, hi) }
            }
        }
    }
}

/// Carries a value into Dispatch's `@Sendable` closures where the caller guarantees safe use.
@usableFromInline
struct UncheckedBox<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}
