import DLKit
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// Hugging Face folders through the front ends: `dlconvert tokenize`, conversion of a folder to
/// .ckpt/.onnx, inspect, and `Model(contentsOf:)` on the folder itself.
@Suite struct HFCLITests {
    let dlconvert = TestPackage.tool("dlconvert")

    /// `dlconvert tokenize` prints the tokenizers library's ids for every line of the fixture cases.
    @Test(arguments: ["bert", "llama", "unigram"]) func tokenizePrintsTheLibrarysIds(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("hf/tokenizer_cases.json")))
        let all = try data.withUnsafeBytes { try JSONParser.parse($0) }
        let cases = (all[name]?.arrayValue ?? []).filter { $0["pair"] == nil && !($0["text"]?.stringValue ?? "").contains("\n") }
        #expect(cases.count > 20)
        let input = cases.map { $0["text"]?.stringValue ?? "" }.joined(separator: "\n") + "\n"
        let r = try runProcess(dlconvert, ["tokenize", TestPackage.fixture("hf/\(name)")], input: input)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == cases.count)
        for (line, c) in zip(lines, cases) {
            let got = try parseJSON(String(line))
            #expect(got["input_ids"] == c["input_ids"], "\(c["text"]?.stringValue ?? "")")
            #expect(got["attention_mask"] == c["attention_mask"], "\(c["text"]?.stringValue ?? "")")
        }
    }

    /// The folder runs as a Model, and through .ckpt and .onnx gives the same outputs.
    @Test(arguments: ["bert", "qwen2"]) func folderRunsAndConverts(_ name: String) throws {
        let folder = TestPackage.fixture("hf/\(name)")
        let model = try Model(contentsOf: URL(fileURLWithPath: folder))
        #expect(model.format == .huggingFace)
        let expected = try StateDict(contentsOf: URL(fileURLWithPath: folder + "/expected.safetensors"))
        var feeds: [String: Tensor] = [:]
        for i in model.inputs { feeds[i.name] = expected[i.name] }
        let direct = try model.run(feeds)
        let dir = TemporaryFolder()
        for (file, flags) in [("m.ckpt", []), ("m.onnx", ["--no-kv-cache"]), ("cache.onnx", [])] {
            let r = try runProcess(dlconvert, [folder, dir.file(file)] + flags)
            #expect(r.status == 0, "\(r.stderr)")
            let converted = try Model(contentsOf: dir.url(file))
            var withCache = feeds
            // A decoder's .onnx carries the KV cache by default: an empty one gives the same logits.
            for i in converted.inputs where i.name.hasPrefix("past_key_values.") {
                let d = i.type?.dims ?? []
                withCache[i.name] = Tensor(zeros: .float32, shape: [feeds["input_ids"]?.shape[0] ?? 1, d.count > 1 ? d[1].value ?? 0 : 0, 0, d.count > 3 ? d[3].value ?? 0 : 0])
            }
            #expect(converted.inputs.contains { $0.name.hasPrefix("past_key_values.") } == (file == "cache.onnx" && name == "qwen2"))
            // ... and position_ids after attention_mask (optimum's layout): 0, 1, ... as transformers' forward uses
            if let ids = feeds["input_ids"], converted.inputs.contains(where: { $0.name == "position_ids" }) {
                #expect(converted.inputs.map(\.name).prefix(3) == ["input_ids", "attention_mask", "position_ids"])
                withCache["position_ids"] = Tensor(shape: ids.shape, scalars: (0..<ids.shape[0]).flatMap { _ in (0..<ids.shape[1]).map(Int64.init) })
            }
            let again = try converted.run(withCache)
            for (k, t) in direct { #expect(again[k]?.doubles() == t.doubles(), "\(file) \(k)") }
        }
        let out = name == "bert" ? "last_hidden_state" : "logits"
        #expect(direct[out]?.shape == expected[out]?.shape)
        let inspect = try runProcess(dlconvert, ["inspect", folder])
        #expect(inspect.status == 0 && inspect.stdout.contains("format: hf-folder") && inspect.stdout.contains(out))
    }

    /// `dlconvert generate` (greedy over the KV cache) gives the tokens and text of transformers'
    /// `generate(do_sample=False)` (generate.json, scripts/fixtures/make_hf.py).
    @Test(arguments: ["gpt2", "llama", "qwen2"]) func generateMatchesTransformers(_ name: String) throws {
        let folder = TestPackage.fixture("hf/\(name)")
        let want = try parseJSON(try String(contentsOfFile: folder + "/generate.json", encoding: .utf8))
        let count = want["generated_ids"]?.arrayValue?.count ?? 0
        #expect(count > 0)
        let r = try runProcess(dlconvert, ["generate", folder, "--max-tokens", "\(count)"], input: (want["prompt"]?.stringValue ?? "") + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        let got = try parseJSON(r.stdout.trimmingCharacters(in: .newlines))
        #expect(got["token_ids"] == want["generated_ids"])
        #expect(got["text_output"] == want["text"])
        // The library: prompt ids in, the same ids out.
        let gen = try TextGenerator(folder: URL(fileURLWithPath: folder))
        let prompt = want["prompt_ids"]?.arrayValue?.compactMap(\.intValue) ?? []
        let greedy = want["generated_ids"]?.arrayValue?.compactMap(\.intValue)
        #expect(try gen.generate(ids: prompt, maxTokens: count) == greedy)
        // top_k 1 is greedy whatever the temperature; a seed repeats its draw, another seed differs somewhere.
        #expect(try gen.generate(ids: prompt, maxTokens: count, sampling: .init(temperature: 5, topK: 1, seed: 3)) == greedy)
        let hot = TextGenerator.Sampling(temperature: 2, topK: 50, topP: 0.95, seed: 7)
        let a = try gen.generate(ids: prompt, maxTokens: count, sampling: hot)
        #expect(try gen.generate(ids: prompt, maxTokens: count, sampling: hot) == a)
        var other = hot
        other.seed = 8
        #expect(try gen.generate(ids: prompt, maxTokens: count, sampling: other) != a)
    }

    /// `generate --stream`: one line per token as it comes, whose texts put together are the
    /// summary line's text_output (byte-level BPE splits characters across tokens), and the same
    /// tokens as without streaming.
    @Test(arguments: ["gpt2", "llama", "qwen2"]) func streamedPiecesMakeTheText(_ name: String) throws {
        let folder = TestPackage.fixture("hf/\(name)")
        let prompts = "Hello world\nCafé 日本語 😀\n"
        let plain = try runProcess(dlconvert, ["generate", folder, "--max-tokens", "12"], input: prompts)
        let r = try runProcess(dlconvert, ["generate", folder, "--max-tokens", "12", "--stream"], input: prompts)
        #expect(plain.status == 0 && r.status == 0, "\(plain.stderr) \(r.stderr)")
        var summaries: [String] = []
        var ids: [JSON] = [], text = ""
        for line in r.stdout.split(separator: "\n") {
            let j = try parseJSON(String(line))
            if j["text_output"] != nil {
                #expect(j["token_ids"] == .array(ids), "\(line)")
                #expect(j["text_output"] == .string(text), "\(line)")
                summaries.append(String(line))
                ids = []
                text = ""
            } else {
                if let id = j["token_id"] { ids.append(id) }
                text += j["text"]?.stringValue ?? ""
            }
        }
        #expect(summaries == plain.stdout.split(separator: "\n").map(String.init))
    }

    /// dlserve's stdio `generate` with `"stream": true`: a line per new token (HTTP generate_stream's
    /// event, with the id), written before the input ends, then the whole answer with `"final": true`,
    /// equal to the unstreamed answer; answers stay in request order with two runner threads.
    @Test(arguments: ["gpt2", "llama"]) func stdioStreamGivesALinePerTokenThenTheAnswer(_ name: String) throws {
        let p = try ServeProcess([TestPackage.fixture("hf/\(name)"), "--threads", "2"])
        let prompt = JSON.string("Café 日本語 😀 Hello world").serialized()
        let streamed = #"{"id":"s","method":"generate","text_input":\#(prompt),"parameters":{"max_tokens":12},"stream":true}"#
        p.send(streamed + "\n")
        var pieces: [JSON] = []
        var final: JSON?
        while final == nil, let line = p.readLine() {  // stdin is still open: the lines come without it ending
            let j = try parseJSON(line)
            if j["final"] == .bool(true) { final = j } else { pieces.append(j) }
        }
        p.send(#"{"id":"q","method":"generate","text_input":\#(prompt),"parameters":{"max_tokens":12},"stream":true}"# + "\n"
               + #"{"id":"p","method":"generate","text_input":\#(prompt),"parameters":{"max_tokens":12}}"# + "\n"
               + #"{"id":"e","method":"generate","text_input":"hi","stream":1}"# + "\n", close: true)
        let rest = try p.readAll().map(parseJSON)
        let (status, err) = p.wait()
        #expect(status == 0, "\(err)")
        let whole = try #require(final)
        let plain = try #require(rest.first { $0["id"] == .string("p") })
        #expect(whole["token_ids"] == plain["token_ids"] && whole["text_output"] == plain["text_output"] && plain["final"] == nil, "\(whole) \(plain)")
        #expect(pieces.count == whole["token_ids"]?.arrayValue?.count && !pieces.isEmpty, "\(pieces)")
        #expect(pieces.allSatisfy { $0["id"] == .string("s") && $0["model_name"] == .string(name) && $0["token_ids"]?.arrayValue?.count == 1 && $0["final"] == nil })
        #expect(.array(pieces.flatMap { $0["token_ids"]?.arrayValue ?? [] }) == whole["token_ids"])
        #expect(.string(pieces.map { $0["text_output"]?.stringValue ?? "" }.joined()) == whole["text_output"])
        // The second stream's lines, its final answer, then the later requests, in request order.
        #expect(rest.map { $0["id"]?.stringValue ?? "" } == Array(repeating: "q", count: pieces.count + 1) + ["p", "e"], "\(rest)")
        let second = rest.dropFirst(pieces.count).first
        #expect(second?["final"] == .bool(true) && second?["token_ids"] == whole["token_ids"] && second?["text_output"] == whole["text_output"])
        #expect(rest.last?["error"]?.stringValue?.contains("\"stream\"") == true, "\(rest)")
    }

    /// The fixed-capacity cache (grown 32 slots at a time) gives the tokens of the cache that
    /// grows by one slot per step, across growths and for a sampled run too (llama with 300
    /// positions and no eos).
    @Test func fixedCacheGivesTheGrowingCachesTokens() throws {
        let dir = TemporaryFolder()
        let source = TestPackage.fixture("hf/llama")
        for file in ["model.safetensors", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir.file(file))
        }
        let config = try String(contentsOfFile: source + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: #""max_position_embeddings": 64"#, with: #""max_position_embeddings": 300"#)
            .replacingOccurrences(of: #""eos_token_id": 2"#, with: #""eos_token_id": null"#)
        try config.write(toFile: dir.file("config.json"), atomically: true, encoding: .utf8)
        let fixed = try TextGenerator(folder: dir.url("")), growing = try TextGenerator(folder: dir.url(""), fixedCache: false)
        #expect(fixed.eos.isEmpty && fixed.maxPositions == 300)
        let prompt = Array(5..<15)
        for sampling in [TextGenerator.Sampling.greedy, .init(temperature: 0.9, topK: 40, seed: 11)] {
            let a = try fixed.generate(ids: prompt, maxTokens: 290, sampling: sampling)
            #expect(a.count == 290)
            #expect(a == (try growing.generate(ids: prompt, maxTokens: 290, sampling: sampling)))
        }
    }

    /// `TextGenerator.stream`: one piece per token, together the generated text; a reader that
    /// stops (returns false) ends generation at that token.
    @Test func streamStopsWhenTheReaderDoes() throws {
        let gen = try TextGenerator(folder: URL(fileURLWithPath: TestPackage.fixture("hf/llama")))
        var pieces: [(Int, String)] = []
        let whole = try gen.stream(text: "Café 日本語", maxTokens: 10) { pieces.append(($0, $1)); return true }
        #expect(whole == (try gen.generate(text: "Café 日本語", maxTokens: 10)))
        #expect(pieces.map(\.0) == whole.ids && pieces.map(\.1).joined() == whole.text)
        var seen = 0
        let stopped = try gen.stream(text: "Café 日本語", maxTokens: 10) { _, _ in seen += 1; return seen < 3 }
        #expect(seen == 3 && stopped.ids == Array(whole.ids.prefix(3)))
    }

    /// Folder -> .ckpt -> folder (`--format hf`): the carried files are byte-identical, the
    /// weights bit-identical, and the written folder runs as the original.
    @Test(arguments: ["bert", "roberta", "distilbert", "llama"]) func writesTheFolderBack(_ name: String) throws {
        let folder = TestPackage.fixture("hf/\(name)")
        let dir = TemporaryFolder()
        var r = try runProcess(dlconvert, [folder, dir.file("m.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, [dir.file("m.ckpt"), dir.file("out"), "--format", "hf"])
        #expect(r.status == 0, "\(r.stderr)")
        for file in ["config.json", "tokenizer.json", "generation_config.json"] where FileManager.default.fileExists(atPath: "\(folder)/\(file)") {
            #expect(FileManager.default.contents(atPath: "\(folder)/\(file)") == FileManager.default.contents(atPath: dir.file("out/\(file)")), "\(file)")
        }
        let original = try HFFolder(path: folder).weights.tensors, written = try HFFolder(path: dir.file("out")).weights.tensors
        #expect(Set(written.names) == Set(original.names))
        for (n, t) in original { #expect(written[n]?.bitwiseEqual(t) == true, "\(n)") }
        let a = try Model(contentsOf: URL(fileURLWithPath: folder)), b = try Model(contentsOf: dir.url("out"))
        let expected = try StateDict(contentsOf: URL(fileURLWithPath: folder + "/expected.safetensors"))
        var feeds: [String: Tensor] = [:]
        for i in a.inputs { feeds[i.name] = expected[i.name] }
        let ya = try a.run(feeds), yb = try b.run(feeds)
        for (k, t) in ya { #expect(yb[k]?.doubles() == t.doubles(), "\(k)") }
    }

    @Test func badFolderIsOneLineAndExitOne() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("bad/hf_config_rope_yarn"), dir.file("x.onnx")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("rope_type 'yarn'") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(dir.contents().isEmpty)
        let notHF = try runProcess(dlconvert, [TestPackage.fixture("models/mlp.onnx"), dir.file("out"), "--format", "hf"])
        #expect(notHF.status == 1 && notHF.stderr.contains("carries no Hugging Face config.json"), "\(notHF.stderr)")
        #expect(dir.contents().isEmpty)
        let t = try runProcess(dlconvert, ["tokenize", TestPackage.fixture("bad/hf_tokenizer_bad_regex.json")], input: "x\n")
        #expect(t.status == 1 && t.stderr.contains("does not compile"), "\(t.stderr)")
    }
}
