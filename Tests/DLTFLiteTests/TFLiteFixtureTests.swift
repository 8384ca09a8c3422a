import DLGraph
import DLRuntime
import DLSafeTensors
import DLTensor
import DLTestSupport
import DLTFLite
import Testing

/// The fixtures of scripts/fixtures/make_tflite.py (TensorFlow 2.21's converter) run through the
/// library and agree with tf.lite.Interpreter's outputs saved beside them.
@Suite struct TFLiteFixtureTests {
    /// Inputs and the interpreter's outputs of a fixture, by signature name.
    static func io(_ stem: String) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let f = try SafeTensorsFile(path: TestPackage.fixture("tflite/\(stem).io.safetensors"))
        var ins: [String: Tensor] = [:], outs: [String: Tensor] = [:]
        for (name, t) in try f.tensors() {
            if name.hasPrefix("input:") { ins[String(name.dropFirst(6))] = t }
            if name.hasPrefix("output:") { outs[String(name.dropFirst(7))] = t }
        }
        return (ins, outs)
    }

    /// Runs a fixture; returns per output (ours, the interpreter's).
    static func run(_ stem: String) throws -> [(name: String, got: Tensor, want: Tensor)] {
        let model = try TFLiteModel(path: TestPackage.fixture("tflite/\(stem).tflite"))
        let graph = try TFLiteImporter.graph(from: model)
        let (ins, expected) = try io(stem)
        #expect(Set(graph.inputs.map(\.name)) == Set(ins.keys), "\(stem): inputs \(graph.inputs.map(\.name))")
        #expect(Set(graph.outputs.map(\.name)) == Set(expected.keys), "\(stem): outputs \(graph.outputs.map(\.name))")
        let got = try Executor(graph: graph).run(ins)
        var out: [(String, Tensor, Tensor)] = []
        for (name, want) in expected.sorted(by: { $0.key < $1.key }) {
            guard let g = got[name] else { Issue.record("\(stem): output \(name) missing"); continue }
            #expect(g.shape == want.shape && g.dtype == want.dtype, "\(stem) \(name): \(g.dtype)\(g.shape) vs \(want.dtype)\(want.shape)")
            out.append((name, g, want))
        }
        return out
    }

    static let floatModels = ["cnn.float", "mobilenet.float", "lstm.float", "lstm.noclip", "ops.float", "lstm.peephole", "lstm.cifg", "lstm.projection", "lstm.layernorm", "bilstm.float", "sparse.sparse", "masks.float", "mediapipe.float", "segment.float", "segment.fp16", "slices.float", "control.float", "cnn.fp16", "mobilenet.fp16", "lstm.fp16", "ops.fp16"]

    /// Float and float16-weight models: rtol 1e-4 against the interpreter's reference kernels.
    @Test(arguments: floatModels)
    func floatModelMatchesInterpreter(stem: String) throws {
        for (name, g, want) in try Self.run(stem) {
            let a = g.doubles(), b = want.doubles()
            #expect(allClose(a, b, rtol: 1e-4, atol: 1e-5), "\(stem) \(name): \(a.prefix(6)) vs \(b.prefix(6))")
            print("tflite-fixture \(stem) \(name): max relative difference \(maxRelativeError(a, b))")
        }
    }
}

