import DLGraph
import DLKeras
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Bad input gives one clear line, never a crash, and libhdf5 prints nothing of its own.
@Suite struct KerasErrorTests {
    /// The message of the error reading `path` (and building its graph), or nil when it succeeds.
    static func failure(_ path: String) -> String? {
        do {
            let f = try KerasFile(path: path)
            _ = try KerasImporter.graph(from: f)
            return nil
        } catch {
            return "\(error)"
        }
    }

    static func bytes(_ fixture: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: TestPackage.fixture(fixture)) ?? Data())
    }

    @Test func truncatedFilesFailCleanly() throws {
        let tmp = TemporaryFolder()
        let whole = Self.bytes("keras/cnn.h5")
        #expect(whole.count > 4096)
        for n in [0, 7, 8, 100, 2048, whole.count / 2, whole.count - 1000] {
            let p = tmp.write(Array(whole.prefix(n)), to: "cut\(n).h5")
            let m = Self.failure(p)
            #expect(m != nil, "truncated at \(n) bytes was accepted")
            #expect(m?.contains("cut\(n).h5") == true && m?.contains("\n") == false, "\(m ?? "")")
        }
    }

    @Test func corruptFilesFailCleanly() throws {
        let tmp = TemporaryFolder()
        let whole = Self.bytes("keras/functional.h5")
        var rejected = 0
        // Scribble over stretches of the file: every result is an error or a graph, never a crash.
        for (i, start) in stride(from: 512, to: whole.count - 64, by: max(1, whole.count / 24)).enumerated() {
            var b = whole
            for k in start..<min(start + 48, b.count) { b[k] = UInt8(truncatingIfNeeded: k &* 31 &+ 7) }
            let p = tmp.write(b, to: "bad\(i).h5")
            if let m = Self.failure(p) {
                rejected += 1
                #expect(!m.contains("\n"), "\(m)")
            }
        }
        #expect(rejected > 0)
    }

    @Test func hdf5ThatIsNotKeras() {
        let m = Self.failure(TestPackage.fixture("keras/not_keras.h5"))
        #expect(m?.contains("not a Keras file") == true, "\(m ?? "nil")")
    }

    @Test func unsupportedLayersAreListedTogether() {
        let m = Self.failure(TestPackage.fixture("keras/unsupported.h5")) ?? ""
        #expect(m.contains("UnitNormalization 'unit'"), "\(m)")
        #expect(m.contains("Attention 'attn'"), "\(m)")
    }

    @Test func unsupportedLayersInsideNestedModelsSayWhere() {
        let path = TestPackage.fixture("keras/unsupported_nested.keras")
        #expect(Self.failure(path) == "\(path): unsupported Keras layer: UnitNormalization 'unit' (in nested model 'inner')")
    }

    @Test func attentionWithACausalMaskIsRefused() {
        let path = TestPackage.fixture("keras/causal.keras")
        #expect(Self.failure(path) == "\(path): Keras model config: layer 'mha' (MultiHeadAttention): use_causal_mask is not supported")
    }

    @Test func weightShapesMustFitTheConfig() {
        let m = Self.failure(TestPackage.fixture("keras/bad_shape.h5")) ?? ""
        #expect(m.contains("probs") && m.contains("[7, 5]") && m.contains("[18, 5]"), "\(m)")
    }

    @Test func weightsOnlyFileNeedsAModel() throws {
        let f = try KerasFile(path: TestPackage.fixture("keras/cnn.weights.h5"))
        do {
            _ = try KerasImporter.graph(from: f)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("as the graph to bind them onto"))
        }
    }

    @Test func weightsOfAnotherModelAreRejected() throws {
        let config = try KerasFile(path: TestPackage.fixture("keras/cnn.h5"))
        let other = try KerasFile(path: TestPackage.fixture("keras/separable.weights.h5"))
        do {
            _ = try KerasImporter.graph(from: config, weights: other)
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("\n"))
        }
    }

    @Test func aZipThatIsNotKeras() throws {
        let tmp = TemporaryFolder()
        let p = tmp.write(Array("PK\u{3}\u{4}not really a zip".utf8), to: "x.keras")
        let m = Self.failure(p) ?? ""
        #expect(m.contains(".keras archive"), "\(m)")
    }

    /// libhdf5 would print its error stack to stderr; run a failing read in a child and look.
    @Test func libhdf5PrintsNothing() throws {
        let tmp = TemporaryFolder()
        let p = tmp.write(Array(Self.bytes("keras/cnn.h5").prefix(3000)), to: "cut.h5")
        let r = try runProcess(TestPackage.tool("dlconvert"), [p, tmp.file("out.onnx")])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("dlconvert: ") == true, "\(r.stderr)")
        #expect(!r.stderr.contains("HDF5-DIAG"))
        #expect(tmp.contents() == ["cut.h5"])
    }
}

