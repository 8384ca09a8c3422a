import DLKit
import DLServe
import DLSupport
import Foundation
import Testing

/// `RunQueue.runHereIfIdle` (the HTTP server's way around two thread hand-overs) next to `submit`.
struct RunQueueTests {
    func job(_ value: Float, id: Int) -> ServeJob {
        let x = (0..<24).map { _ in JSON.float(value).serialized() }.joined(separator: ",")
        var line = Array(#"{"id":"\#(id)","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[\#(x)]}]}"#.utf8)
        line.append(0)  // the decoder may look one byte past the line
        return line.withUnsafeBytes { opsServer.prepare(line: UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
    }

    func text(_ outcome: ServeOutcome) -> String {
        var out: [UInt8] = []
        opsServer.encode(outcome, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Submits `job` and waits for its answer.
    func submitted(_ queue: RunQueue, _ job: ServeJob) -> String {
        let answered = DispatchSemaphore(value: 0)
        let box = Box()
        queue.submit(job) { outcome in
            box.set(self.text(outcome))
            answered.signal()
        }
        answered.wait()
        return box.value
    }

    @Test func anIdleQueueRunsAKnownShortModelHereWithTheSameAnswerAsSubmit() throws {
        // An hour: every run of the small fixture counts as short.
        let queue = RunQueue(server: opsServer, threads: 1, maxBatch: 4, hereLimitSeconds: 3600)
        defer { queue.close() }
        #expect(queue.runHereIfIdle(job(0.5, id: 1)) == nil, "the model's first run goes to a runner (its time is unknown)")
        let queued = submitted(queue, job(0.5, id: 1))
        let here = try #require(queue.runHereIfIdle(job(0.5, id: 1)))
        #expect(text(here) == queued)
        #expect(InferenceServer.errorMessage(here) == nil)
    }

    @Test func aModelSlowerThanTheLimitIsNotRunHere() {
        let queue = RunQueue(server: opsServer, threads: 1, maxBatch: 1, hereLimitSeconds: 0)
        defer { queue.close() }
        _ = submitted(queue, job(1, id: 1))
        #expect(queue.runHereIfIdle(job(1, id: 2)) == nil)
    }

    @Test func aClosedQueueRunsNothingHere() {
        let queue = RunQueue(server: opsServer, threads: 1, maxBatch: 1)
        queue.close()
        #expect(queue.runHereIfIdle(job(1, id: 1)) == nil)
    }

    @Test func aQueueWithoutRunnersRunsNothingHere() {
        // threads: 0 means `submit` runs on the caller; there is no runner place to take.
        let queue = RunQueue(server: opsServer, threads: 0, maxBatch: 1)
        #expect(queue.runHereIfIdle(job(1, id: 1)) == nil)
    }

    /// Callers on several threads, each running here when it may and queueing otherwise: every
    /// job is answered with its own result, and the runs observed add up to the jobs.
    @Test func jobsRunHereOrQueuedAreAllAnsweredOnce() {
        let observed = Box()
        let queue = RunQueue(server: opsServer, threads: 1, maxBatch: 1, hereLimitSeconds: 3600) { n in observed.add(n) }
        let jobs = 64
        let expected = (0..<jobs).map { text(opsServer.run([job(Float($0 % 5), id: $0)])[0]) }
        let answers = Box()
        let all = DispatchGroup()
        DispatchQueue.concurrentPerform(iterations: jobs) { i in
            let j = job(Float(i % 5), id: i)
            if let outcome = queue.runHereIfIdle(j) {
                answers.put(i, text(outcome))
                return
            }
            all.enter()
            queue.submit(j) { outcome in
                answers.put(i, self.text(outcome))
                all.leave()
            }
        }
        all.wait()
        queue.close()
        #expect(answers.values == Dictionary(uniqueKeysWithValues: expected.enumerated().map { ($0.offset, $0.element) }))
        #expect(observed.count == jobs)
    }
}

/// A value shared with callbacks on other threads.
private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var _value = ""
    private var _values: [Int: String] = [:]
    private var _count = 0

    func set(_ v: String) { lock.withLock { _value = v } }
    func put(_ i: Int, _ v: String) { lock.withLock { _values[i] = v } }
    func add(_ n: Int) { lock.withLock { _count += n } }
    var value: String { lock.withLock { _value } }
    var values: [Int: String] { lock.withLock { _values } }
    var count: Int { lock.withLock { _count } }
}
