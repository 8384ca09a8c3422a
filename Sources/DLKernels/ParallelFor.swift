import Dispatch
#if canImport(Synchronization)
import Synchronization
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a loop over a fixed number of workers (the runtime's thread count): elementwise work over
/// large tensors, per-image or per-channel loops, the column halves of a GEMM.
///
/// Work runs on the calling thread plus the threads of a persistent pool (`workerCount - 1` of
/// them, created once by `setWorkerCount`). Pool threads spin for a short while after each job
/// (so the next op of the same inference wakes them for the price of a store), then sleep on a
/// condition variable, so an idle process burns no CPU. Chunks are claimed dynamically: when a
/// worker is slow to wake, the caller takes its chunk too, so a split loop is never much slower
/// than running it inline. A loop too small to be worth splitting runs inline, as does a nested
/// call (from inside a split loop).
///
/// Deterministic under concurrency: how a loop is cut into chunks depends only on the worker
/// count and on whether the call is nested, never on whether the pool is free. A call made while
/// another thread's loop holds the pool runs the same chunks one after the other on its own
/// thread (each marked nested, as on the pool), so every chunk computes the same bits either way
/// and concurrent runs match serial ones exactly.
public enum ParallelFor {
    /// The number of workers a loop started on this thread is cut for (1 runs everything on the
    /// caller): ``KernelOptions/workers`` of the options in force, else the process default
    /// (``defaultWorkerCount``); 1 inside a chunk of a split loop.
    public static var workerCount: Int {
        let state = ThreadState.current
        if state.nested { return 1 }
        return state.options.workers ?? defaultWorkerCount
    }

    /// The process default of ``workerCount`` (``setWorkerCount(_:)``; 1 until set).
    public static var defaultWorkerCount: Int {
        #if canImport(Synchronization)
        if #available(macOS 15, iOS 18, *) { return WorkerPool.shared.defaultWorkers.load(ordering: .relaxed) }
        #endif
        return 1
    }

    /// Sets the process default number of threads split loops use (at least 1): starts or stops
    /// pool threads. A run that reads the count while it changes sees the old or the new one;
    /// a caller that needs one count for sure chooses it per call (``withWorkerCount(_:_:)``).
    public static func setWorkerCount(_ count: Int) {
        let n = max(1, count)
        #if canImport(Synchronization)
        if #available(macOS 15, iOS 18, *) {
            WorkerPool.shared.defaultWorkers.store(n, ordering: .relaxed)
            WorkerPool.shared.resize(threads: n - 1)
        }
        #endif
    }

    /// Runs `body` with loops on this thread cut for `count` workers (at least 1) instead of the
    /// process default: a per-call choice that no other thread sees (``KernelOptions/with(_:_:)``
    /// with only the worker count changed).
    public static func withWorkerCount<R, E: Error>(_ count: Int, _ body: () throws(E) -> R) throws(E) -> R {
        var options = KernelOptions.current
        options.workers = max(1, count)
        return try KernelOptions.with(options, body)
    }

    /// Starts pool threads so that `count` workers (the caller and `count - 1` threads) can take
    /// part; never stops any.
    static func reserve(_ count: Int) {
        #if canImport(Synchronization)
        if #available(macOS 15, iOS 18, *) { WorkerPool.shared.reserve(threads: count - 1) }
        #endif
    }

    /// How long an idle pool thread spins before it sleeps (default 500 µs), process-wide: long
    /// enough to span the serial stretches inside one inference (an LSTM layer's time steps take
    /// ~130 µs between its two parallel products), while a sleeping worker costs tens of
    /// microseconds to wake on a VM. For measurements (the tools map `DLKIT_SPIN_US`).
    public static func setSpin(microseconds: Int) {
        #if canImport(Synchronization)
        if #available(macOS 15, iOS 18, *) { WorkerPool.shared.spinNanoseconds.store(UInt64(max(0, microseconds)) * 1000, ordering: .relaxed) }
        #endif
    }

    /// True when a loop started here would be cut into chunks for several workers: more than one
    /// worker and not inside a chunk of another split loop. Depends on nothing another thread
    /// does (not on the pool being free), so callers may choose their algorithm by it and still
    /// compute the same bits in concurrent and serial runs.
    public static var canSplit: Bool { workerCount > 1 }

    /// True on a thread that is running a chunk of a split loop (a pool worker, or a caller
    /// running its chunks): loops started there run inline.
    public static var isNested: Bool { ThreadState.current.nested }

    /// Work below this many floats touched runs inline: waking a spinning worker costs about a
    /// microsecond, a sleeping one tens of microseconds, and 32k floats of simple elementwise
    /// work take a few microseconds on one core.
    public static let inlineBelow = 32_768

    /// Calls `body(lo, hi)` on disjoint chunks covering `0..<count`, in parallel when the loop is
    /// large enough; returns when all chunks are done. `cost` is a rough per-item cost in floats
    /// touched; loops under ``inlineBelow`` floats of work run inline.
    @inlinable
    public static func run(_ count: Int, cost: Int = 1, _ body: (Int, Int) -> Void) {
        let w = min(workerCount, count)
        if w <= 1 || count * max(1, cost) < inlineBelow || isNested {
            if count > 0 { body(0, count) }
            return
        }
        split(count, parts: w, body)
    }

    /// ``run(_:cost:_:)`` over the elements `0..<count` in parts cut at multiples of 16, so every
    /// element falls at the same vector lane as in one pass (a float vector of AVX-512): an
    /// elementwise loop split this way gives the same bits. `cost` is per element.
    @inlinable
    public static func runInVectors(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        run((count + 15) / 16, cost: 16 * max(1, cost)) { lo, hi in
            let range = (lo * 16)..<min(count, hi * 16)
            if !range.isEmpty { body(range) }
        }
    }

    /// Calls `body(lo, hi)` on `parts` (clamped to `1...count`) near-equal chunks of `0..<count`,
    /// on the pool when it is free, inline otherwise; no cost model (the caller decided).
    /// A nested call (inside a chunk of another split loop) runs `body(0, count)` inline.
    public static func split(_ count: Int, parts: Int, _ body: (Int, Int) -> Void) {
        let w = min(parts, count)
        let state = ThreadState.current
        if w <= 1 || state.nested {
            if count > 0 { body(0, count) }
            return
        }
        let chunk = (count + w - 1) / w
        let chunks = (count + chunk - 1) / chunk
        withoutActuallyEscaping(body) { body in
            let job: (Int) -> Void = { c in
                let lo = c * chunk
                body(lo, min(count, lo + chunk))
            }
            state.nested = true
            defer { state.nested = false }
            #if canImport(Synchronization)
            if #available(macOS 15, iOS 18, *), WorkerPool.shared.run(chunks: chunks, job) { return }
            #endif
            // The pool is taken by another thread's loop: the same chunks, one after the other.
            for c in 0..<chunks { job(c) }
        }
    }
}