/// Weights written by `KerasWriter` read back bit-identical in both layouts.
@Suite struct KerasWriterTests {
    @Test(arguments: ["cnn", "functional", "separable", "bigru", "attention"])
    func writtenWeightsReadBackExactly(model: String) throws {
        let tmp = TemporaryFolder()
        let source = try KerasFile(path: TestPackage.fixture("keras/\(model).keras"))
        let g = try KerasImporter.graph(from: source)
        for (name, layout) in [("w.weights.h5", KerasWriter.Layout.keras3), ("w.h5", .legacy)] {
            try KerasWriter.write(g, to: tmp.file(name), layout: layout)
            let back = try KerasFile(path: tmp.file(name))
            // Bound onto the same config, the written weights give the same initializers.
            let g2 = try KerasImporter.graph(from: source, weights: back)
            #expect(g2.initializers.names == g.initializers.names)
            for (n, t) in g.initializers { #expect(g2.initializers[n]?.bitwiseEqual(t) == true, "\(model) \(name) \(n)") }
            // MultiHeadAttention's projections are groups read in name order in Keras 3 files.
            if model == "attention" && layout == .legacy { continue }
            // Keras 3 files list layer groups in name order, legacy ones in model order: match by name.
            let a = Dictionary(source.layers.filter { !$0.weights.isEmpty }.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
            let b = Dictionary(back.layers.filter { !$0.weights.isEmpty }.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
            #expect(a.keys.sorted() == b.keys.sorted(), "\(name)")
            for (n, la) in a {
                guard let lb = b[n] else { continue }
                #expect(la.weights.count == lb.weights.count)
                for (wa, wb) in zip(la.weights, lb.weights) {
                    #expect(wa.tensor.bitwiseEqual(wb.tensor), "\(model) \(name) \(n) \(wa.name)")
                }
                // The groups we name are Keras's own.
                if layout == .keras3 { #expect(la.group == lb.group) }
            }
        }
    }

    /// Nested models: the weights written in either layout bind back onto the same config bit for
    /// bit; Keras 3 groups nest as Keras names them; the legacy entry of a nested model lists its
    /// trainable weights first, exactly as tf_keras wrote them.
    @Test func nestedModelWeightsRoundTrip() throws {
        let tmp = TemporaryFolder()
        let source = try KerasFile(path: TestPackage.fixture("keras/nested.keras"))
        let g = try KerasImporter.graph(from: source)
        func groups(_ ls: [KerasLayerWeights]) -> [String] {
            ls.flatMap { l in [l.group + " " + l.name + " \(l.weights.count)"] + groups(l.sublayers) }.sorted()
        }
        for (name, layout) in [("n.weights.h5", KerasWriter.Layout.keras3), ("n.h5", .legacy)] {
            try KerasWriter.write(g, to: tmp.file(name), layout: layout)
            let back = try KerasFile(path: tmp.file(name))
            let g2 = try KerasImporter.graph(from: source, weights: back)
            #expect(g2.initializers.names == g.initializers.names)
            for (n, t) in g.initializers {
                #expect(g2.initializers[n]?.bitwiseEqual(t) == true, "\(name) \(n)")
            }
            if layout == .keras3 {
                #expect(groups(back.layers).filter { !$0.contains("input_layer") } == groups(source.layers).filter { !$0.contains("input_layer") })
                #expect(groups(back.layers).contains("layers/sequential/layers/functional/layers/dense core_dense 2"))
            } else {
                let tf = try KerasFile(path: TestPackage.fixture("keras/nested.tf.h5"))
                for model in ["inner", "seq"] {
                    let want = tf.layers.first { $0.name == model }?.weights.map { String($0.name.dropLast(2)) }
                    #expect(back.layers.first { $0.name == model }?.weights.map(\.name) == want, "\(model)")
                }
                #expect(back.layers.map(\.name) == ["x", "inner", "seq", "add", "dense"])
            }
        }
    }

    @Test func aGraphNotFromKerasIsRefused() throws {
        let tmp = TemporaryFolder()
        let g = Graph(name: "plain", inputs: [], outputs: [], nodes: [])
        do {
            try KerasWriter.write(g, to: tmp.file("x.weights.h5"), layout: .keras3)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("did not come from Keras"))
        }
        #expect(tmp.contents().isEmpty)
    }
}
