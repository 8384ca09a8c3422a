import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Kernels of the breadth families on small hand-checked cases; the ONNX node suite
/// (scripts/conformance) checks them at scale.
@Suite struct BreadthKernelTests {
    @Test func slice_withNegativeStepReversesAndClamps() throws {
        let x = f32([5], [0, 1, 2, 3, 4])
        let y = try runOne("Slice", [x, Tensor(shape: [1], scalars: [Int64(10)]), Tensor(shape: [1], scalars: [Int64(-10)]),
                                     Tensor(shape: [1], scalars: [Int64(0)]), Tensor(shape: [1], scalars: [Int64(-2)])])
        #expect(y.scalars(as: Float.self) == [4, 2, 0])
    }

    @Test func gather_rejectsIndicesOutOfRangeNamingTheNode() throws {
        let x = f32([3], [1, 2, 3])
        do {
            _ = try runOne("Gather", [x, Tensor(shape: [1], scalars: [Int64(3)])])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("out of range"))
        }
    }

    @Test func pad_reflectMirrorsWithoutRepeatingTheEdge() throws {
        let x = f32([3], [1, 2, 3])
        let y = try runOne("Pad", [x, Tensor(shape: [2], scalars: [Int64(2), Int64(2)])],
                           attributes: [Attribute(name: "mode", value: .string("reflect"))])
        #expect(y.scalars(as: Float.self) == [3, 2, 1, 2, 3, 2, 1])
    }

    @Test func reduceSum_overInt64KeepsExactValues() throws {
        let big = Int64(1) << 60
        let x = Tensor(shape: [2, 2], scalars: [big, 1, big, 2])
        let y = try runOne("ReduceSum", [x, Tensor(shape: [1], scalars: [Int64(0)])],
                           attributes: [Attribute(name: "keepdims", value: .int(0))])
        #expect(y.scalars(as: Int64.self) == [2 * big, 3])
    }

    @Test func topK_breaksTiesByLowerIndex() throws {
        let x = f32([4], [1, 3, 3, 2])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.fixed(4)]))],
                      outputs: [ValueInfo(name: "v", type: nil), ValueInfo(name: "i", type: nil)],
                      nodes: [Node(name: "t", opType: "TopK", inputs: ["x", "k"], outputs: ["v", "i"])],
                      initializers: NamedTensors([("k", Tensor(shape: [1], scalars: [Int64(2)]))]))
        let out = try Executor(graph: g).run(["x": x])
        #expect(out["v"]?.scalars(as: Float.self) == [3, 3])
        #expect(out["i"]?.scalars(as: Int64.self) == [1, 2])
    }

    @Test func cast_toFloat8Saturates() throws {
        let y = try runOne("Cast", [f32([2], [1000, -1000])], attributes: [Attribute(name: "to", value: .int(17))])
        #expect(y.dtype == .float8e4m3fn)
        #expect(y.doubles() == [448, -448])
    }
}
