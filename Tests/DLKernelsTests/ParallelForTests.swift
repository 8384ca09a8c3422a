import Dispatch
import Testing
@testable import DLKernels

/// The persistent worker pool behind `ParallelFor`: every index once, nested and concurrent
/// callers served (inline when the pool is taken), counts changed back and forth.
@Suite(.serialized) struct ParallelForTests {
    /// Counts calls per index; chunks are disjoint, so plain writes from several threads are safe.
    final class Hits: @unchecked Sendable {
        let p: UnsafeMutablePointer<Int>
        let count: Int
        init(_ count: Int) {
            self.count = count
            p = .allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
        }
        deinit { p.deallocate() }
        var all: [Int] { Array(UnsafeBufferPointer(start: p, count: count)) }
    }

    @Test(arguments: [1, 2, 3, 4])
    func everyIndexRunsOnce(workers: Int) {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        for count in [0, 1, 2, 7, 100, 100_000] {
            for _ in 0..<20 {
                let hits = Hits(count)
                ParallelFor.split(count, parts: workers) { lo, hi in
                    for i in lo..<hi { hits.p[i] += 1 }
                }
                #expect(hits.all.allSatisfy { $0 == 1 }, "count \(count), workers \(workers)")
                let viaRun = Hits(count)
                ParallelFor.run(count, cost: 1 << 20) { lo, hi in
                    for i in lo..<hi { viaRun.p[i] += 1 }
                }
                #expect(viaRun.all.allSatisfy { $0 == 1 })
            }
        }
    }

    /// A split inside a split runs inline on whichever thread runs the outer chunk.
    @Test func nestedSplitsRunInline() {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(2)
        defer { ParallelFor.setWorkerCount(saved) }
        let hits = Hits(64 * 64)
        ParallelFor.split(64, parts: 2) { lo, hi in
            for row in lo..<hi {
                #expect(!ParallelFor.canSplit)
                ParallelFor.split(64, parts: 2) { a, b in
                    for j in a..<b { hits.p[row * 64 + j] += 1 }
                }
            }
        }
        #expect(hits.all.allSatisfy { $0 == 1 })
    }

    /// Several threads splitting at once: one gets the pool, the others run inline; all complete.
    @Test func concurrentCallersAllComplete() {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(2)
        defer { ParallelFor.setWorkerCount(saved) }
        let results = Hits(8)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            let hits = Hits(10_000)
            for _ in 0..<50 {
                ParallelFor.split(10_000, parts: 2) { lo, hi in
                    for i in lo..<hi { hits.p[i] += 1 }
                }
            }
            results.p[t] = hits.all.allSatisfy { $0 == 50 } ? 1 : 0
        }
        #expect(results.all == Array(repeating: 1, count: 8))
    }

    /// Jobs of alternating chunk counts back to back, with more workers than cores and no spin
    /// (workers sleep, wake late, and are preempted mid-claim): a worker that read the last
    /// claim of one job must not claim a chunk of the next one (it used to, when the next job had
    /// more chunks: that chunk ran twice and the job could end before it finished).
    @Test func lateWorkersNeverClaimTheNextJobsChunks() {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(4)
        ParallelFor.setSpin(microseconds: 0)
        defer {
            ParallelFor.setSpin(microseconds: 500)
            ParallelFor.setWorkerCount(saved)
        }
        let hits = Hits(80)
        var bad = 0
        for round in 1...60_000 {
            let parts = [1, 2, 4, 3][round % 4] + 1
            ParallelFor.split(parts * 16, parts: parts) { lo, hi in
                for i in lo..<hi { hits.p[i] += 1 }
            }
            for i in 0..<(parts * 16) where hits.p[i] != 1 { bad += 1 }
            for i in 0..<(parts * 16) { hits.p[i] = 0 }
        }
        #expect(bad == 0)
    }

    /// Growing and shrinking the pool repeatedly keeps splits correct (workers above the count
    /// sit out, none is started twice).
    @Test func resizingBackAndForth() {
        let saved = ParallelFor.workerCount
        defer { ParallelFor.setWorkerCount(saved) }
        for round in 0..<30 {
            let w = [1, 2, 3, 2, 1, 4][round % 6]
            ParallelFor.setWorkerCount(w)
            let hits = Hits(1000)
            ParallelFor.split(1000, parts: w) { lo, hi in
                for i in lo..<hi { hits.p[i] += 1 }
            }
            #expect(hits.all.allSatisfy { $0 == 1 })
        }
    }
}
