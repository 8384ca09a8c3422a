#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLKit
import DLRuntime
import DLSupport
import DLTensor

/// Limits a server applies to every request.
public struct ServeLimits: Sendable {
    /// Largest element count of one request tensor (default 2^28, 1 GiB of float32). Checked
    /// before anything is allocated.
    public var maxElements: Int
    /// Deepest JSON nesting of a request, counting the request object as 1.
    public var maxDepth: Int

    /// Limits with the JSON parser's own nesting bound.
    public init(maxElements: Int = 1 << 28) {
        self.init(maxElements: maxElements, maxDepth: JSONParser.maxDepth)
    }

    public init(maxElements: Int, maxDepth: Int) {
        self.maxElements = maxElements
        self.maxDepth = maxDepth
    }
}

/// How many bytes of binary tensor data follow a request line.
public enum BinaryFraming: Sendable, Equatable {
    /// No input carries `binary_data_size`.
    case none
    /// The inputs' `binary_data_size` add up to this many bytes.
    case bytes(Int)
    /// The sizes cannot be read (the line is not JSON, or a size is not a non-negative integer):
    /// where the next request starts is unknown.
    case broken(String)
}

/// A request after the parse stage: either its answer is already known (metadata, ready, an
/// error), or it is an inference with decoded input tensors.
package enum ServeJob: Sendable {
    case answer(JSON)
    case infer(InferJob)
    case generate(GenerateJob)

    /// The batch signature when this is an inference that can join a batch.
    package var batchSignature: BatchSignature? {
        if case .infer(let j) = self { return j.signature }
        return nil
    }
}

/// An inference request, decoded.
public struct InferJob: Sendable {
    package let id: JSON
    let model: Int
    let inputs: [String: Tensor]
    /// Output names in the order to answer them, with how each is written.
    let outputs: [String]
    let encodings: [OutputEncoding]
    /// Leave `"id"` out of the answer when the request had none (HTTP); the stdio protocol always
    /// echoes it, `null` when absent.
    let omitNullID: Bool
    /// Set when the model can be batched and the inputs agree on their rows.
    let signature: BatchSignature?
    let rows: Int
}

/// A generation request, parsed: the prompt and how to choose tokens.
public struct GenerateJob: Sendable {
    package let id: JSON
    let model: Int
    let prompt: String
    let maxTokens: Int
    let sampling: TextGenerator.Sampling
    let omitNullID: Bool
    /// The request said `"stream": true` (the stdio protocol's streamed form: a line per new
    /// token, then the whole answer with `"final": true`).
    let streamAsked: Bool
    /// Set for a streamed generation (HTTP `generate_stream`, stdio `"stream": true`): gets one
    /// answer per new token, its `text_output` the text that token completes, and returns false
    /// when nobody reads any more.
    var stream: (@Sendable (JSON) -> Bool)? = nil
}

/// A request after the run stage, ready to be written.
package enum ServeOutcome: Sendable {
    case answer(JSON)
    case outputs(InferJob, [Tensor])
}

/// The request handling of `dlserve`, in three stages that a pipeline runs on different threads:
/// `prepare` (parse a line and decode its tensors), `run` (one request or a dynamic batch), and
/// `encode` (write the answer line). Bodies are as in `formats/serve-protocol.md` (Open Inference
/// Protocol v2). Nothing here throws: every failure becomes `{"id": ..., "error": "..."}`.
public final class InferenceServer: Sendable {
    public let models: [Model]
    public let limits: ServeLimits
    /// Per model: the batch symbol when the model can take part in dynamic batching.
    public let batchSymbols: [String?]
    /// Per model: text inputs and generation, for Hugging Face folders.
    public let text: [TextSupport?]
    private let metadata: [JSON]
    private let inputIndex: [[String: ValueInfo]]
    private let overridable: [Set<String>]

