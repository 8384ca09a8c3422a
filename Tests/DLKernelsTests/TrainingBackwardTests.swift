@testable import DLKernels
import Testing

/// The backward fast paths against the loops they stand for.
struct TrainingBackwardTests {
    /// Values with ties and NaNs: small integers, every ninth a NaN.
    static func values(_ n: Int, seed: Int) -> [Float] {
        (0..<n).map { i in (i * 7 + seed) % 9 == 0 ? .nan : Float((i * 5 + seed * 3) % 4) }
    }

    /// The fast loop on two workers (planes split between them when there are enough: the last
    /// case) against the window loop on one.
    @Test(arguments: [(3, 8, 8), (2, 7, 9), (1, 5, 4), (130, 16, 16)])
    func maxPool2x2BackwardMatchesTheWindowLoop(_ c: (Int, Int, Int)) {
        let (planes, inH, inW) = c
        let outH = inH / 2, outW = inW / 2
        let x = Self.values(planes * inH * inW, seed: inH), g = (0..<(planes * outH * outW)).map { Float($0 % 5) + 0.5 }
        var fast = [Float](repeating: 0, count: x.count), general = fast, generalSplit = fast
        ParallelFor.withWorkerCount(2) {
            TrainingBackward.maxPool2DBackward(x: x, gradient: g, into: &fast, planes: planes, inH: inH, inW: inW, outH: outH, outW: outW,
                                               kernelH: 2, kernelW: 2, strideH: 2, strideW: 2, padTop: 0, padLeft: 0,
                                               dilationH: 1, dilationW: 1)
            TrainingBackward.maxPool2DBackwardWindows(x: x, gradient: g, into: &generalSplit, planes: planes, inH: inH, inW: inW,
                                                      outH: outH, outW: outW, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2,
                                                      padTop: 0, padLeft: 0, dilationH: 1, dilationW: 1)
        }
        ParallelFor.withWorkerCount(1) {
            TrainingBackward.maxPool2DBackwardWindows(x: x, gradient: g, into: &general, planes: planes, inH: inH, inW: inW,
                                                      outH: outH, outW: outW, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2,
                                                      padTop: 0, padLeft: 0, dilationH: 1, dilationW: 1)
        }
        #expect(fast == general && generalSplit == general)
        #expect(fast.reduce(0, +) == g.reduce(0, +))
    }

    @Test func reluGradientPassesWhereTheInputIsPositive() {
        let x: [Float] = [1, -1, 0, .nan, 2, -0.0, 3, .infinity, -.infinity, 0.5, -2]  // a vector of 8 and a tail of 3
        let g = (0..<x.count).map { Float($0) + 1 }
        var out = [Float](repeating: .nan, count: x.count)
        TrainingBackward.reluGradient(x: x, gradient: g, into: &out, count: x.count)
        #expect(out == [1, 0, 0, 0, 5, 0, 7, 8, 0, 10, 0])
        // 3,000 runs of 16 and a tail of 5, split over two workers.
        let n = 48_005
        let xs = (0..<n).map { Float(($0 * 7) % 5) - 2 }, gs = (0..<n).map { Float($0) }
        var split = [Float](repeating: .nan, count: n)
        ParallelFor.withWorkerCount(2) { TrainingBackward.reluGradient(x: xs, gradient: gs, into: &split, count: n) }
        let wrong = zip(split, zip(xs, gs)).filter { $0 != ($1.0 > 0 ? $1.1 : 0) }.count
        #expect(wrong == 0, "\(wrong) of \(n) elements differ")
    }
}

/// The heap settings `dltrain` asks for are ones glibc takes (`mallopt` answers 1 for both).
struct HeapTests {
    @Test(.enabled(if: isGlibc)) func glibcKeepsFreedMemory() {
        #expect(Heap.keepFreedMemory())
    }
}

#if canImport(Glibc)
private let isGlibc = true
#else
private let isGlibc = false
#endif
