import DLGraph
import DLKernels
import DLTensor
import Foundation
import Testing
@testable import DLRuntime

/// Configuration is a value per executor: two executors of one graph, in one process, run with
/// their own options, at the same time.
struct RuntimeOptionsTests {
    /// y = Relu(Conv(x, W) + x): a conv (packed on AVX-512 machines), then elementwise steps that
    /// may write in place.
    static func graph() -> Graph {
        var w = [Float](repeating: 0, count: 16 * 16 * 3 * 3)
        for i in w.indices { w[i] = Float((i * 37) % 23) / 23 - 0.5 }
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(16), .fixed(12), .fixed(12)]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"],
                                   attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
                              Node(name: "add", opType: "Add", inputs: ["c", "x"], outputs: ["s"]),
                              Node(name: "sig", opType: "Sigmoid", inputs: ["s"], outputs: ["t"]),
                              Node(name: "relu", opType: "Relu", inputs: ["t"], outputs: ["y"])],
                      initializers: NamedTensors([("w", Tensor(shape: [16, 16, 3, 3], scalars: w))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    static let input: [String: Tensor] = {
        let n = 2 * 16 * 12 * 12
        return ["x": Tensor(shape: [2, 16, 12, 12], scalars: (0..<n).map { Float(($0 * 29) % 31) / 31 - 0.5 })]
    }()

    @Test func twoExecutorsOfOneGraphRunWithTheirOwnOptions() throws {
        let fast = try Executor(graph: Self.graph(), options: RuntimeOptions(threads: 2))
        let plain = try Executor(graph: Self.graph(), options: RuntimeOptions(threads: 1, packing: false, avx512: false, inPlace: false))
        let unplanned = try Executor(graph: Self.graph(), options: RuntimeOptions(plans: false))
        let (a, ya) = try #require(try fast.planRunStats(Self.input))
        let (b, yb) = try #require(try plain.planRunStats(Self.input))
        #expect(try unplanned.planRunStats(Self.input) == nil)
        #expect(a.inPlaceSteps > 0)
        #expect(b.inPlaceSteps == 0)
        #expect(a.packedSteps == (CPUFeatures.avx512Present ? 1 : 0))
        #expect(b.packedSteps == 0)
        let want = try unplanned.run(Self.input)["y"]
        for y in [ya["y"], yb["y"]] {
            let have = try #require(y), ref = try #require(want)
            #expect(zip(have.doubles(), ref.doubles()).allSatisfy { abs($0 - $1) <= 1e-5 })
        }

        // Side by side on several threads: each executor keeps giving its own serial bits.
        @Sendable func bytes(_ e: Executor) throws -> [UInt8] {
            try #require(try e.run(Self.input)["y"]).withUnsafeBytes { Array($0) }
        }
        let serial = try [fast, plain].map(bytes)
        let executors = [fast, plain]
        let failures = NSLock()
        nonisolated(unsafe) var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let e = executors[i % 2]
            let ok = (try? bytes(e)) == serial[i % 2]
            if !ok { failures.lock(); mismatches += 1; failures.unlock() }
        }
        #expect(mismatches == 0)
    }

    @Test func theToolsEnvironmentMapsOntoOptions() {
        #expect(RuntimeOptions(environment: [:]) == .default)
        let o = RuntimeOptions(environment: ["DLKIT_NO_PLAN": "1", "DLKIT_NO_PASSES": "1", "DLKIT_PREPACK": "0",
                                             "DLKIT_WINOGRAD": "0", "DLKIT_AVX512": "0", "DLKIT_IN_PLACE": "0",
                                             "DLKIT_PLAN_DUMP": "1", "DLKIT_PASS_DUMP": "1", "DLKIT_GEMM_SPLIT_MIN": "0",
                                             "DLKIT_GEMM_CHUNKS": "3", "DLKIT_PACKED_MAX_ROWS": "64", "DLKIT_PACKED_SPLIT_MIN": "-1",
                                             "DLKIT_PACK_MAPPED_MIN_ROWS": "16"])
        #expect(!o.plans && !o.passes && !o.packing && !o.winograd && !o.avx512 && !o.inPlace)
        #expect(o.dumpPlans && o.dumpPasses)
        #expect(o.packMappedMinRows == 16)
        #expect(o.tuning == RuntimeOptions.Tuning(gemmSplitMin: 0, chunksPerWorker: 3, packedMaxRows: 64))
        #expect(RuntimeOptions(environment: ["DLKIT_PREPACK": "1", "DLKIT_AVX512": "1"]) == .default)
    }
}
