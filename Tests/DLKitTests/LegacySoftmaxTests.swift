import DLKit
import DLONNX
import DLRuntime
import DLTestSupport
import Foundation
import Testing

/// Softmax, LogSoftmax and Hardmax before opset 13 flattened the input at `axis`; models of those
/// opsets are rewritten at import and must give the old results.
struct LegacySoftmaxTests {
    /// Writes a one-node opset-11 model, reads it back and runs it on x = [2, 3, 4] (0.0, 0.1, ...).
    func run(_ op: String, axis: Int?) throws -> (Graph, [Float]) {
        let folder = TemporaryFolder()
        let x = Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float($0) / 10 })
        var g = Graph(name: "legacy", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2, 3, 4]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(dtype: .float32, shape: [2, 3, 4]))],
                      nodes: [Node(name: "sm", opType: op, inputs: ["x"], outputs: ["y"],
                                   attributes: axis.map { [Attribute(name: "axis", value: .int($0))] } ?? [])],
                      initializers: NamedTensors())
        g.metadata.opsetImports = [(domain: "", version: 11)]
        let path = folder.path + "/legacy.onnx"
        try ONNXWriter.write(g, to: path)
        let read = try ONNXReader.read(path: path)
        let y = try #require(try Executor(graph: read).run(["x": x])["y"])
        #expect(y.shape == [2, 3, 4])
        return (read, y.scalars(as: Float.self))
    }

    @Test func softmaxWithTheDefaultAxisNormalisesEachFlattenedRow() throws {
        let (g, y) = try run("Softmax", axis: nil)
        #expect(g.opCounts["Flatten"] == 1 && g.opCounts["Reshape"] == 1)
        // numpy: softmax of x.reshape(2, 12) along 1, elements 0, 5, 12, 23.
        let expected: [(Int, Float)] = [(0, 0.04533001), (5, 0.07473654), (12, 0.04533001), (23, 0.13617887)]
        for (i, e) in expected { #expect(abs(y[i] - e) < 1e-6) }
        #expect(abs(y[0..<12].reduce(0, +) - 1) < 1e-5)
    }

    @Test func hardmaxFlattensFromAxisZero() throws {
        let (_, y) = try run("Hardmax", axis: 0)
        #expect(y.firstIndex(of: 1) == 23 && y.reduce(0, +) == 1)
    }

    @Test func logSoftmaxOnTheLastAxisNeedsNoRewrite() throws {
        let (g, y) = try run("LogSoftmax", axis: 2)
        #expect(g.opCounts == ["LogSoftmax": 1])
        let row = y[0..<4].map { exp($0) }.reduce(0, +)
        #expect(abs(row - 1) < 1e-5)
    }
}
