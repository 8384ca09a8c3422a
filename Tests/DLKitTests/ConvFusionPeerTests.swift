import DLGraph
import DLKit
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// The conv fusions (BatchNorm folding, residual Add + Relu in the conv epilogue) against ONNX
/// Runtime on a small graph that has all of them and was not folded by an exporter.
@Suite(.enabled(if: TestPackage.hasPython, "needs .venv/bin/python with onnx and onnxruntime: run scripts/bootstrap"))
struct ConvFusionPeerTests {
    static let script = """
        import sys
        import numpy as np
        import onnx
        from onnx import helper, TensorProto, numpy_helper
        import onnxruntime as ort
        out = sys.argv[1]
        rng = np.random.default_rng(7)
        def init(name, *shape, positive=False):
            v = rng.standard_normal(shape).astype(np.float32)
            if positive: v = np.abs(v) + 0.5
            return numpy_helper.from_array(v, name)
        def bn(prefix, c):
            return [init(prefix + "s", c), init(prefix + "b", c), init(prefix + "m", c), init(prefix + "v", c, positive=True)]
        inits = [init("w1", 8, 3, 3, 3), init("b1", 8), *bn("n1", 8), init("w2", 8, 8, 3, 3), *bn("n2", 8),
                 init("w3", 16, 8, 3, 3), *bn("n3", 16), init("w4", 16, 8, 1, 1), init("b4", 16),
                 init("wg", 16, 5), init("cg", 5), *bn("ng", 5)]
        pads = [1, 1, 1, 1]
        nodes = [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=pads),
            helper.make_node("BatchNormalization", ["c1", "n1s", "n1b", "n1m", "n1v"], ["a1"], epsilon=1e-3),
            helper.make_node("Relu", ["a1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=pads),
            helper.make_node("BatchNormalization", ["c2", "n2s", "n2b", "n2m", "n2v"], ["a2"]),
            helper.make_node("Add", ["a2", "r1"], ["s2"]),
            helper.make_node("Relu", ["s2"], ["r2"]),
            helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=pads, strides=[2, 2]),
            helper.make_node("BatchNormalization", ["c3", "n3s", "n3b", "n3m", "n3v"], ["a3"]),
            helper.make_node("Conv", ["r2", "w4", "b4"], ["sc"], strides=[2, 2]),
            helper.make_node("Add", ["sc", "a3"], ["s3"]),
            helper.make_node("Relu", ["s3"], ["r3"]),
            helper.make_node("GlobalAveragePool", ["r3"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "wg", "cg"], ["g"], beta=0.5),
            helper.make_node("BatchNormalization", ["g", "ngs", "ngb", "ngm", "ngv"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "bnres", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
                                   helper.make_tensor_value_info("r2", TensorProto.FLOAT, ["N", 8, 9, 9])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, out + "/m.onnx")
        x = rng.standard_normal((3, 3, 9, 9)).astype(np.float32)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        y, r2 = ort.InferenceSession(out + "/m.onnx", opts, providers=["CPUExecutionProvider"]).run(["y", "r2"], {"x": x})
        x.tofile(out + "/x.bin"); y.tofile(out + "/y.bin"); r2.tofile(out + "/r2.bin")
        """

    func floats(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    @Test func foldedAndFusedGraphMatchesOnnxRuntime() throws {
        let dir = TemporaryFolder()
        let made = try runProcess(TestPackage.python, ["-c", Self.script, dir.path])
        try #require(made.status == 0, "\(made.stderr)")
        let model = try Model(contentsOf: dir.url("m.onnx"))

        // The passes fire on this graph: no BatchNormalization or Add is left.
        let (optimized, applied) = GraphOptimizer.optimize(model.graph)
        #expect(applied.contains(FoldBatchNorm.name) && applied.contains(FuseConvAdd.name))
        #expect(optimized.nodes.map(\.opType).sorted()
                == ["Conv", "Flatten", "FusedConv", "FusedConvAdd", "FusedConvAdd", "Gemm", "GlobalAveragePool"])

        let x = try floats(dir.file("x.bin"))
        let out = try model.run(["x": Tensor(shape: [3, 3, 9, 9], scalars: x)])
        let y = try #require(out["y"]).scalars(as: Float.self)
        let r2 = try #require(out["r2"]).scalars(as: Float.self)
        let wantY = try floats(dir.file("y.bin")), wantR2 = try floats(dir.file("r2.bin"))
        #expect(allClose(y.map(Double.init), wantY.map(Double.init), rtol: 1e-4, atol: 1e-4))
        #expect(allClose(r2.map(Double.init), wantR2.map(Double.init), rtol: 1e-4, atol: 1e-4))
    }
}