extension TFLiteFixtureTests {
    /// Full-integer models: int8 in and out. CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD,
    /// SUB, MUL, 8-bit QUANTIZE and spatial MEAN follow TFLite's integer arithmetic (integer sums,
    /// fixed-point requantization with its double rounding), AVERAGE_POOL_2D rounds its integer
    /// mean half away from zero, TANH and LOGISTIC follow its lookup tables' float steps,
    /// HARD_SWISH and SOFTMAX its int16 and gemmlowp fixed point: cnn.int8, mobilenet.int8 and
    /// activations.int8 (every int8 value through each of the four, on two input scales) equal
    /// the interpreter's reference kernels exactly. Other ops compute in float between
    /// DequantizeLinear and QuantizeLinear, within a quantum (ops.int8: DIV, a 3-D MEAN).
    @Test(arguments: [("cnn.int8", 0.0), ("mobilenet.int8", 0.0), ("activations.int8", 0.0), ("ops.int8", 1.0)])
    func integerModelIsCloseToInterpreter(stem: String, quanta: Double) throws {
        for (name, g, want) in try Self.run(stem) {
            let a = g.doubles(), b = want.doubles()
            let worst = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
            let off = zip(a, b).filter { $0 != $1 }.count
            print("tflite-fixture \(stem) \(name): \(off) of \(a.count) values differ, by at most \(worst) quanta")
            #expect(worst <= quanta, "\(stem) \(name): \(a.prefix(8)) vs \(b.prefix(8))")
            if stem != "ops.int8" {
                #expect(a.indices.max { a[$0] < a[$1] } == b.indices.max { b[$0] < b[$1] }, "\(stem) \(name): argmax differs")
            }
        }
    }

    /// The 8-bit LOGISTIC, TANH and HARD_SWISH of activations.int8 (two of each) run as byte
    /// tables (`FuseQuantizedLookup` sees a function of one byte), and SOFTMAX gathers its exps
    /// from tables: none of their per-element integer steps is left. The outputs' bits are
    /// checked against the interpreter by `integerModelIsCloseToInterpreter`.
    @Test func integerActivationsRunAsTables() throws {
        let graph = try TFLiteImporter.graph(from: TFLiteModel(path: TestPackage.fixture("tflite/activations.int8.tflite")))
        let (opt, _) = try GraphOptimizer.optimizeStrict(graph, passes: GraphOptimizer.runtime)
        #expect(opt.nodes.filter { $0.opType == "LookupTable" }.count == 6)
        #expect(!opt.nodes.contains { ["Exp", "Tanh", "BitwiseAnd"].contains($0.opType) }, "\(Set(opt.nodes.map(\.opType)))")
    }

    /// Dynamic-range models: int8 weights, float activations. Hybrid CONV_2D, DEPTHWISE_CONV_2D
    /// and FULLY_CONNECTED (asymmetric inputs) quantize their input on the fly as the reference
    /// kernels do (one row: batch 1), sum in integers and scale back in float, so only float
    /// rounding order separates the two. Bar: within 1e-5 of the output's largest magnitude, and
    /// the same argmax. (Before, DLKit dequantized the weights and computed in float: 3% off.)
    @Test(arguments: ["cnn.dynamic", "mobilenet.dynamic", "lstm.dynamic", "ops.dynamic"])
    func dynamicRangeModelIsClose(stem: String) throws {
        for (name, g, want) in try Self.run(stem) {
            let a = g.doubles(), b = want.doubles()
            let scale = b.map { Swift.abs($0) }.max() ?? 0
            let worst = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
            print("tflite-fixture \(stem) \(name): max difference \(worst) (largest output \(scale))")
            #expect(worst <= 1e-5 * scale + 1e-7, "\(stem) \(name): \(a.prefix(6)) vs \(b.prefix(6))")
            if a.count > 1 {
                #expect(a.indices.max { a[$0] < a[$1] } == b.indices.max { b[$0] < b[$1] }, "\(stem) \(name): argmax differs")
            }
        }
    }
}

/// Constants the importer makes from shapes in the file are charged to its allocation budget:
/// a fuzzed LSTM (Fuzz/corpus/tflite/oom-lstm-zero-state-3gb) declares a batch and width whose
/// zero initial state is 3.6 GB; it is refused, naming the operator, not allocated.
@Suite struct TFLiteAllocationBudgetTests {
    @Test func zeroStatePastTheBudgetIsRefused() throws {
        let path = TestPackage.root.appendingPathComponent("Fuzz/corpus/tflite/oom-lstm-zero-state-3gb").path
        let model = try TFLiteModel(path: path)
        #expect {
            _ = try TFLiteImporter.graph(from: model, allocationBudget: 1 << 28)
        } throws: { error in
            "\(error)".contains("over the import's allocation budget") && "\(error)".contains("UNIDIRECTIONAL_SEQUENCE_LSTM")
        }
    }
}

