import DLKernels
import Testing

/// Elements as bytes of width `width`: element `i` is the bytes `i*width ..< (i+1)*width`,
/// numbered so that every byte is distinct enough to catch a misplaced element.
func patternedElements(_ count: Int, width: Int) -> [UInt8] {
    (0..<(count * width)).map { UInt8(truncatingIfNeeded: ($0 / width) &* 31 &+ ($0 % width) &* 7 &+ 1) }
}

func referenceTranspose(_ x: [UInt8], shape: [Int], permutation: [Int], width: Int) -> [UInt8] {
    let outShape = permutation.map { shape[$0] }
    var y = [UInt8](repeating: 0, count: x.count)
    for flat in 0..<product(outShape) {
        let outIdx = unravel(flat, outShape)
        var inIdx = [Int](repeating: 0, count: shape.count)
        for d in permutation.indices { inIdx[permutation[d]] = outIdx[d] }
        let src = ravel(inIdx, shape)
        for b in 0..<width { y[flat * width + b] = x[src * width + b] }
    }
    return y
}

struct TransposeCase: Sendable, CustomTestStringConvertible {
    var shape: [Int], permutation: [Int]
    var testDescription: String { "\(shape) by \(permutation)" }
}

func allPermutations(_ n: Int) -> [[Int]] {
    if n == 0 { return [[]] }
    return allPermutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
}

@Suite struct LayoutTests {
    static let transposeCases: [TransposeCase] =
        [TransposeCase(shape: [3, 5], permutation: [1, 0]),
         TransposeCase(shape: [37, 41], permutation: [1, 0]),
         TransposeCase(shape: [64, 3], permutation: [1, 0]),
         TransposeCase(shape: [7], permutation: [0]),
         TransposeCase(shape: [], permutation: []),
         TransposeCase(shape: [2, 3, 4, 5], permutation: [0, 2, 3, 1]),
         TransposeCase(shape: [2, 3, 4, 5], permutation: [0, 3, 1, 2]),
         TransposeCase(shape: [2, 33, 35], permutation: [0, 2, 1]),
         TransposeCase(shape: [2, 4, 64, 32], permutation: [0, 1, 3, 2]),  // attention's Kᵀ (16 × 16 blocks)
         TransposeCase(shape: [2, 1, 3, 1, 4], permutation: [4, 1, 0, 3, 2]),
         TransposeCase(shape: [1, 6, 1], permutation: [2, 1, 0]),
         TransposeCase(shape: [3, 0, 2], permutation: [2, 0, 1]),
         TransposeCase(shape: [2, 3, 2, 3, 2], permutation: [3, 1, 4, 0, 2])]
        + allPermutations(3).map { TransposeCase(shape: [2, 3, 4], permutation: $0) }

    @Test(arguments: transposeCases, [1, 2, 4, 8])
    func transposeMatchesIndexPermutation(_ c: TransposeCase, width: Int) {
        let count = product(c.shape)
        let x = patternedElements(count, width: width)
        let expected = referenceTranspose(x, shape: c.shape, permutation: c.permutation, width: width)
        var y = [UInt8](repeating: 0xEE, count: x.count)
        x.withUnsafeBytes { xb in
            y.withUnsafeMutableBytes { yb in
                Layout.transpose(xb.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, yb.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!,
                                 shape: c.shape, permutation: c.permutation, elementWidth: width)
            }
        }
        #expect(y == expected)
    }

    static let concatCases: [([[Int]], Int)] = [
        ([[2, 3, 4], [2, 1, 4], [2, 5, 4]], 1),
        ([[2, 3, 4], [1, 3, 4]], 0),
        ([[2, 3, 4], [2, 3, 1], [2, 3, 7]], 2),
        ([[5], [0], [3]], 0),
        ([[3, 2]], 1),
    ]

    @Test(arguments: concatCases, [1, 2, 8])
    func concatThenSplitRoundTripsAndPlacesBlocks(_ c: ([[Int]], Int), width: Int) {
        let (shapes, axis) = c
        var outShape = shapes[0]
        outShape[axis] = shapes.reduce(0) { $0 + $1[axis] }
        let inputs = shapes.enumerated().map { k, s in
            patternedElements(product(s), width: width).map { $0 &+ UInt8(k * 100) }
        }
        // Reference: output element at index idx comes from the input whose axis range holds idx[axis].
        var expected = [UInt8](repeating: 0, count: product(outShape) * width)
        for flat in 0..<product(outShape) {
            var idx = unravel(flat, outShape)
            var k = 0
            while idx[axis] >= shapes[k][axis] {
                idx[axis] -= shapes[k][axis]
                k += 1
            }
            let src = ravel(idx, shapes[k])
            for b in 0..<width { expected[flat * width + b] = inputs[k][src * width + b] }
        }

        var y = [UInt8](repeating: 0xEE, count: expected.count)
        let pointers = inputs.map { UnsafeMutableRawPointer.allocate(byteCount: max(1, $0.count), alignment: 8) }
        defer { pointers.forEach { $0.deallocate() } }
        for (p, bytes) in zip(pointers, inputs) { p.copyMemory(from: bytes, byteCount: bytes.count) }
        y.withUnsafeMutableBytes { yb in
            Layout.concat(pointers.map { UnsafeRawPointer($0) }, shapes: shapes, axis: axis,
                          into: yb.baseAddress!, elementWidth: width)
        }
        #expect(y == expected)

        let outputs = inputs.map { UnsafeMutableRawPointer.allocate(byteCount: max(1, $0.count), alignment: 8) }
        defer { outputs.forEach { $0.deallocate() } }
        y.withUnsafeBytes { yb in
            Layout.split(yb.baseAddress!, shape: outShape, axis: axis, sizes: shapes.map { $0[axis] },
                         into: outputs, elementWidth: width)
        }
        for (p, bytes) in zip(outputs, inputs) {
            #expect(Array(UnsafeRawBufferPointer(start: p, count: bytes.count)) == bytes)
        }
    }

