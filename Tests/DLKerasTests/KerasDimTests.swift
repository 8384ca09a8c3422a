import DLGraph
import DLKeras
import DLRuntime
import DLTensor
import DLTestSupport
import Testing

/// Keras's None dims become symbolic dims of the graph's inputs and outputs.
@Suite struct KerasDimTests {
    /// tempocnn's models (Keras 2.4) take (None, 40, None, 1): batch and a variable number of
    /// frames. Both were named "batch", so a request of 1 x 40 x 256 x 1 was refused ("dimension
    /// 'batch' is 1 in an earlier input but 256"). Only the first None is the batch.
    @Test func onlyTheFirstNoneIsTheBatch() throws {
        let config = try parseJSON("""
            {"class_name": "Sequential", "config": {"name": "frames", "layers": [
              {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 4, null, 1], "dtype": "float32", "name": "x"}},
              {"class_name": "Activation", "config": {"name": "act", "activation": "relu"}}]}}
            """)
        let g = try KerasImporter.graph(from: KerasFile(config: config, path: "frames.h5"))
        let input = try #require(g.inputs.first?.type?.dims)
        #expect(input == [Dim.symbolic("batch"), .fixed(4), .symbolic("x_dim2"), .fixed(1)])
        let output = try #require(g.outputs.first)
        #expect(output.type?.dims == [Dim.symbolic("batch"), .fixed(4), .symbolic("\(output.name)_dim2"), .fixed(1)])

        let xs = (0..<28).map { Float($0) - 10 }
        let got = try Executor(graph: g).run([g.inputs[0].name: Tensor(shape: [1, 4, 7, 1], scalars: xs)])
        let y = try #require(got[output.name])
        #expect(y.shape == [1, 4, 7, 1])
        #expect(y.doubles() == xs.map { Double(max($0, 0)) })
    }
}
