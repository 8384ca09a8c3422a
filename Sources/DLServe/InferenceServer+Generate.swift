import DLKit
import DLSupport

/// `generate` requests: `{"id", "method": "generate", "text_input": "...", "parameters":
/// {"max_tokens", "temperature", "top_k", "top_p", "seed"}}` answered with
/// `{"id", "model_name", "text_output", "token_ids"}` (over HTTP: POST /v2/models/NAME/generate,
/// Triton's generate extension, the body without `method`; POST .../generate_stream answers one
/// such object per new token, its text the piece that token completes, as server-sent events;
/// on stdio `"stream": true` asks for the same objects, a line each, then the whole answer with
/// `"final": true`).
extension InferenceServer {
    /// Most new tokens one request may ask for.
    static let maxGeneratedTokens = 1 << 16

    func generate(_ request: ScannedRequest, model m: Int, omitNullID: Bool) throws(ServeError) -> GenerateJob {
        guard text[m]?.generator != nil else {
            throw .badRequest("model '\(models[m].name)' does not generate text (generation needs a Hugging Face decoder folder: gpt2, llama, mistral, qwen2)")
        }
        guard case .string(let prompt)? = request.members["text_input"] else {
            throw .badRequest("a generate request needs \"text_input\", a string")
        }
        var streamAsked = false
        switch request.members["stream"] {
        case nil, .null?: break
        case .bool(let b)?: streamAsked = b
        case let other?: throw .badRequest("\"stream\" is \(other.kindDescription); expected true or false")
        }
        var sampling = TextGenerator.Sampling()
        var maxTokens = 16
        switch request.members["parameters"] {
        case nil, .null?: break
        case .object(let members)?:
            for member in members {
                let (key, v) = (member.key, member.value)
                func number(_ ok: (Double) -> Bool, _ expected: String) throws(ServeError) -> Double {
                    guard let d = v.doubleValue, d.isFinite, ok(d) else {
                        throw .badRequest("parameters.\(key) is \(v.serialized()); expected \(expected)")
                    }
                    return d
                }
                func integer(_ range: ClosedRange<Int>) throws(ServeError) -> Int {
                    guard let i = v.intValue, range.contains(i) else {
                        throw .badRequest("parameters.\(key) is \(v.serialized()); expected an integer in \(range.lowerBound)...\(range.upperBound)")
                    }
                    return i
                }
                switch key {
                case "max_tokens": maxTokens = try integer(1...Self.maxGeneratedTokens)
                case "temperature": sampling.temperature = try number({ $0 >= 0 }, "a number >= 0 (0: greedy)")
                case "top_k": sampling.topK = try integer(0...Int(Int32.max))
                case "top_p": sampling.topP = try number({ $0 > 0 && $0 <= 1 }, "a number in (0, 1]")
                case "seed": sampling.seed = UInt32(try integer(0...Int(UInt32.max)))
                default:
                    throw .badRequest("unknown generation parameter '\(key)'; use max_tokens, temperature, top_k, top_p, seed")
                }
            }
        case let other?:
            throw .badRequest("\"parameters\" is \(other.kindDescription); expected an object")
        }
        return GenerateJob(id: request.id, model: m, prompt: prompt, maxTokens: maxTokens, sampling: sampling, omitNullID: omitNullID,
                           streamAsked: streamAsked)
    }

    func runGenerate(_ g: GenerateJob) -> JSON {
        guard let generator = text[g.model]?.generator else {
            return Self.errorAnswer(id: g.id, message: "model '\(models[g.model].name)' does not generate text")
        }
        func answer(_ text: String, _ ids: [Int], final: Bool = false) -> JSON {
            var fields: [(String, JSON)] = g.omitNullID && g.id == .null ? [] : [("id", g.id)]
            fields += [("model_name", .string(models[g.model].name)), ("text_output", .string(text)),
                       ("token_ids", .array(ids.map { .int($0) }))]
            if final { fields.append(("final", .bool(true))) }
            return .object(fields)
        }
        do {
            guard let sink = g.stream else {
                let (ids, text) = try generator.generate(text: g.prompt, maxTokens: g.maxTokens, sampling: g.sampling)
                return answer(text, ids)
            }
            let (ids, text) = try generator.stream(text: g.prompt, maxTokens: g.maxTokens, sampling: g.sampling) { id, piece in
                sink(answer(piece, [id]))
            }
            return answer(text, ids, final: g.streamAsked)
        } catch {
            return Self.errorAnswer(id: g.id, message: error.description)
        }
    }
}