    @Test(arguments: [
        (TransposeCase(shape: [2, 3, 4], permutation: [0, 1, 2]), [24], [1]),
        (TransposeCase(shape: [2, 1, 3], permutation: [1, 0, 2]), [6], [1]),
        (TransposeCase(shape: [2, 3, 4, 5], permutation: [0, 2, 3, 1]), [2, 20, 3], [60, 1, 20]),
        (TransposeCase(shape: [2, 3, 4, 5], permutation: [2, 3, 0, 1]), [20, 6], [1, 20]),
        (TransposeCase(shape: [8, 5, 3], permutation: [0, 2, 1]), [8, 3, 5], [15, 1, 3]),
    ])
    func transposePlanMergesAxesThatStayAdjacent(_ c: TransposeCase, dims: [Int], strides: [Int]) {
        let plan = TransposePlan(shape: c.shape, permutation: c.permutation)
        #expect(plan.dims == dims)
        #expect(plan.inputStrides == strides)
        #expect(plan.count == product(c.shape))
    }

    @Test func concatOfReducedShapesInterleavesBlocksPerOuterIndex() {
        let a: [Int16] = [1, 2, 3, 4]          // [2, 1, 2]
        let b: [Int16] = [5, 6, 7, 8, 9, 10, 11, 12]  // [2, 2, 2]
        var y = [Int16](repeating: 0, count: 12)
        a.withUnsafeBytes { ab in
            b.withUnsafeBytes { bb in
                y.withUnsafeMutableBytes { yb in
                    Layout.concat([ab.baseAddress!, bb.baseAddress!], axisSizes: [1, 2], outer: 2, inner: 2,
                                  into: yb.baseAddress!, elementWidth: 2)
                }
            }
        }
        #expect(y == [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
    }
}

/// Transposes large enough to split their outermost dimension over two workers.
@Suite(.serialized) struct ParallelTransposeTests {
    @Test(arguments: [TransposeCase(shape: [64, 40, 33], permutation: [1, 0, 2]),
                      TransposeCase(shape: [8, 64, 4, 32], permutation: [2, 0, 1, 3]),
                      TransposeCase(shape: [1, 64, 32, 3, 128], permutation: [3, 1, 2, 0, 4])],
          [1, 2])
    func splitTransposeMatchesIndexPermutation(_ c: TransposeCase, workers: Int) {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        let x = patternedElements(product(c.shape), width: 4)
        let expected = referenceTranspose(x, shape: c.shape, permutation: c.permutation, width: 4)
        var y = [UInt8](repeating: 0xEE, count: x.count)
        x.withUnsafeBytes { xb in
            y.withUnsafeMutableBytes { yb in
                Layout.transpose(xb.baseAddress!, yb.baseAddress!, shape: c.shape, permutation: c.permutation, elementWidth: 4)
            }
        }
        #expect(y == expected)
    }

    /// Slice with steps: every position of a 3-D walk with a negative, a 2 and a 3 stride, in
    /// 2- and 8-byte elements, against the positions computed one by one.
    @Test func copyStridedTakesEveryPositionOfTheWalk() {
        let shape = [2, 3, 4], strides = [-60, 24, 3], offset = 77
        let input16 = (0..<200).map { UInt16($0) }, input64 = (0..<200).map { UInt64($0) * 1_000_003 }
        var want: [Int] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { want.append(offset + i * strides[0] + j * strides[1] + k * strides[2]) } } }
        var out16 = [UInt16](repeating: 0, count: 24), out64 = [UInt64](repeating: 0, count: 24)
        input16.withUnsafeBytes { src in
            out16.withUnsafeMutableBytes { Layout.copyStrided(src.baseAddress!, shape: shape, strides: strides, offset: offset, into: $0.baseAddress!, elementWidth: 2) }
        }
        input64.withUnsafeBytes { src in
            out64.withUnsafeMutableBytes { Layout.copyStrided(src.baseAddress!, shape: shape, strides: strides, offset: offset, into: $0.baseAddress!, elementWidth: 8) }
        }
        #expect(out16 == want.map { input16[$0] })
        #expect(out64 == want.map { input64[$0] })
    }
}
