#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLKernels
import Testing

/// Softmax of each axis slice computed in Double; `log` selects log-softmax.
func referenceSoftmax(_ x: [Float], outer: Int, axisSize: Int, inner: Int, log logarithmic: Bool) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for o in 0..<outer {
        for i in 0..<inner {
            let index = { (a: Int) in (o * axisSize + a) * inner + i }
            let m = (0..<axisSize).map { Double(x[index($0)]) }.max()!
            let sum = (0..<axisSize).reduce(0.0) { $0 + exp(Double(x[index($1)]) - m) }
            for a in 0..<axisSize {
                let v = Double(x[index(a)]) - m
                y[index(a)] = logarithmic ? v - log(sum) : exp(v) / sum
            }
        }
    }
    return y
}

@Suite struct SoftmaxTests {
    static let shapes: [[Int]] = [
        [1, 10, 1], [3, 7, 1], [2, 33, 1], [2, 5, 3], [3, 4, 17], [2, 3, 300], [4, 1, 5], [1, 1, 1], [1, 1000, 1],
        // YOLOv8's distribution head: 16 bins down columns, enough of them to split over the workers.
        [2, 16, 4200],
    ]

    /// A NaN in a column makes that column NaN and leaves the others alone (softmax down columns).
    @Test func aNaNSpoilsOnlyItsColumn() {
        var x = randomFloats(3 * 20, seed: 51, in: -4...4)
        x[1 * 20 + 5] = .nan
        var y = [Float](repeating: 0, count: x.count)
        y.withUnsafeMutableBufferPointer { Softmax.softmax(x, $0.baseAddress!, outer: 1, axisSize: 3, inner: 20) }
        for a in 0..<3 {
            #expect(y[a * 20 + 5].isNaN)
            #expect(y[a * 20 + 4].isFinite && y[a * 20 + 6].isFinite)
        }
    }

    @Test(arguments: shapes, [false, true])
    func softmaxMatchesDoubleReferenceAlongTheAxis(_ s: [Int], log: Bool) {
        let (outer, axisSize, inner) = (s[0], s[1], s[2])
        let x = randomFloats(outer * axisSize * inner, seed: 50, in: -8...8)
        let expected = referenceSoftmax(x, outer: outer, axisSize: axisSize, inner: inner, log: log)
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { o in
            if log {
                Softmax.logSoftmax(x, o.baseAddress!, outer: outer, axisSize: axisSize, inner: inner)
            } else {
                Softmax.softmax(x, o.baseAddress!, outer: outer, axisSize: axisSize, inner: inner)
            }
        }
        expectClose(y, expected, absolute: log ? 1e-5 : 1e-6)

        var z = x
        z.withUnsafeMutableBufferPointer { o in
            let p = UnsafePointer(o.baseAddress!)
            if log {
                Softmax.logSoftmax(p, o.baseAddress!, outer: outer, axisSize: axisSize, inner: inner)
            } else {
                Softmax.softmax(p, o.baseAddress!, outer: outer, axisSize: axisSize, inner: inner)
            }
        }
        #expect(z == y, "in place gives the same result")
    }

    @Test(arguments: [1, 3])
    func softmaxOfLargeInputsDoesNotOverflow(inner: Int) {
        let row: [Float] = [1000, 999, -1000, 1000]
        let x = row.flatMap { [Float](repeating: $0, count: inner) }
        var y = [Float](repeating: .nan, count: x.count)
        var l = y
        y.withUnsafeMutableBufferPointer { Softmax.softmax(x, $0.baseAddress!, outer: 1, axisSize: 4, inner: inner) }
        l.withUnsafeMutableBufferPointer { Softmax.logSoftmax(x, $0.baseAddress!, outer: 1, axisSize: 4, inner: inner) }
        let expected = referenceSoftmax(x, outer: 1, axisSize: 4, inner: inner, log: false)
        let expectedLog = referenceSoftmax(x, outer: 1, axisSize: 4, inner: inner, log: true)
        expectClose(y, expected)
        expectClose(l, expectedLog)
    }
}
