import Foundation

/// The run stage shared by the stdio pipeline and the HTTP server: a queue of prepared jobs and
/// `threads` runner threads. Each runner takes the job at the head of the queue plus, when
/// batching is on, the jobs queued right behind it with the same batch signature (up to
/// `maxBatch`), runs them with `InferenceServer.run`, and hands every outcome to the callback
/// given with its job, on the runner's thread. With `threads: 0` there are no runner threads and
/// `submit` runs each job at once on the caller's thread (for single-threaded harnesses: fuzzing).
///
/// `runHereIfIdle` lets a caller run an inference on its own thread when a runner is free, nothing
/// is queued and the model's recent runs were short: no hand-over to a runner and back. At most
/// `threads` jobs run at once either way.
public final class RunQueue: @unchecked Sendable {
    package typealias Completion = @Sendable (ServeOutcome) -> Void

    private struct Item {
        let job: ServeJob
        let done: Completion
    }

    public let server: InferenceServer
    public let maxBatch: Int
    private let lock = NSCondition()
    private var items: [Item] = []
    private var head = 0
    private var closed = false
    /// Runs under way, on runner threads or through `runHereIfIdle`; at most `threadCount`.
    private var busy = 0
    /// Recent time of one unbatched run, by model index (a moving average, seconds).
    private var recentRunSeconds: [Int: Double] = [:]
    /// `runHereIfIdle` takes only models whose recent runs are at most this long: the hand-over it
    /// saves costs tens of microseconds, and a caller's thread (an HTTP event loop) busy with a long
    /// run answers nothing else meanwhile.
    public let hereLimitSeconds: Double
    private var running: [Thread] = []
    private let exited: DispatchSemaphore
    private let threadCount: Int
    /// Called after each run with the number of jobs it took (1 unless batched).
    private let observe: @Sendable (_ batch: Int) -> Void

    public init(server: InferenceServer, threads: Int, maxBatch: Int, name: String = "dlserve-run",
                hereLimitSeconds: Double = 0.002, observe: @escaping @Sendable (_ batch: Int) -> Void = { _ in }) {
        self.server = server
        self.hereLimitSeconds = hereLimitSeconds
        self.maxBatch = max(1, maxBatch)
        self.observe = observe
        threadCount = max(0, threads)
        exited = DispatchSemaphore(value: 0)
        for i in 0..<threadCount {
            let t = Thread { [unowned self] in
                self.loop()
                self.exited.signal()
            }
            t.name = "\(name)-\(i)"
            t.stackSize = 4 << 20
            running.append(t)
        }
        for t in running { t.start() }
    }

    /// Jobs waiting for a runner.
    public var depth: Int {
        lock.lock()
        defer { lock.unlock() }
        return items.count - head
    }

    /// Queues `job`; `done` receives its outcome on a runner thread. After `close`, the job is
    /// still answered (run on the caller's thread).
    package func submit(_ job: ServeJob, done: @escaping Completion) {
        lock.lock()
        if closed || threadCount == 0 {
            lock.unlock()
            observe(1)
            done(server.run([job])[0])
            return
        }
        items.append(Item(job: job, done: done))
        lock.signal()
        lock.unlock()
    }

    /// Runs `job` on the caller's thread when it is an inference whose model ran recently within
    /// `hereLimitSeconds`, fewer than `threads` runs are under way and no job is waiting (so it
    /// overtakes nothing and misses no batch partner); nil otherwise (submit it). Saves the two
    /// thread hand-overs of `submit` for a short request that arrives at an idle server. A model's
    /// first run always goes through a runner (nothing is known about its time yet).
    package func runHereIfIdle(_ job: ServeJob) -> ServeOutcome? {
        guard case .infer(let infer) = job else { return nil }
        lock.lock()
        guard !closed, busy < threadCount, head == items.count,
              let recent = recentRunSeconds[infer.model], recent <= hereLimitSeconds else {
            lock.unlock()
            return nil
        }
        busy += 1
        lock.unlock()
        let (outcome, seconds) = timedRun([job])
        observe(1)
        finishRun(model: infer.model, seconds: seconds)
        return outcome[0]
    }

    /// The recent run time of the job a runner takes next, when one is queued, a runner is free to
    /// take it at once and its model has run before (seconds); nil otherwise. A runner that has
    /// just finished asks this to tell whether another answer follows shortly.
    package func nextRunSeconds() -> Double? {
        lock.lock()
        defer { lock.unlock() }
        guard head < items.count, busy < threadCount, case .infer(let next) = items[head].job else { return nil }
        return recentRunSeconds[next.model]
    }

    private func timedRun(_ jobs: [ServeJob]) -> ([ServeOutcome], Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let outcomes = server.run(jobs)
        return (outcomes, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// Frees a run's place; `model` and `seconds` (of one unbatched inference) update the model's
    /// recent run time.
    private func finishRun(model: Int?, seconds: Double) {
        lock.lock()
        busy -= 1
        if let model {
            recentRunSeconds[model] = recentRunSeconds[model].map { 0.75 * $0 + 0.25 * seconds } ?? seconds
        }
        if head < items.count { lock.signal() }
        lock.unlock()
    }

    /// Runs what is queued, then stops the runner threads and waits for them.
    public func close() {
        lock.lock()
        closed = true
        lock.broadcast()
        lock.unlock()
        for _ in 0..<threadCount { exited.wait() }
    }

    private func loop() {
        while true {
            lock.lock()
            // A run through `runHereIfIdle` holds a place too: wait for a free one.
            while (head == items.count || busy >= threadCount) && !(closed && head == items.count) { lock.wait() }
            if head == items.count {
                lock.unlock()
                return
            }
            busy += 1
            var batch = [items[head]]
            head += 1
            if maxBatch > 1, let signature = batch[0].job.batchSignature {
                while batch.count < maxBatch, head < items.count, items[head].job.batchSignature == signature {
                    batch.append(items[head])
                    head += 1
                }
            }
            if head > 256 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            lock.unlock()

            let (outcomes, seconds) = timedRun(batch.map(\.job))
            observe(batch.count)
            var model: Int? = nil
            if batch.count == 1, case .infer(let j) = batch[0].job { model = j.model }
            finishRun(model: model, seconds: seconds)
            for (item, outcome) in zip(batch, outcomes) { item.done(outcome) }
        }
    }
}