    /// - Parameter text: per model (in `models`' order, nil or shorter for none), the tokenizer
    ///   that turns BYTES `text` inputs into its ids and the generator for `generate` requests.
    /// - Throws: `ServeError.badRequest` when no model is given or two share a name.
    public init(models: [Model], limits: ServeLimits = ServeLimits(), text: [TextSupport?] = []) throws(ServeError) {
        guard !models.isEmpty else { throw .badRequest("a server needs at least one model") }
        var names: Set<String> = []
        for m in models where !names.insert(m.name).inserted {
            throw .badRequest("two models are named '\(m.name)' (a model's name is its file name without the extension); rename one file")
        }
        self.models = models
        self.limits = limits
        batchSymbols = models.map(DynamicBatcher.batchSymbol(of:))
        let text = models.indices.map { $0 < text.count ? text[$0] : nil }
        self.text = text
        metadata = zip(models, text).map { Self.metadata(of: $0, text: $1) }
        inputIndex = models.map { m in Dictionary(m.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }) }
        overridable = models.map { Set($0.graph.overridableInitializers) }
    }

    // MARK: - Whole requests

    /// Answers one request line (without its newline): the three stages in a row.
    public func handle(line: String) -> String {
        var bytes = Array(line.utf8)
        bytes.append(0)  // the decoder may look one byte past the line
        let job = bytes.withUnsafeBytes { prepare(line: UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        var out: [UInt8] = []
        encode(run([job])[0], into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The answer to a line that was too long to read: an error with a null id.
    package static func lineTooLong(bytes: Int, limit: Int) -> ServeJob {
        .answer(errorAnswer(id: .null, message: "the request line has \(bytes) bytes, over the server's line limit of \(limit); it was skipped"))
    }

    static func errorAnswer(id: JSON, message: String) -> JSON {
        .object([("id", id), ("error", .string(message))])
    }

    // MARK: - Stage 1: parse

    /// Parses one request line, with the binary tensor data that followed it (empty when none).
    /// The byte after `line` in memory must be readable and not a digit (a newline or NUL): float
    /// parsing may look one byte ahead.
    package func prepare(line: UnsafeRawBufferPointer, binary: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> ServeJob {
        scan(line) { request throws(ServeError) in try prepare(request, line: line, binary: binary) }
    }

    /// `prepare(line:binary:)` for a line that `framing(line:)` has scanned already: `line` holds
    /// the same bytes (the scanned request keeps byte ranges into it).
    func prepare(scanned request: ScannedRequest, line: UnsafeRawBufferPointer, binary: UnsafeRawBufferPointer) -> ServeJob {
        do { return try prepare(request, line: line, binary: binary) } catch {
            return .answer(Self.errorAnswer(id: request.id, message: error.description))
        }
    }

    /// Parses the JSON of an inference request to model number `model` (HTTP: the model comes
    /// from the path, `method` and `model_name` in the body are not read), with the binary tensor
    /// data after it. The same one-byte look-ahead rule as `prepare(line:binary:)` applies.
    package func prepareInfer(body: UnsafeRawBufferPointer, binary: UnsafeRawBufferPointer, model: Int) -> ServeJob {
        scan(body) { request throws(ServeError) in
            .infer(try infer(request, model: model, line: body, binary: binary, omitNullID: true))
        }
    }

    /// Parses the JSON of a generation request to model number `model` (HTTP's `generate` route:
    /// the model comes from the path). The same one-byte look-ahead rule as `prepare(line:binary:)` applies.
    package func prepareGenerate(body: UnsafeRawBufferPointer, model: Int) -> ServeJob {
        scan(body) { request throws(ServeError) in .generate(try generate(request, model: model, omitNullID: true)) }
    }

    /// Scans `bytes` as a request and hands it to `body`; a failure of either becomes an error
    /// answer with the request's id (as far as it was read).
    private func scan(_ bytes: UnsafeRawBufferPointer, _ body: (ScannedRequest) throws(ServeError) -> ServeJob) -> ServeJob {
        var scanner = RequestScanner(bytes, maxDepth: limits.maxDepth)
        let request: ScannedRequest
        do { request = try scanner.scan() } catch {
            return .answer(Self.errorAnswer(id: scanner.id ?? .null, message: error.description))
        }
        do { return try body(request) } catch {
            return .answer(Self.errorAnswer(id: request.id, message: error.description))
        }
    }

    /// The index of the model named `name`.
    public func model(named name: String) -> Int? { models.firstIndex { $0.name == name } }

    /// The metadata of model number `m` (name, versions, platform, inputs, outputs).
    package func metadata(model m: Int) -> JSON { metadata[m] }

    /// How many bytes of binary tensor data follow a request line: the sum of its inputs'
    /// `parameters.binary_data_size`. Lines that do not mention `binary_data_size` are not scanned.
    public func binaryFraming(line: UnsafeRawBufferPointer) -> BinaryFraming { framing(line: line).framing }

    /// `binaryFraming(line:)`, with the scanned request when the line was scanned (so
    /// `prepare(scanned:line:binary:)` need not scan it again).
    func framing(line: UnsafeRawBufferPointer) -> (framing: BinaryFraming, request: ScannedRequest?) {
        guard Self.mentionsBinaryDataSize(line) else { return (.none, nil) }
        var scanner = RequestScanner(line, maxDepth: limits.maxDepth)
        guard let request = try? scanner.scan() else {
            return (.broken("the request line is not valid JSON, so the size of its binary data is unknown"), nil)
        }
        return (Self.binaryFraming(of: request), request)
    }

    private static func binaryFraming(of request: ScannedRequest) -> BinaryFraming {
        guard let inputs = request.inputs else { return .none }
        var total: Int? = nil
        for (i, input) in inputs.enumerated() {
            do throws(ServeError) {
                guard let n = try binarySize(input.parameters, label: "inputs[\(i)]") else { continue }
                let (sum, overflow) = (total ?? 0).addingReportingOverflow(n)
                guard !overflow else { return .broken("the binary_data_size values overflow") }
                total = sum
            } catch {
                return .broken(error.description)
            }
        }
        return total.map { .bytes($0) } ?? .none
    }

    /// Whether `binary_data_size` occurs in `line`: a search for its `z` (a byte JSON numbers
    /// never contain, so the data arrays that make up most lines are passed over by memchr).
    static func mentionsBinaryDataSize(_ line: UnsafeRawBufferPointer) -> Bool {
        guard let base = line.baseAddress else { return false }
        let key = Array("binary_data_size".utf8)
        let z = 14  // index of "z" in the key
        var from = 0
        while from < line.count, let hit = memchr(base + from, Int32(UInt8(ascii: "z")), line.count - from) {
            let at = UnsafeRawPointer(hit) - base
            if at >= z, at - z + key.count <= line.count,
               UnsafeRawBufferPointer(rebasing: line[(at - z)..<(at - z + key.count)]).elementsEqual(key) {
                return true
            }
            from = at + 1
        }
        return false
    }

    /// `parameters.binary_data_size` of an input: nil when absent.
    static func binarySize(_ parameters: JSON?, label: String) throws(ServeError) -> Int? {
        guard case .object = parameters, let size = parameters?["binary_data_size"], size != .null else { return nil }
        guard case .number(let text) = size, case .value(let n) = JSONInteger(literal: text) else {
            throw .badRequest("\(label) has binary_data_size \(size.serialized()); it must be a non-negative integer")
        }
        return n
    }

    private func prepare(_ request: ScannedRequest, line: UnsafeRawBufferPointer, binary: UnsafeRawBufferPointer) throws(ServeError) -> ServeJob {
        let id = request.id
        var method = "infer"
        if let m = request.members["method"] {
            guard case .string(let s) = m else { throw .badRequest("\"method\" must be a string") }
            method = s
        }
        switch method {
        case "infer":
            return .infer(try infer(request, model: try pickModel(request.members["model_name"]), line: line, binary: binary, omitNullID: false))
        case "metadata":
            let m = try pickModel(request.members["model_name"])
            guard case .object(let fields) = metadata[m] else { return .answer(metadata[m]) }
            return .answer(.object([JSONMember(key: "id", value: id)] + fields))
        case "generate":
            return .generate(try generate(request, model: try pickModel(request.members["model_name"]), omitNullID: false))
        case "ready":
            if let name = request.members["model_name"], name != .null {
                let m = try pickModel(name)
                return .answer(.object([("id", id), ("model_name", .string(models[m].name)), ("ready", .bool(true))]))
            }
            return .answer(.object([("id", id), ("ready", .bool(true))]))
        default:
            throw .badRequest("unknown method '\(method)'; use infer, generate, metadata or ready")
        }
    }

    func pickModel(_ name: JSON?) throws(ServeError) -> Int {
        guard let name, name != .null else {
            guard models.count == 1 else {
                throw .badRequest("several models are loaded; name one with \"model_name\" (\(models.map(\.name).joined(separator: ", ")))")
            }
            return 0
        }
        guard case .string(let s) = name else { throw .badRequest("\"model_name\" must be a string") }
        guard let m = models.firstIndex(where: { $0.name == s }) else {
            throw .badRequest("no model named '\(s)' (loaded: \(models.map(\.name).joined(separator: ", ")))")
        }
        return m
    }

    private func infer(
        _ request: ScannedRequest, model m: Int, line: UnsafeRawBufferPointer, binary: UnsafeRawBufferPointer, omitNullID: Bool
    ) throws(ServeError) -> InferJob {
        if let problem = request.inputsProblem { throw .badRequest(problem) }
        guard let scanned = request.inputs else { throw .badRequest("an infer request needs an \"inputs\" array") }
        let model = models[m]
        var inputs: [String: Tensor] = [:]
        var binaryUsed = 0
        for (i, s) in scanned.enumerated() {
            guard case .string(let name)? = s.name else { throw .badRequest("inputs[\(i)] has no \"name\" string") }
            let label = "input '\(name)'"
            guard inputs[name] == nil else { throw .badRequest("\(label) is given twice") }
            let declared = inputIndex[m][name]
            let isText = declared == nil && text[m]?.feeds != nil && TextSupport.inputNames.contains(name)
            guard declared != nil || overridable[m].contains(name) || isText else {
                throw .model(.runtime(.unknownInput(name: name, expected: model.inputs.map(\.name))))
            }
            guard case .string(let typeName)? = s.datatype else { throw .badRequest("\(label) has no \"datatype\" string") }
            guard let dtype = DType(inferenceProtocolName: typeName), dtype != .bfloat16 else {
                throw .badRequest("\(label) has datatype '\(typeName)'; supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES")
            }
            if isText, dtype != .string { throw .badRequest("\(label) is text to tokenize: its datatype is BYTES, not \(typeName)") }
            let shape = try Self.shape(s.shape, label: label)
            guard let count = ShapeMath.elementCount(shape), !count.multipliedReportingOverflow(by: max(1, dtype.byteWidth)).overflow else {
                throw .badRequest("\(label) has shape \(shape), whose element count overflows")
            }
            guard count <= limits.maxElements else {
                throw .badRequest("\(label) has shape \(shape) with \(count) elements, over the server's limit of \(limits.maxElements) elements per tensor")
            }
            if let type = declared?.type {
                guard type.dtype == dtype else {
                    throw .model(.runtime(.inputType(name: name, expected: type.dtype, actual: dtype)))
                }
                guard type.accepts(dtype: dtype, shape: shape) else {
                    throw .model(.runtime(.inputShape(name: name, expected: type, actual: shape)))
                }
            }
            if let size = try Self.binarySize(s.parameters, label: label) {
                guard s.data == nil else { throw .badRequest("\(label) has both binary_data_size and \"data\"") }
                if dtype != .string {  // BYTES elements carry their own lengths
                    let needed = count * dtype.byteWidth
                    guard size == needed else {
                        throw .badRequest("\(label) has binary_data_size \(size), but shape \(shape) of \(typeName) is \(needed) bytes")
                    }
                }
                guard size <= binary.count - binaryUsed else {
                    throw .badRequest("\(label) needs \(size) bytes of binary data after byte \(binaryUsed), only \(binary.count) follow the JSON")
                }
                let bytes = UnsafeRawBufferPointer(rebasing: binary[binaryUsed..<binaryUsed + size])
                inputs[name] = dtype == .string
                    ? try TensorDataDecoder.decodeBinaryStrings(bytes, shape: shape, count: count, label: label)
                    : try TensorDataDecoder.decodeBinary(bytes, dtype: dtype, shape: shape, label: label)
                binaryUsed += size
                continue
            }
            let base64 = try Self.encoding(s.parameters, label: label) == .base64
            guard let range = s.data else { throw .badRequest("\(label) has no \"data\"") }
            if dtype == .string {
                guard !base64 else { throw .badRequest("\(label) is BYTES: its data is JSON strings or binary tensor data, not base64") }
                inputs[name] = try TensorDataDecoder.decodeStrings(line: line, range: range, shape: shape, count: count, label: label)
                continue
            }
            inputs[name] = try TensorDataDecoder.decode(
                line: line, range: range, dtype: dtype, shape: shape, count: count, base64: base64, label: label)
        }
        guard binaryUsed == binary.count else {
            throw .badRequest("the inputs' binary_data_size add up to \(binaryUsed) bytes, but \(binary.count) bytes of binary data follow the JSON")
        }
        if let feeds = text[m]?.feeds, inputs["text"] != nil || inputs["text_pair"] != nil {
            try TextSupport.tokenize(&inputs, with: feeds, model: model, maxElements: limits.maxElements)
        }
        for v in model.inputs where inputs[v.name] == nil {
            throw .model(.runtime(.missingInput(name: v.name)))
        }

        let available = model.outputs.map(\.name)
        let everyOutput = try Self.encoding(request.members["parameters"], label: "the request", binaryKey: "binary_data_output")
        var names: [String] = []
        var encodings: [OutputEncoding] = []
        if let outs = request.members["outputs"] {
            guard case .array(let list) = outs else { throw .badRequest("\"outputs\" must be an array") }
            for (i, o) in list.enumerated() {
                guard case .string(let n)? = o["name"] else { throw .badRequest("outputs[\(i)] has no \"name\" string") }
                guard available.contains(n) else { throw .model(.runtime(.unknownOutput(name: n, available: available))) }
                guard !names.contains(n) else { throw .badRequest("output '\(n)' is asked for twice") }
                names.append(n)
                encodings.append(try Self.encoding(o["parameters"], label: "output '\(n)'", binaryKey: "binary_data", default: everyOutput))
            }
        } else {
            names = available
            encodings = Array(repeating: everyOutput, count: names.count)
        }
        var signature: BatchSignature? = nil
        var rows = 0
        if batchSymbols[m] != nil, let (sig, r) = DynamicBatcher.signature(model: m, outputs: names, inputs: inputs) {
            signature = sig
            rows = r
        }
        return InferJob(id: request.id, model: m, inputs: inputs, outputs: names, encodings: encodings, omitNullID: omitNullID,
                        signature: signature, rows: rows)
    }

    static func shape(_ json: JSON?, label: String) throws(ServeError) -> [Int] {
        guard case .array(let dims)? = json else { throw .badRequest("\(label) has no \"shape\" array") }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for d in dims {
            guard case .number(let text) = d, case .value(let v) = JSONInteger(literal: text) else {
                throw .badRequest("\(label) has shape entry \(d.serialized()); sizes are non-negative integers")
            }
            shape.append(v)
        }
        return shape
    }

    /// Reads `parameters.data_encoding` ("json" or "base64") and, when `binaryKey` is given, the
    /// boolean that asks for binary tensor data (`binary_data` on an output, `binary_data_output` on
    /// the request), which wins over `data_encoding`; `default` for what is absent.
    static func encoding(
        _ parameters: JSON?, label: String, binaryKey: String? = nil, default fallback: OutputEncoding = .json
    ) throws(ServeError) -> OutputEncoding {
        guard let parameters, parameters != .null else { return fallback }
        guard case .object = parameters else { throw .badRequest("\(label) has \"parameters\" that is not an object") }
        var result = fallback
        switch parameters["data_encoding"] {
        case nil, .null?: break
        case .string("base64")?: result = .base64
        case .string("json")?: result = .json
        case let other?: throw .badRequest("\(label) has data_encoding \(other.serialized()); use \"json\" or \"base64\"")
        }
        guard let binaryKey else { return result }
        switch parameters[binaryKey] {
        case nil, .null?: return result
        case .bool(true)?: return .binary
        case .bool(false)?: return result == .binary ? .json : result
        case let other?: throw .badRequest("\(label) has \(binaryKey) \(other.serialized()); use true or false")
        }
    }

    // MARK: - Stage 2: run

    /// Runs `jobs`, one outcome per job in the same order. Several inference jobs with one batch
    /// signature run as one batch; when the batch fails, each runs alone so each gets its own answer.
    package func run(_ jobs: [ServeJob]) -> [ServeOutcome] {
        if jobs.count > 1, let batch = batchable(jobs), let outcomes = runBatch(batch) {
            return outcomes
        }
        return jobs.map { job in
            switch job {
            case .answer(let a): return .answer(a)
            case .infer(let j): return runOne(j)
            case .generate(let g): return .answer(runGenerate(g))
            }
        }
    }

    private func batchable(_ jobs: [ServeJob]) -> [InferJob]? {
        var list: [InferJob] = []
        for job in jobs {
            guard case .infer(let j) = job, let s = j.signature, s == list.first?.signature ?? s else { return nil }
            list.append(j)
        }
        return list
    }

    private func runOne(_ j: InferJob) -> ServeOutcome {
        do {
            let results = try models[j.model].run(j.inputs, outputs: j.outputs)
            var tensors: [Tensor] = []
            for name in j.outputs {
                guard let t = results[name] else {
                    return .answer(Self.errorAnswer(id: j.id, message: "the model did not produce output '\(name)'"))
                }
                tensors.append(t)
            }
            return .outputs(j, tensors)
        } catch {
            return .answer(Self.errorAnswer(id: j.id, message: error.description))
        }
    }

    private func runBatch(_ jobs: [InferJob]) -> [ServeOutcome]? {
        guard let first = jobs.first else { return nil }
        let merged = DynamicBatcher.merge(jobs.map(\.inputs))
        guard let results = try? models[first.model].run(merged, outputs: first.outputs) else { return nil }
        var tensors: [Tensor] = []
        for name in first.outputs {
            guard let t = results[name] else { return nil }
            tensors.append(t)
        }
        guard let parts = DynamicBatcher.split(tensors, rows: jobs.map(\.rows)) else { return nil }
        return zip(jobs, parts).map { .outputs($0, $1) }
    }

    // MARK: - Stage 3: encode

    /// Appends the answer's JSON (without a newline) to `out`. Outputs wanted as binary data
    /// carry their `binary_data_size` there; `appendBinary` appends their bytes.
    package func encode(_ outcome: ServeOutcome, into out: inout [UInt8]) {
        switch outcome {
        case .answer(let json):
            var text = ""
            json.write(into: &text)
            out.append(contentsOf: text.utf8)
        case .outputs(let job, let tensors):
            out.append(UInt8(ascii: "{"))
            if !(job.omitNullID && job.id == .null) {
                var id = ""
                job.id.write(into: &id)
                out.append(contentsOf: #""id":"#.utf8)
                out.append(contentsOf: id.utf8)
                out.append(UInt8(ascii: ","))
            }
            out.append(contentsOf: #""model_name":"#.utf8)
            TensorJSONCodec.appendString(models[job.model].name, to: &out)
            out.append(contentsOf: #","outputs":["#.utf8)
            for (i, t) in tensors.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                TensorJSONCodec.encode(name: job.outputs[i], tensor: t, encoding: job.encodings[i], into: &out)
            }
            out.append(contentsOf: "]}".utf8)
        }
    }

    /// Appends the bytes of the outputs wanted as binary data, in output order (nothing for an
    /// answer without such outputs).
    package func appendBinary(_ outcome: ServeOutcome, into out: inout [UInt8]) {
        guard case .outputs(let job, let tensors) = outcome else { return }
        for (t, e) in zip(tensors, job.encodings) where e == .binary {
            TensorJSONCodec.appendBinary(t, to: &out)
        }
    }

    /// Whether `outcome` is an error answer, and its message.
    package static func errorMessage(_ outcome: ServeOutcome) -> String? {
        guard case .answer(let json) = outcome, case .string(let m)? = json["error"] else { return nil }
        return m
    }

    // MARK: - Metadata

    /// Model metadata: name, platform, inputs and outputs with -1 for dimensions not fixed.
    static func metadata(of model: Model, text: TextSupport?) -> JSON {
        let inferred = (try? model.graph.inferTypes()) ?? [:]
        func describe(_ v: ValueInfo) -> JSON {
            let type = v.type ?? inferred[v.name]
            let shape: JSON = type?.dims.map { .array($0.map { .int($0.value ?? -1) }) } ?? .null
            return .object([("name", .string(v.name)),
                            ("datatype", .string(type?.dtype.inferenceProtocolName ?? "")),
                            ("shape", shape)])
        }
        return .object([
            ("name", .string(model.name)), ("versions", .array([.string("1")])),
            ("platform", .string("dlkit")),
            ("inputs", .array(model.inputs.map(describe) + (text?.metadataInputs ?? []))),
            ("outputs", .array(model.outputs.map(describe))),
        ])
    }
}
