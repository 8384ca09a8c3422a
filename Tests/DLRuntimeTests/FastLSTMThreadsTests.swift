import DLGraph
import DLKernels
import DLRuntime
import DLTensor
import Testing

/// The float32 LSTM with its batch split over two workers (each runs the whole sequence for its
/// rows) against the general float64 kernel, with an odd batch so the slices differ in size.
@Suite(.serialized) struct FastLSTMThreadsTests {
    @Test(arguments: ["forward", "bidirectional"])
    func batchSplitOverWorkersMatchesTheGeneralKernel(direction: String) throws {
        let dirs = direction == "bidirectional" ? 2 : 1
        let (seq, batch, input, hidden) = (6, 11, 5, 12)
        let inputs = [seededRandom([seq, batch, input], seed: 31), seededRandom([dirs, 4 * hidden, input], seed: 32),
                      seededRandom([dirs, 4 * hidden, hidden], seed: 33), seededRandom([dirs, 8 * hidden], seed: 34),
                      seededRandom([dirs, batch, hidden], seed: 35), seededRandom([dirs, batch, hidden], seed: 36)]
        let names = ["X", "W", "R", "B", "", "h0", "c0"]
        func run(_ dtype: DType) throws -> [Tensor] {
            let present = names.filter { !$0.isEmpty }
            let ts = inputs.map { $0.converted(to: dtype) }
            let g = Graph(name: "lstm", inputs: zip(present, ts).map { ValueInfo(name: $0.0, type: TensorType(dtype: $0.1.dtype, shape: $0.1.shape)) },
                          outputs: ["Y", "Yh", "Yc"].map { ValueInfo(name: $0, type: nil) },
                          nodes: [Node(opType: "LSTM", inputs: names, outputs: ["Y", "Yh", "Yc"], attributes: [
                              Attribute(name: "hidden_size", value: .int(hidden)), Attribute(name: "direction", value: .string(direction))])])
            let out = try Executor(graph: g).run(Dictionary(uniqueKeysWithValues: zip(present, ts)))
            return try ["Y", "Yh", "Yc"].map { try #require(out[$0]) }
        }
        let split = try ParallelFor.withWorkerCount(2) { try run(.float32) }
        let single = try ParallelFor.withWorkerCount(1) { try run(.float32) }
        let general = try run(.float64)
        for (a, b) in zip(split, general) {
            #expect(a.shape == b.shape)
            #expect(zip(a.doubles(), b.doubles()).allSatisfy { abs($0 - $1) <= 1e-5 })
        }
        for (a, b) in zip(split, single) {
            #expect(zip(a.doubles(), b.doubles()).allSatisfy { abs($0 - $1) <= 1e-6 })
        }
        #expect(split[0].shape == [seq, dirs, batch, hidden])
    }
}