#if canImport(Synchronization)
/// The runtime's persistent threads. One job at a time: a job is a chunk count and a closure; the
/// caller and the workers claim chunk indices from one tagged counter until none are left.
@available(macOS 15, iOS 18, *)
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// Bumped to publish a job; workers wait for it to change.
    private let generation = Atomic<Int>(0)
    /// Workers blocked on the condition variable (the publisher signals only when some are).
    private let sleepers = Atomic<Int>(0)
    /// `generation << 32 | next chunk index` of the current job: a claim is a compare-exchange,
    /// so a worker that wakes late can never take a chunk of a newer job by mistake. A finished
    /// job's index is set to `closed`, which no chunk count reaches.
    private let next = Atomic<Int>(0)
    private static let closed = 0xffff_ffff
    /// Chunks of the current job not yet finished.
    private let pending = Atomic<Int>(0)
    /// Held by the thread whose job is running; others (and nested calls) run inline.
    private let busy = Atomic<Bool>(false)
    /// Workers with an index at or above this sit out (asleep) until the count grows again.
    private let active = Atomic<Int>(0)
    /// The process default worker count (`ParallelFor.setWorkerCount`), kept here because it
    /// needs an atomic.
    let defaultWorkers = Atomic<Int>(1)

    /// The current job; written only while `busy` is held and no chunk of the previous job is
    /// outstanding, read only by a thread that claimed a chunk of it.
    nonisolated(unsafe) private var job: ((Int) -> Void)?
    /// Chunks of the current job (atomic: a worker that wakes late may read it while the next
    /// job is published; its claim then fails on the generation tag).
    private let jobChunks = Atomic<Int>(0)
    /// Threads started so far (guarded by `mutex`).
    nonisolated(unsafe) private var started = 0

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// How long an idle worker spins before it sleeps (nanoseconds; see `ParallelFor.setSpin`).
    /// Waking a sleeping worker costs tens of microseconds here (a VM), which made 2 threads
    /// slower than 1 at batch 1 (LSTM 0.39 vs 0.28 ms); after the last parallel section a worker
    /// burns at most this long.
    let spinNanoseconds = Atomic<UInt64>(500_000)

    /// The kernel options of the thread whose job runs (written with `job`): pool threads run its
    /// chunks under them.
    nonisolated(unsafe) private var jobOptions = KernelOptions()

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    /// Starts threads up to `threads` workers; those above it stop taking part (threads are never
    /// destroyed, so a count set back and forth never leaves two threads with one index).
    func resize(threads wanted: Int, growOnly: Bool = false) {
        // Changing the count while a job runs would race with it: wait for the pool to be free.
        while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { sched_yield() }
        defer { busy.store(false, ordering: .releasing) }
        pthread_mutex_lock(mutex)
        let threads = growOnly ? max(wanted, active.load(ordering: .sequentiallyConsistent)) : wanted
        active.store(threads, ordering: .sequentiallyConsistent)
        var toStart: [Int] = []
        if threads > started {
            toStart = Array(started..<threads)
            started = threads
        }
        // Wake everyone so workers see the new count.
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
        for index in toStart { spawn(index) }
    }

    /// Starts threads so that at least `threads` take part (never fewer than take part now).
    func reserve(threads: Int) {
        guard active.load(ordering: .relaxed) < threads else { return }
        resize(threads: threads, growOnly: true)
    }

    private func spawn(_ index: Int) {
        let box = Unmanaged.passRetained(WorkerStart(pool: self, index: index))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
            start.pool.work(index: start.index)
            return nil
        }, box.toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            box.release()
        }
    }

    /// Runs `chunks` chunks of `body` on the caller and the workers. - Returns: false (nothing
    /// ran) when the pool is taken by another thread; the caller then runs the chunks itself.
    func run(chunks: Int, _ body: (Int) -> Void) -> Bool {
        guard active.load(ordering: .relaxed) > 0,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            job = body
            jobOptions = ThreadState.current.options
            jobChunks.store(chunks, ordering: .releasing)
            pending.store(chunks, ordering: .relaxed)
            let g = generation.load(ordering: .relaxed) &+ 1
            next.store(g << 32, ordering: .releasing)
            generation.store(g, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(cond)
                pthread_mutex_unlock(mutex)
            }
            claimLoop(generation: g, worker: nil)
            // Chunks claimed by workers may still run: wait for them (spin, then yield).
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 4096 { sched_yield() }
            }
            // Close the job before the next one changes `jobChunks`: a worker that read this
            // job's last claim would otherwise pass the next job's larger count and claim with it.
            next.store(g << 32 | Self.closed, ordering: .sequentiallyConsistent)
            job = nil
        }
        return true
    }

    /// Claims and runs chunks of generation `g` until none are left; a pool thread (`worker`)
    /// takes the job's kernel options first.
    private func claimLoop(generation g: Int, worker: ThreadState?) {
        while true {
            let v = next.load(ordering: .acquiring)
            guard v >> 32 == g else { return }
            let index = v & 0xffff_ffff
            guard index < jobChunks.load(ordering: .acquiring) else { return }
            guard next.compareExchange(expected: v, desired: v + 1, ordering: .acquiringAndReleasing).exchanged else { continue }
            worker?.options = jobOptions
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func work(index: Int) {
        // A worker only ever runs chunks of split loops: loops it starts run inline.
        let state = ThreadState.current
        state.nested = true
        var seen = generation.load(ordering: .acquiring)
        while true {
            var g = generation.load(ordering: .acquiring)
            let participating = index < active.load(ordering: .sequentiallyConsistent)
            if g == seen || !participating {
                // Spin a little: the next op of the same inference usually follows within microseconds.
                let deadline = Self.nanoseconds() &+ spinNanoseconds.load(ordering: .relaxed)
                var spins = 0
                while g == seen, participating {
                    spins += 1
                    if spins & 255 == 0, Self.nanoseconds() > deadline { break }
                    g = generation.load(ordering: .acquiring)
                }
                if g == seen || !participating {
                    pthread_mutex_lock(mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(cond, mutex)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(mutex)
                    g = generation.load(ordering: .acquiring)
                }
            }
            seen = g
            if index >= active.load(ordering: .sequentiallyConsistent) { continue }
            claimLoop(generation: g, worker: state)
        }
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

@available(macOS 15, iOS 18, *)
private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}
#endif

/// Carries a value into Dispatch's `@Sendable` closures where the caller guarantees safe use.
@usableFromInline
struct UncheckedBox<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}

/// What the runtime keeps per thread: whether the thread is inside a chunk of a split loop, and
/// the kernel options in force. One object per thread, made on first use and freed when
/// the thread exits.
final class ThreadState {
    var nested = false
    /// The kernel options in force (see ``KernelOptions/with(_:_:)``).
    var options = KernelOptions()

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { raw in
            // Optional on Linux, not on Darwin: the cast covers both.
            if let raw = raw as UnsafeMutableRawPointer? { Unmanaged<ThreadState>.fromOpaque(raw).release() }
        }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    /// This thread's state.
    static var current: ThreadState {
        if let raw = pthread_getspecific(key) { return Unmanaged<ThreadState>.fromOpaque(raw).takeUnretainedValue() }
        let state = ThreadState()
        pthread_setspecific(key, Unmanaged.passRetained(state).toOpaque())
        return state
    }
}
