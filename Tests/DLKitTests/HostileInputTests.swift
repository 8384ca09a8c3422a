import DLCheckpoint
import DLKit
import DLServe
import DLKeras
import DLONNX
import DLOpenVINO
import DLSafeTensors
import DLSupport
import DLTestSupport
import DLTensorFlow
import DLTFLite
import DLTorch
import Foundation
import Testing

/// Opens `path` the way the reader `reader` is used by the tools, all the way to tensors (and to
/// an executor for graphs), and returns the error message; nil when the file was accepted.
func hostileOpen(_ path: String, reader: String) -> String? {
    do {
        switch reader {
        case "onnx":
            let g = try ONNXReader.read(path: path)
            _ = try Model(graph: g, name: "bad")
        case "safetensors":
            let f = try SafeTensorsFile(path: path)
            _ = try f.tensors()
        case "torch":
            let f = try TorchFile(path: path)
            _ = try f.outline()
            for (name, ref) in try f.tensorRefs() { _ = try f.tensor(ref, name: name) }
        case "ckpt":
            let c = try Checkpoint(contentsOf: path)
            _ = try Model(graph: c.graph, name: "bad")
        case "tflite":
            // 256 MiB for densified weights (the tools allow 16 GiB): the corpus holds a crafted
            // file whose sparse weights densify to 2 GB.
            let g = try TFLiteImporter.graph(from: try TFLiteModel(path: path), allocationBudget: 1 << 28)
            _ = try Model(graph: g, name: "bad")
        case "keras":
            let f = try KerasFile(path: path)
            for layer in f.layers { for (_, t) in layer.weights { t.withUnsafeBytes { b in _ = b.last } } }
            if f.config != nil { _ = try KerasImporter.graph(from: f) }
        case "openvino":
            let g = try OpenVINOReader.read(path: path)
            for (_, t) in g.initializers { t.withUnsafeBytes { b in _ = b.last } }
            _ = try Model(graph: g, name: "bad")
        case "tensorflow":
            // A checkpoint (.index with its shard beside it) or a SavedModel folder.
            if path.hasSuffix(".index") {
                _ = try TensorBundle(path: path).tensors()
            } else {
                _ = try Model(graph: try SavedModelReader.read(path: path), name: "bad")
            }
        case "hf-folder":
            _ = try HFFolder(path: path).graph()
        case "hf-tokenizer":
            _ = try HFTokenizer(path: path).encode("Hello world! Café 日本語 😀")
        default:
            return "no reader named \(reader)"
        }
    } catch {
        return "\(error)"
    }
    return nil
}

