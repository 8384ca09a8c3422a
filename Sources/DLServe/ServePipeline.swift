import DLKernels
import DLSupport
import Foundation

/// Runs an `InferenceServer`'s three stages concurrently and writes answers strictly in request
/// order.
///
/// ```
/// caller (reader) ── prepare ──> [jobs queue] ──> runner × threads ──> [finished, by number] ──> writer
///                    (parse)                      (run, dynamic batch)                         (encode, write)
/// ```
/// The caller's thread parses (`submit`), a `RunQueue` of `threads` runner threads runs models
/// (each takes the head of the queue plus, when batching, the compatible requests queued right
/// behind it), and one writer thread encodes answers in request order and writes them (each
/// answer line followed by its binary output data, if any), flushing whenever the next answer is
/// not ready yet. A streamed generation (`"stream": true`) hands the writer a line per new token
/// as it comes (`pieces`), written as soon as every earlier answer is out, then its final answer.
/// Memory stays bounded: `submit` blocks while `maxInFlight` requests or
/// `maxInFlightBytes` of request lines are between parsing and writing.
///
/// Hand-overs between threads cost microseconds each, which counts against a small model's run:
/// a runner wakes the writer once per group of short runs (`deliver`), and a request the client
/// waits for runs on the reader's thread when a runner is free (`submit(cost:inputIdle:_:)`).
public final class ServePipeline: @unchecked Sendable {
    public struct Options: Sendable {
        /// Runner threads (each runs one request or batch at a time, BLAS single-threaded).
        public var threads: Int
        /// Most requests run as one dynamic batch; 1 turns batching off.
        public var maxBatch: Int
        /// Most requests between parsing and writing.
        public var maxInFlight: Int
        /// Most request-line bytes between parsing and writing (one request is always admitted).
        public var maxInFlightBytes: Int

        public init(threads: Int = 1, maxBatch: Int = 1, maxInFlight: Int = 64, maxInFlightBytes: Int = 256 << 20) {
            self.threads = max(1, threads)
            self.maxBatch = max(1, maxBatch)
            self.maxInFlight = max(1, maxInFlight)
            self.maxInFlightBytes = max(1, maxInFlightBytes)
        }
    }

    /// Counts for the log at the end.
    public struct Counts: Sendable {
        public var requests = 0
        public var answered = 0
        public var batches = 0
        public var batchedRequests = 0
    }

    public let server: InferenceServer
    public let options: Options
    private let output: @Sendable (UnsafeRawBufferPointer) -> Bool
    private let log: @Sendable (String) -> Void

    // Admission (caller waits here), the job queue (runners), the finished answers (writer).
    private let flight = NSCondition()
    private var inFlight = 0
    private var inFlightBytes = 0

    private var runQueue: RunQueue!

    private let done = NSCondition()
    private var finished: [Int: (ServeOutcome, Int)] = [:]
    /// Token lines of streamed generations not yet written, by request number.
    private var pieces: [Int: [JSON]] = [:]
    private var total: Int? = nil
    private var outputBroken = false
    private var counts = Counts()
    private var nextSeq = 0
    /// Answers finished since the writer was last woken, and when the first of them finished.
    private var held = 0
    private var heldSince: UInt64 = 0

    private let writerExited = DispatchSemaphore(value: 0)

    /// - Parameter output: writes all of the given bytes to the answers' destination; false when
    ///   it is closed (the pipeline then stops writing and `finish` reports it).
    /// - Parameter log: receives one line per request answered with an error.
    public init(
        server: InferenceServer, options: Options,
        output: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.server = server
        self.options = options
        self.output = output
        self.log = log
        // Parallelism comes from the runner threads; one BLAS thread each keeps cores from being
        // oversubscribed.
        GEMM.setThreadCount(1)
        runQueue = RunQueue(server: server, threads: options.threads, maxBatch: options.maxBatch) { [unowned self] n in
            guard n > 1 else { return }
            done.lock()
            counts.batches += 1
            counts.batchedRequests += n
            done.unlock()
        }
        let w = Thread { [unowned self] in self.writerLoop() }
        w.name = "dlserve-write"
        w.stackSize = 4 << 20
        w.start()
    }

    /// Admits one request: waits for room, then calls `make` (the parse stage, on the caller's
    /// thread) and queues its job. `cost` is the request's line length. When `inputIdle` says no
    /// further request is waiting (the client waits for this answer), a short inference runs right
    /// here if a runner is free and nothing is queued (`RunQueue.runHereIfIdle`): no hand-over to a
    /// runner thread and back.
    /// - Returns: false when the output is closed (stop reading).
    @discardableResult
    package func submit(cost: Int, inputIdle: () -> Bool = { false }, _ make: () -> ServeJob) -> Bool {
        flight.lock()
        while inFlight >= options.maxInFlight || (inFlight > 0 && inFlightBytes + cost > options.maxInFlightBytes) {
            flight.wait()
        }
        inFlight += 1
        inFlightBytes += cost
        flight.unlock()

        var job = make()
        let seq = nextSeq
        nextSeq += 1
        if case .generate(var g) = job, g.streamAsked {
            g.stream = { [unowned self] piece in deliverPiece(seq: seq, piece) }
            job = .generate(g)
        }
        if inputIdle(), let outcome = runQueue.runHereIfIdle(job) {
            deliver(seq: seq, outcome, cost: cost)
        } else {
            runQueue.submit(job) { [unowned self] outcome in deliver(seq: seq, outcome, cost: cost) }
        }

        done.lock()
        let broken = outputBroken
        done.unlock()
        return !broken
    }

