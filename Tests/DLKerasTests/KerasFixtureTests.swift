import DLGraph
import DLKeras
import DLRuntime
import DLSafeTensors
import DLTensor
import DLTestSupport
import Testing

/// The committed Keras fixtures (scripts/fixtures/make_keras.py) run through the library and
/// agree with Keras's own outputs.
@Suite struct KerasFixtureTests {
    static let models = ["cnn", "functional", "separable", "bigru", "nested", "attention"]
    static let variants = ["h5", "tf.h5", "keras"]

    /// Inputs and Keras's outputs of a fixture.
    /// `tfKeras` picks tf_keras's outputs (they differ where Keras 3 changed an activation).
    static func io(_ model: String, tfKeras: Bool = false) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let f = try SafeTensorsFile(path: TestPackage.fixture("keras/\(model).io.safetensors"))
        var ins: [String: Tensor] = [:], outs: [String: Tensor] = [:]
        let prefix = tfKeras ? "tf_output:" : "output:"
        for (name, t) in try f.tensors() {
            if name.hasPrefix("input:") { ins[String(name.dropFirst(6))] = t }
            if name.hasPrefix(prefix) { outs[String(name.dropFirst(prefix.count))] = t }
        }
        return (ins, outs)
    }

    /// The largest relative difference of the graph's outputs from Keras's.
    static func maxDifference(_ graph: Graph, _ model: String, tfKeras: Bool = false) throws -> Double {
        let (ins, expected) = try io(model, tfKeras: tfKeras)
        let ex = try Executor(graph: graph)
        let got = try ex.run(ins)
        var worst = 0.0
        for (name, want) in expected {
            guard let g = got[name] else { Issue.record("\(model): output \(name) missing; have \(got.keys.sorted())"); return .infinity }
            #expect(g.shape == want.shape, "\(model) \(name)")
            let a = g.doubles(), b = want.doubles()
            #expect(allClose(a, b, rtol: 1e-5, atol: 1e-6), "\(model) \(name): \(a.prefix(6)) vs \(b.prefix(6))")
            worst = max(worst, maxRelativeError(a, b))
        }
        return worst
    }

    @Test(arguments: models)
    func fullModelsMatchKeras(model: String) throws {
        for v in Self.variants {
            let file = try KerasFile(path: TestPackage.fixture("keras/\(model).\(v)"))
            let g = try KerasImporter.graph(from: file)
            let d = try Self.maxDifference(g, model, tfKeras: v == "tf.h5")
            print("keras-fixture \(model).\(v): max relative difference \(d)")
        }
    }

    /// The 3-D zoo (GroupNormalization, Normalization, Conv3D, ...). Its tf_keras file serialises
    /// the Lambda as Python bytecode, which is refused by name while the other layers are fine.
    @Test func volumeZooMatchesKerasAndRefusesBytecodeLambda() throws {
        let g = try KerasImporter.graph(from: try KerasFile(path: TestPackage.fixture("keras/zoo_volume.keras")))
        let d = try Self.maxDifference(g, "zoo_volume")
        print("keras-fixture zoo_volume.keras: max relative difference \(d)")
        do {
            _ = try KerasImporter.graph(from: try KerasFile(path: TestPackage.fixture("keras/zoo_volume.tf.h5")))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "\(TestPackage.fixture("keras/zoo_volume.tf.h5")): unsupported Keras layer: Lambda 'lam' (only a Lambda whose function is a known activation is supported)")
        }
    }

    /// More layers: each zoo model in Keras 3's .keras and tf_keras's legacy .h5.
    @Test(arguments: ["zoo_sequence", "zoo_image", "zoo_merge", "zoo_resize"])
    func layerZoosMatchKeras(model: String) throws {
        for v in ["keras", "tf.h5"] {
            let file = try KerasFile(path: TestPackage.fixture("keras/\(model).\(v)"))
            let g = try KerasImporter.graph(from: file)
            let d = try Self.maxDifference(g, model, tfKeras: v == "tf.h5")
            print("keras-fixture \(model).\(v): max relative difference \(d)")
        }
    }

    @Test(arguments: models)
    func weightsOnlyFilesBindToTheConfig(model: String) throws {
        let config = try KerasFile(path: TestPackage.fixture("keras/\(model).h5"))
        for v in ["weights.h5", "tfweights.h5"] {
            let w = try KerasFile(path: TestPackage.fixture("keras/\(model).\(v)"))
            #expect(w.config == nil)
            let g = try KerasImporter.graph(from: config, weights: w)
            let d = try Self.maxDifference(g, model)
            print("keras-fixture \(model).\(v): max relative difference \(d)")
        }
    }
}

