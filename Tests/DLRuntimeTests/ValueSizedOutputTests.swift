import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Outputs whose size comes from input values (Range, ConstantOfShape) escape the plan's
/// allocation check; the run's `valueSizedOutputLimit` refuses them instead of allocating.
struct ValueSizedOutputTests {
    static func range() -> Graph {
        let scalar = TensorType(dtype: .int64, shape: [])
        return Graph(name: "r", inputs: ["start", "limit", "delta"].map { ValueInfo(name: $0, type: scalar) },
                     outputs: [ValueInfo(name: "y", type: TensorType(dtype: .int64, dims: [.symbolic("n")]))],
                     nodes: [Node(name: "range", opType: "Range", inputs: ["start", "limit", "delta"], outputs: ["y"])])
    }

    @Test func rangePastTheLimitFailsWithAnError() throws {
        var options = RuntimeOptions()
        options.valueSizedOutputLimit = 1 << 20
        let e = try Executor(graph: Self.range(), options: options)
        #expect(try e.run(["start": Tensor(scalar: Int64(0)), "limit": Tensor(scalar: Int64(1000)), "delta": Tensor(scalar: Int64(1))])["y"]?.shape == [1000])
        do {
            _ = try e.run(["start": Tensor(scalar: Int64(0)), "limit": Tensor(scalar: Int64(1 << 30)), "delta": Tensor(scalar: Int64(1))])
            Issue.record("a 2^30-element range ran under a 1 MiB limit")
        } catch {
            #expect("\(error)".contains("sized by input values, is over the limit of 1048576 bytes"), "\(error)")
        }
    }
}