/// fixtures/bad (scripts/fixtures/make_bad.py): every malformed file is refused with its
/// expected one-line message.
@Suite struct BadFilesTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var file, reader, expected: String
        var pending: Bool
        var testDescription: String { file }
    }

    static let rows: [Row] = {
        let text = (try? String(contentsOfFile: TestPackage.fixture("bad/MANIFEST.tsv"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Row(file: f[0], reader: f.count > 1 ? f[1] : "", expected: f.count > 2 ? f[2] : "",
                       pending: f.count > 3 && f[3] == "pending")
        }
    }()

    @Test func theManifestListsTheCorpus() {
        #expect(Self.rows.count >= 60)
        #expect(Set(Self.rows.map(\.reader)).isSuperset(of: ["onnx", "safetensors", "torch", "ckpt", "keras", "tensorflow", "openvino"]))
        #expect(!Self.rows.contains { $0.pending })
    }

    @Test(arguments: rows.filter { !$0.pending })
    func isRefusedWithItsMessage(row: Row) {
        guard let message = hostileOpen(TestPackage.fixture("bad/\(row.file)"), reader: row.reader) else {
            Issue.record("\(row.file) was accepted")
            return
        }
        #expect(message.contains(row.expected), "\(row.file): \(message)")
        #expect(!message.contains("\n"), "\(row.file): the message is more than one line")
        // The message names the file (the readers prefix it); the budget check runs on the
        // graph, after reading, and names the value instead.
        // A checkpoint's shard errors name the shard beside the listed .index (same stem).
        let stem = row.file.hasSuffix(".index") ? String(row.file.dropLast(".index".count)) : row.file
        #expect(message.contains(stem) || row.expected.contains("budget"), "\(row.file): \(message)")
    }
}

/// The committed fuzz corpus (Fuzz/corpus/<target>: inputs that once crashed a reader or found
/// new code) replayed through the readers, so a fixed crash stays fixed without libFuzzer.
@Suite struct FuzzCorpusTests {
    static func files(_ target: String) -> [String] {
        let dir = TestPackage.root.appendingPathComponent("Fuzz/corpus/\(target)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { "\(target)/\($0)" }
    }

    @Test(arguments: files("onnx") + files("safetensors") + files("torch") + files("ckpt") + files("tflite"))
    func readerAnswersWithoutCrashing(entry: String) throws {
        let target = String(entry.split(separator: "/")[0])
        let source = TestPackage.root.appendingPathComponent("Fuzz/corpus/\(entry)").path
        // Readers look at the extension only for messages; copy so external data stays unfound.
        let tmp = TemporaryFolder()
        let path = tmp.file("input")
        try FileManager.default.copyItem(atPath: source, toPath: path)
        _ = hostileOpen(path, reader: target == "ckpt" ? "ckpt" : target)
    }

    /// fuzz-keras inputs: the first byte picks a file (even: .h5 / .keras bytes) or a bare
    /// model_config JSON (odd), as in Fuzz/Keras.
    @Test(arguments: files("keras"))
    func kerasReaderAnswersWithoutCrashing(entry: String) throws {
        let bytes = try [UInt8](Data(contentsOf: TestPackage.root.appendingPathComponent("Fuzz/corpus/\(entry)")))
        guard let first = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        if first & 1 == 0 {
            let tmp = TemporaryFolder()
            let path = tmp.file("input.h5")
            try Data(rest).write(to: URL(fileURLWithPath: path))
            _ = hostileOpen(path, reader: "keras")
        } else if let config = try? rest.withUnsafeBytes({ b throws(JSONSyntaxError) in try JSONParser.parse(b) }) {
            _ = try? KerasImporter.graph(from: KerasFile(config: config, path: entry))
        }
    }

    /// fuzz-openvino inputs: the IR XML, a NUL, then the .bin (as in Fuzz/OpenVINO).
    @Test(arguments: files("openvino"))
    func openVINOReaderAnswersWithoutCrashing(entry: String) throws {
        let bytes = try [UInt8](Data(contentsOf: TestPackage.root.appendingPathComponent("Fuzz/corpus/\(entry)")))
        let split = bytes.firstIndex(of: 0) ?? bytes.count
        let tmp = TemporaryFolder()
        try Data(bytes[..<split]).write(to: URL(fileURLWithPath: tmp.file("input.xml")))
        try Data(bytes[min(split + 1, bytes.count)...]).write(to: URL(fileURLWithPath: tmp.file("input.bin")))
        _ = hostileOpen(tmp.file("input.xml"), reader: "openvino")
    }

    @Test(arguments: files("serve"))
    func serverAnswersEveryRequestLine(entry: String) throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/serve/dtypes.onnx")))
        let server = try InferenceServer(models: [model], limits: ServeLimits(maxElements: 1 << 16))
        let bytes = try [UInt8](Data(contentsOf: TestPackage.root.appendingPathComponent("Fuzz/corpus/\(entry)")))
        let line = bytes.prefix { $0 != 0x0A }
        let answer = server.handle(line: String(decoding: line, as: UTF8.self))
        #expect(answer.hasPrefix("{"), "\(entry): \(answer)")
    }

    /// protobuf-c recursed without a limit: 200,000 levels of graph/node/attribute overflowed
    /// the stack. The reader now measures the nesting before protobuf-c sees the bytes.
    @Test func deeplyNestedMessagesAreRefusedBeforeProtobufC() {
        var prefixes: [[UInt8]] = []
        var length = 0
        func varint(_ n: Int) -> [UInt8] {
            var n = n, out: [UInt8] = []
            repeat { out.append(UInt8(n & 0x7F) | (n > 0x7F ? 0x80 : 0)); n >>= 7 } while n > 0
            return out
        }
        for _ in 0..<200_000 {
            for tag: UInt8 in [0x32, 0x2A, 0x0A] {
                let p = [tag] + varint(length)
                prefixes.append(p)
                length += p.count
            }
        }
        prefixes.append([0x3A] + varint(length))
        var bytes: [UInt8] = [0x08, 0x08]
        for p in prefixes.reversed() { bytes += p }
        do {
            _ = try bytes.withUnsafeBytes { b throws(ONNXError) in try ONNXReader.read(bytes: b, path: "deep.onnx", directory: "/nonexistent") }
            Issue.record("the deep model was accepted")
        } catch {
            #expect("\(error)".contains("nest more than"), "\(error)")
        }
    }
}

/// The allocation budget: a model whose run would hold too much is refused before running, at
/// load for shapes fixed in the file, per run for shapes that come with the inputs.
@Suite struct AllocationBudgetTests {
    /// y = Tile(x, repeats) with x of symbolic length n.
    func tileModel(repeats: Int64, budget: Int) throws -> Model {
        var g = Graph(name: "tile",
                      inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("n")]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(dtype: .float32, dims: nil))],
                      nodes: [Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"])],
                      initializers: NamedTensors([("r", Tensor(shape: [1], scalars: [repeats]))]))
        g.metadata.opsetImports = [("", 17)]
        return try Model(graph: g, name: "tile", allocationBudget: budget)
    }

    @Test func aRunOverTheBudgetIsRefusedBeforeRunning() throws {
        let model = try tileModel(repeats: 1 << 20, budget: 1 << 30)
        // 4 elements x 2^20 repeats x 4 bytes = 16 MiB: within 1 GiB, runs.
        let small = try model.run(["x": Tensor(shape: [4], scalars: [Float](repeating: 1, count: 4))])
        #expect(small["y"]?.shape == [4 << 20])
        // 1024 x 2^20 x 4 bytes = 4 GiB: refused, and nothing was allocated for it.
        do {
            _ = try model.run(["x": Tensor(shape: [1024], scalars: [Float](repeating: 1, count: 1024))])
            Issue.record("expected the budget to refuse the run")
        } catch {
            #expect("\(error)".contains("over the allocation budget of 1073741824 bytes"), "\(error)")
        }
    }

    @Test func peakCountsLiveValuesOnly() {
        // a -> Relu -> b -> Relu -> c: at most two of the [1000] float values are live at once.
        let t = TensorType(dtype: .float32, shape: [1000])
        let g = Graph(name: "chain", inputs: [ValueInfo(name: "a", type: t)], outputs: [ValueInfo(name: "c", type: t)],
                      nodes: [Node(name: "r1", opType: "Relu", inputs: ["a"], outputs: ["b"]),
                              Node(name: "r2", opType: "Relu", inputs: ["b"], outputs: ["c"])])
        #expect(g.peakAllocation()?.bytes == 8000)
    }
}