/// Attribute quirks of older writers and bfloat16 variables.
@Suite struct KerasQuirkTests {
    @Test func legacyAttributeQuirks() throws {
        let file = try KerasFile(path: TestPackage.fixture("keras/cnn.quirks.h5"))
        #expect(file.layers.map(\.name) == ["image", "conv_a", "bn", "pool", "conv_b", "avg", "flat", "drop", "probs"])
        let g = try KerasImporter.graph(from: file)
        let d = try KerasFixtureTests.maxDifference(g, "cnn", tfKeras: true)
        #expect(d < 1e-5)
    }

    /// Adam's variables in a Keras 3 file of a trained model, in numeric order with their values;
    /// the model itself builds as before.
    @Test func optimizerVariablesOfATrainedModel() throws {
        let io = try SafeTensorsFile(path: TestPackage.fixture("keras/optimizer.io.safetensors"))
        for v in ["weights.h5", "keras"] {
            let f = try KerasFile(path: TestPackage.fixture("keras/optimizer.\(v)"))
            let opt = try #require(f.optimizer, "\(v)")
            #expect(opt.name == "adam")
            #expect(opt.variables.map(\.name) == (0..<6).map { "optimizer/vars/\($0)" })
            #expect(opt.variables.map(\.tensor.shape) == [[], [], [3, 2], [3, 2], [2], [2]])
            for (i, w) in opt.variables.enumerated() {
                #expect(w.tensor.bitwiseEqual(try io.tensor(named: "optimizer:\(i)")), "\(v) \(i)")
            }
            #expect(opt.variables[0].tensor.scalars(as: Int64.self) == [1])
            #expect(f.layers.map(\.name).contains("d"))
        }
        _ = try KerasImporter.graph(from: try KerasFile(path: TestPackage.fixture("keras/optimizer.keras")))
        #expect(try KerasFile(path: TestPackage.fixture("keras/cnn.weights.h5")).optimizer == nil)
    }

    @Test func bfloat16VariablesReadAsBfloat16() throws {
        let w = try KerasFile(path: TestPackage.fixture("keras/bf16.weights.h5"))
        let io = try SafeTensorsFile(path: TestPackage.fixture("keras/bf16.io.safetensors"))
        let stored = try #require(w.layers.first(where: { $0.name == "d" }))
        #expect(stored.weights.map(\.tensor.dtype) == [.bfloat16, .bfloat16])
        #expect(stored.weights[0].tensor.converted(to: .float32).scalars(as: Float.self) == (try io.tensor(named: "weight:kernel")).scalars(as: Float.self))
        #expect(stored.weights[1].tensor.converted(to: .float32).scalars(as: Float.self) == (try io.tensor(named: "weight:bias")).scalars(as: Float.self))
        // The .keras archive of the same model builds a float32 graph from them.
        let g = try KerasImporter.graph(from: try KerasFile(path: TestPackage.fixture("keras/bf16.keras")))
        let out = try Executor(graph: g).run(["x": Tensor(shape: [1, 4], scalars: [Float](repeating: 1, count: 4))])
        let kernel = (try io.tensor(named: "weight:kernel")).scalars(as: Float.self), bias = (try io.tensor(named: "weight:bias")).scalars(as: Float.self)
        let want = (0..<3).map { j in Double((0..<4).reduce(Float(0)) { $0 + kernel[$1 * 3 + j] } + bias[j]) }
        #expect(allClose(try #require(out["d"]).doubles(), want, rtol: 1e-5))
    }
}