    /// Ends the input: waits until every submitted request is answered (or the output closed),
    /// then stops the threads.
    /// - Returns: the counts, and whether every answer was written.
    public func finish() -> (Counts, complete: Bool) {
        let submitted = nextSeq
        done.lock()
        total = submitted
        counts.requests = submitted
        done.broadcast()
        done.unlock()
        writerExited.wait()
        runQueue.close()
        done.lock()
        defer { done.unlock() }
        return (counts, !outputBroken)
    }

    /// Hands a finished answer to the writer (on a runner's thread). Waking the writer costs the
    /// runner a futex call and often a context switch, several microseconds against a small model's
    /// tens: while a short run follows at once, the answer is held for the writer's next wake-up,
    /// for at most `holdSeconds` since the oldest held answer and `holdCount` answers. The last answer
    /// before an idle queue, a long run or an unknown one always wakes the writer.
    private func deliver(seq: Int, _ outcome: ServeOutcome, cost: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        let next = runQueue.nextRunSeconds()
        done.lock()
        finished[seq] = (outcome, cost)
        if held == 0 { heldSince = now }
        held += 1
        let waited = Double(now &- heldSince) / 1e9
        if held >= Self.holdCount || next.map({ waited + $0 > Self.holdSeconds }) ?? true {
            held = 0
            done.broadcast()
        }
        done.unlock()
    }

    /// Hands the writer one token line of streamed generation `seq` (on a runner's thread).
    /// - Returns: false when the output is closed (stop generating).
    private func deliverPiece(seq: Int, _ piece: JSON) -> Bool {
        done.lock()
        defer { done.unlock() }
        guard !outputBroken else { return false }
        pieces[seq, default: []].append(piece)
        done.broadcast()
        return true
    }

    /// How long and how many answers `deliver` may hold back from the writer.
    static let holdSeconds = 0.0005
    static let holdCount = 16

    // MARK: - Writer

    private func writerLoop() {
        defer { writerExited.signal() }
        var next = 0
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        var ready: [(pieces: [JSON], outcome: ServeOutcome, cost: Int)] = []
        while true {
            done.lock()
            while finished[next] == nil && total != next && pieces[next] == nil {
                if !buffer.isEmpty {
                    // Nothing more to add right now: send what is encoded, then wait.
                    done.unlock()
                    if !flush(&buffer) { return }
                    done.lock()
                    continue
                }
                done.wait()
            }
            if finished[next] == nil, let lines = pieces.removeValue(forKey: next) {
                // Token lines of the generation being streamed: written (and flushed while
                // nothing else is ready) before its answer.
                done.unlock()
                for line in lines { server.encode(.answer(line), into: &buffer); buffer.append(UInt8(ascii: "\n")) }
                continue
            }
            if finished[next] == nil {  // total == next: everything is written
                done.unlock()
                _ = flush(&buffer)
                return
            }
            while let r = finished.removeValue(forKey: next) {
                ready.append((pieces.removeValue(forKey: next) ?? [], r.0, r.1))
                next += 1
            }
            done.unlock()

            var released = 0
            var releasedBytes = 0
            for (i, (lines, outcome, cost)) in ready.enumerated() {
                for line in lines { server.encode(.answer(line), into: &buffer); buffer.append(UInt8(ascii: "\n")) }
                if case .answer(let json) = outcome, case .string(let message)? = json["error"] {
                    log("request \(next - ready.count + i + 1) (id \((json["id"] ?? .null).serialized())): \(message)")
                }
                server.encode(outcome, into: &buffer)
                buffer.append(UInt8(ascii: "\n"))
                server.appendBinary(outcome, into: &buffer)
                released += 1
                releasedBytes += cost
                if buffer.count >= 1 << 16, !flush(&buffer) { return }
            }
            ready.removeAll(keepingCapacity: true)
            flight.lock()
            inFlight -= released
            inFlightBytes -= releasedBytes
            flight.broadcast()
            flight.unlock()
            done.lock()
            counts.answered += released
            done.unlock()
        }
    }

    /// Writes and empties `buffer`; on a closed output marks the pipeline broken and releases
    /// every waiting caller.
    private func flush(_ buffer: inout [UInt8]) -> Bool {
        guard !buffer.isEmpty else { return true }
        let ok = buffer.withUnsafeBytes { output($0) }
        if buffer.capacity > 4 << 20 {
            buffer = []  // one huge answer must not keep its memory
            buffer.reserveCapacity(1 << 16)
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
        if !ok {
            done.lock()
            outputBroken = true
            done.unlock()
            // Unblock the caller and let runners drain without anyone writing.
            flight.lock()
            inFlight = 0
            inFlightBytes = 0
            flight.broadcast()
            flight.unlock()
            drainAfterBreak()
        }
        return ok
    }

    /// After the output closed: keep taking finished answers (dropping them) until the input ends,
    /// so runners and the caller never block on a full pipeline.
    private func drainAfterBreak() {
        while true {
            done.lock()
            while finished.isEmpty && total == nil { done.wait() }
            finished.removeAll()
            pieces.removeAll()
            let end = total != nil
            done.unlock()
            flight.lock()
            inFlight = 0
            inFlightBytes = 0
            flight.broadcast()
            flight.unlock()
            if end { return }
        }
    }
}
