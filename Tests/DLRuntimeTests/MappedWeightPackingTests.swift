import DLGraph
import DLKernels
import DLTensor
import DLTestSupport
import Foundation
import Testing
@testable import DLRuntime

/// Weights that are views into a memory-mapped file (a Hugging Face folder's safetensors) are
/// packed like any other by default (the same bits as the model from a file read into memory);
/// asked not to copy them for products of fewer rows than `RuntimeOptions.packMappedMinRows`,
/// the plan packs nothing and the weights stay mapped. The AVX-512 kernels read a row-major B where
/// it is for several rows (the packed weights' bits) and a transposed one for up to 4 rows (dot
/// products, to rounding); OpenBLAS takes the rest.
@Suite struct MappedWeightPackingTests {
    /// x [M, 24] -> Gemm (transB, bias) [M, 40] -> MatMul [M, 16] on two weights mapped from `file`.
    static func graph(mapped file: MappedFile) throws -> Graph {
        let w1 = try Tensor(dtype: .float32, shape: [40, 24], viewing: file, offset: 0)
        let w2 = try Tensor(dtype: .float32, shape: [40, 16], viewing: file, offset: 40 * 24 * 4)
        var g = Graph(name: "mapped", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("M"), .fixed(24)]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h"],
                                   attributes: [Attribute(name: "transB", value: .int(1))]),
                              Node(name: "proj", opType: "MatMul", inputs: ["h", "w2"], outputs: ["y"])],
                      initializers: NamedTensors([("w1", w1), ("w2", w2), ("b1", seededRandom([40], seed: 3))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    static func mappedWeights(_ tmp: TemporaryFolder) throws -> MappedFile {
        let floats = seededRandom([40 * 24 + 40 * 16], seed: 7).scalars(as: Float.self)
        let path = tmp.write(floats.withUnsafeBytes { Array($0) }, to: "weights.bin")
        return try MappedFile(path: path)
    }

    @Test func mappedWeightsArePackedOnlyForProductsOfManyRows() throws {
        let tmp = TemporaryFolder()
        let g = try Self.graph(mapped: Self.mappedWeights(tmp))
        #expect(g.initializers["w1"]?.isMapped == true && g.initializers["w2"]?.isMapped == true)
        var owned = g
        owned.initializers = NamedTensors(g.initializers.map { ($0.0, Tensor(shape: $0.1.shape, scalars: $0.1.scalars(as: Float.self))) })
        #expect(owned.initializers["w1"]?.isMapped == false)

        let byDefault = try Executor(graph: g)
        var none = RuntimeOptions()
        none.packMappedMinRows = Int.max
        let never = try Executor(graph: g, options: none)
        var some = RuntimeOptions()
        some.packMappedMinRows = 8
        let fromEightRows = try Executor(graph: g, options: some)
        let ownedWeights = try Executor(graph: owned)
        let unpacked = try Executor(graph: g, options: RuntimeOptions(packing: false))
        let avx = PackedMatrix.isSupported
        for rows in [1, 3, 8, 33] {
            let x = ["x": seededRandom([rows, 24], seed: 10 + rows)]
            let (d, yd) = try #require(try never.planRunStats(x))
            let (f, yf) = try #require(try byDefault.planRunStats(x))
            let (e, ye) = try #require(try fromEightRows.planRunStats(x))
            let (o, yo) = try #require(try ownedWeights.planRunStats(x))
            let (_, yu) = try #require(try unpacked.planRunStats(x))
            // Never packs no mapped weight at any of these sizes; owned weights are packed, and by
            // default mapped ones too, with the owned weights' bits.
            #expect(d.packedSteps == 0, "rows \(rows)")
            #expect(f.packedSteps == (avx ? 2 : 0), "rows \(rows)")
            #expect(try #require(yf["y"]).withUnsafeBytes { Array($0) } == (try #require(yo["y"])).withUnsafeBytes { Array($0) }, "rows \(rows)")
            #expect(e.packedSteps == (avx && rows >= 8 ? 2 : 0), "rows \(rows)")
            #expect(o.packedSteps == (avx ? 2 : 0), "rows \(rows)")
            // Unpacked, the mapped weights give packing off's bits without AVX-512; with it, every
            // path agrees to rounding (the Gemm's transposed B: dot products up to 4 rows, OpenBLAS
            // past; the MatMul's row-major B: in place, the packed bits, from 2 rows).
            let a = try #require(yd["y"]), u = try #require(yu["y"]), p = try #require(yo["y"]), b = try #require(ye["y"])
            if !avx { #expect(a.withUnsafeBytes { Array($0) } == u.withUnsafeBytes { Array($0) }, "rows \(rows)") }
            for y in [a, b, p] {
                #expect(zip(y.doubles(), u.doubles()).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "rows \(rows)")
            }
        }
        // Once packed (by a plan of 8 rows or more), the panels serve later plans of one row too.
        let (after, _) = try #require(try fromEightRows.planRunStats(["x": seededRandom([2, 24], seed: 99)]))
        #expect(after.packedSteps == (avx ? 2 : 0))
    }

    @Test func rowsOfAProductAreReadFromThePlansShapes() {
        let gemm = Node(opType: "Gemm", inputs: ["a", "b"], outputs: ["y"])
        let gemmT = Node(opType: "Gemm", inputs: ["a", "b"], outputs: ["y"], attributes: [Attribute(name: "transA", value: .int(1))])
        let matmul = Node(opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])
        #expect(WeightPacks.rows(gemm, inputs: [[5, 7], [7, 3]]) == 5)
        #expect(WeightPacks.rows(gemmT, inputs: [[7, 5], [7, 3]]) == 5)
        #expect(WeightPacks.rows(matmul, inputs: [[2, 6, 7], [7, 3]]) == 12)
        #expect(WeightPacks.rows(matmul, inputs: [nil, [7, 3]]) == nil)
        #expect(WeightPacks.rows(matmul, inputs: []) == nil)
    }
}
