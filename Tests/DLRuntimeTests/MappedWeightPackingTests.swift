import DLGraph
import DLKernels
import DLTensor
import DLTestSupport
import Foundation
import Testing
@testable import DLRuntime

/// Weights that are views into a memory-mapped file (a Hugging Face folder's safetensors) are
/// packed only for products of at least `RuntimeOptions.packMappedMinRows` rows; below that the
/// plan packs nothing, the weights stay mapped and the AVX-512 kernels read them in place, either
/// layout, with the bits the packed weights give (the same model from a file read into memory).
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
        let ownedUnpacked = try Executor(graph: owned, options: RuntimeOptions(packing: false))
        let avx = PackedMatrix.isSupported
        for rows in [1, 3, 8, 33] {
            let x = ["x": seededRandom([rows, 24], seed: 10 + rows)]
            let (d, yd) = try #require(try never.planRunStats(x))
            let (f, yf) = try #require(try byDefault.planRunStats(x))
            let (e, ye) = try #require(try fromEightRows.planRunStats(x))
            let (o, yo) = try #require(try ownedWeights.planRunStats(x))
            let (_, yu) = try #require(try unpacked.planRunStats(x))
            let (_, you) = try #require(try ownedUnpacked.planRunStats(x))
            // With packing off neither takes the packed kernels: mapped weights give the owned ones' bits there too.
            #expect(try #require(yu["y"]).withUnsafeBytes { Array($0) } == (try #require(you["y"])).withUnsafeBytes { Array($0) }, "rows \(rows)")
            // By default, as with never, no mapped weight is packed at any of these sizes; owned
            // weights are packed, and the mapped ones read in place give their bits.
            #expect(d.packedSteps == 0, "rows \(rows)")
            #expect(f.packedSteps == 0, "rows \(rows)")
            #expect(try #require(yf["y"]).withUnsafeBytes { Array($0) } == (try #require(yo["y"])).withUnsafeBytes { Array($0) }, "rows \(rows)")
            #expect(e.packedSteps == (avx && rows >= 8 ? 2 : 0), "rows \(rows)")
            #expect(o.packedSteps == (avx ? 2 : 0), "rows \(rows)")
            // Unpacked, the mapped weights give packing off's bits without AVX-512; with it, the
            // packed weights' bits (read in place, the Gemm's transposed B a panel at a time), and
            // OpenBLAS's to rounding.
            let a = try #require(yd["y"]), u = try #require(yu["y"]), p = try #require(yo["y"]), b = try #require(ye["y"])
            #expect(a.withUnsafeBytes { Array($0) } == (avx ? p : u).withUnsafeBytes { Array($0) }, "rows \(rows)")
            #expect(b.withUnsafeBytes { Array($0) } == p.withUnsafeBytes { Array($0) }, "rows \(rows)")
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
