import Foundation

/// The run stage shared by the stdio pipeline and the HTTP server: a queue of prepared jobs and
/// `threads` runner threads. Each runner takes the job at the head of the queue plus, when
/// batching is on, the jobs queued right behind it with the same batch signature (up to
/// `maxBatch`), runs them with `InferenceServer.run`, and hands every outcome to the callback
/// given with its job, on the runner's thread. With `threads: 0` there are no runner threads and
/// `submit` runs each job at once on the caller's thread (for single-threaded harnesses: fuzzing).
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
    private var running: [Thread] = []
    private let exited: DispatchSemaphore
    private let threadCount: Int
    /// Called after each run with the number of jobs it took (1 unless batched).
    private let observe: @Sendable (_ batch: Int) -> Void

    public init(server: InferenceServer, threads: Int, maxBatch: Int, name: String = "dlserve-run",
                observe: @escaping @Sendable (_ batch: Int) -> Void = { _ in }) {
        self.server = server
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
            while head == items.count && !closed { lock.wait() }
            if head == items.count {
                lock.unlock()
                return
            }
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

            let outcomes = server.run(batch.map(\.job))
            observe(batch.count)
            for (item, outcome) in zip(batch, outcomes) { item.done(outcome) }
        }
    }
}
