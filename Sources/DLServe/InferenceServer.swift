import DLGraph
import DLKit
import DLRuntime
import DLTensor

/// Limits a server applies to every request.
public struct ServeLimits: Sendable {
    /// Largest element count of one request tensor (default 2^28, 1 GiB of float32). Checked
    /// before anything is allocated.
    public var maxElements: Int
    /// Deepest JSON nesting of a request, counting the request object as 1.
    public var maxDepth: Int

    public init(maxElements: Int = 1 << 28, maxDepth: Int = JSONParser.maxDepth) {
        self.maxElements = maxElements
        self.maxDepth = maxDepth
    }
}

/// A request after the parse stage: either its answer is already known (metadata, ready, an
/// error), or it is an inference with decoded input tensors.
public enum ServeJob: Sendable {
    case answer(JSON)
    case infer(InferJob)

    /// The batch signature when this is an inference that can join a batch.
    public var batchSignature: BatchSignature? {
        if case .infer(let j) = self { return j.signature }
        return nil
    }
}

/// An inference request, decoded.
public struct InferJob: Sendable {
    public let id: JSON
    let model: Int
    let inputs: [String: Tensor]
    /// Output names in the order to answer them, with whether each is wanted as base64.
    let outputs: [String]
    let base64: [Bool]
    /// Set when the model can be batched and the inputs agree on their rows.
    let signature: BatchSignature?
    let rows: Int
}

/// A request after the run stage, ready to be written.
public enum ServeOutcome: Sendable {
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
    private let metadata: [JSON]
    private let inputIndex: [[String: ValueInfo]]
    private let overridable: [Set<String>]

    /// - Throws: `ServeError.badRequest` when no model is given or two share a name.
    public init(models: [Model], limits: ServeLimits = ServeLimits()) throws(ServeError) {
        guard !models.isEmpty else { throw .badRequest("a server needs at least one model") }
        var names: Set<String> = []
        for m in models where !names.insert(m.name).inserted {
            throw .badRequest("two models are named '\(m.name)' (a model's name is its file name without the extension); rename one file")
        }
        self.models = models
        self.limits = limits
        batchSymbols = models.map(DynamicBatcher.batchSymbol(of:))
        metadata = models.map(Self.metadata(of:))
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
    public static func lineTooLong(bytes: Int, limit: Int) -> ServeJob {
        .answer(errorAnswer(id: .null, message: "the request line has \(bytes) bytes, over the limit of \(limit) (--max-line-bytes); it was skipped"))
    }

    static func errorAnswer(id: JSON, message: String) -> JSON {
        .object([("id", id), ("error", .string(message))])
    }

    // MARK: - Stage 1: parse

    /// Parses one request line. The byte after `line` in memory must be readable and not a digit
    /// (a newline or NUL): float parsing may look one byte ahead.
    public func prepare(line: UnsafeRawBufferPointer) -> ServeJob {
        var scanner = RequestScanner(line, maxDepth: limits.maxDepth)
        let request: ScannedRequest
        do { request = try scanner.scan() } catch {
            return .answer(Self.errorAnswer(id: scanner.id ?? .null, message: error.description))
        }
        do { return try prepare(request, line: line) } catch {
            return .answer(Self.errorAnswer(id: request.id, message: error.description))
        }
    }

    private func prepare(_ request: ScannedRequest, line: UnsafeRawBufferPointer) throws(ServeError) -> ServeJob {
        let id = request.id
        var method = "infer"
        if let m = request.members["method"] {
            guard case .string(let s) = m else { throw .badRequest("\"method\" must be a string") }
            method = s
        }
        switch method {
        case "infer":
            return .infer(try infer(request, model: try pickModel(request.members["model_name"]), line: line))
        case "metadata":
            let m = try pickModel(request.members["model_name"])
            guard case .object(let fields) = metadata[m] else { return .answer(metadata[m]) }
            return .answer(.object([JSONMember(key: "id", value: id)] + fields))
        case "ready":
            if let name = request.members["model_name"], name != .null {
                let m = try pickModel(name)
                return .answer(.object([("id", id), ("model_name", .string(models[m].name)), ("ready", .bool(true))]))
            }
            return .answer(.object([("id", id), ("ready", .bool(true))]))
        default:
            throw .badRequest("unknown method '\(method)'; use infer, metadata or ready")
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

    private func infer(_ request: ScannedRequest, model m: Int, line: UnsafeRawBufferPointer) throws(ServeError) -> InferJob {
        if let problem = request.inputsProblem { throw .badRequest(problem) }
        guard let scanned = request.inputs else { throw .badRequest("an infer request needs an \"inputs\" array") }
        let model = models[m]
        var inputs: [String: Tensor] = [:]
        for (i, s) in scanned.enumerated() {
            guard case .string(let name)? = s.name else { throw .badRequest("inputs[\(i)] has no \"name\" string") }
            let label = "input '\(name)'"
            guard inputs[name] == nil else { throw .badRequest("\(label) is given twice") }
            let declared = inputIndex[m][name]
            guard declared != nil || overridable[m].contains(name) else {
                throw .model(.runtime(.unknownInput(name: name, expected: model.inputs.map(\.name))))
            }
            guard case .string(let typeName)? = s.datatype else { throw .badRequest("\(label) has no \"datatype\" string") }
            guard let dtype = DType(inferenceProtocolName: typeName), dtype != .string, dtype != .bfloat16 else {
                throw .badRequest("\(label) has datatype '\(typeName)'; supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64")
            }
            let shape = try Self.shape(s.shape, label: label)
            guard let count = ShapeMath.elementCount(shape), !count.multipliedReportingOverflow(by: dtype.byteWidth).overflow else {
                throw .badRequest("\(label) has shape \(shape), whose element count overflows")
            }
            guard count <= limits.maxElements else {
                throw .badRequest("\(label) has shape \(shape) with \(count) elements, over the limit of \(limits.maxElements) (--max-elements)")
            }
            if let type = declared?.type {
                guard type.dtype == dtype else {
                    throw .model(.runtime(.inputType(name: name, expected: type.dtype, actual: dtype)))
                }
                guard type.accepts(dtype: dtype, shape: shape) else {
                    throw .model(.runtime(.inputShape(name: name, expected: type, actual: shape)))
                }
            }
            let base64 = try Self.encoding(s.parameters, label: label)
            guard let range = s.data else { throw .badRequest("\(label) has no \"data\"") }
            inputs[name] = try TensorDataDecoder.decode(
                line: line, range: range, dtype: dtype, shape: shape, count: count, base64: base64, label: label)
        }
        for v in model.inputs where inputs[v.name] == nil {
            throw .model(.runtime(.missingInput(name: v.name)))
        }

        let available = model.outputs.map(\.name)
        let everyOutputBase64 = try Self.encoding(request.members["parameters"], label: "the request")
        var names: [String] = []
        var base64: [Bool] = []
        if let outs = request.members["outputs"] {
            guard case .array(let list) = outs else { throw .badRequest("\"outputs\" must be an array") }
            for (i, o) in list.enumerated() {
                guard case .string(let n)? = o["name"] else { throw .badRequest("outputs[\(i)] has no \"name\" string") }
                guard available.contains(n) else { throw .model(.runtime(.unknownOutput(name: n, available: available))) }
                guard !names.contains(n) else { throw .badRequest("output '\(n)' is asked for twice") }
                names.append(n)
                base64.append(try Self.encoding(o["parameters"], label: "output '\(n)'", default: everyOutputBase64))
            }
        } else {
            names = available
            base64 = Array(repeating: everyOutputBase64, count: names.count)
        }
        var signature: BatchSignature? = nil
        var rows = 0
        if batchSymbols[m] != nil, let (sig, r) = DynamicBatcher.signature(model: m, outputs: names, inputs: inputs) {
            signature = sig
            rows = r
        }
        return InferJob(id: request.id, model: m, inputs: inputs, outputs: names, base64: base64, signature: signature, rows: rows)
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

    /// Reads `parameters.data_encoding`: true for "base64", false for "json", `default` when absent.
    static func encoding(_ parameters: JSON?, label: String, default fallback: Bool = false) throws(ServeError) -> Bool {
        guard let parameters, parameters != .null else { return fallback }
        guard case .object = parameters else { throw .badRequest("\(label) has \"parameters\" that is not an object") }
        switch parameters["data_encoding"] {
        case nil, .null?: return fallback
        case .string("base64")?: return true
        case .string("json")?: return false
        case let other?: throw .badRequest("\(label) has data_encoding \(other.serialized()); use \"json\" or \"base64\"")
        }
    }

    // MARK: - Stage 2: run

    /// Runs `jobs`, one outcome per job in the same order. Several inference jobs with one batch
    /// signature run as one batch; when the batch fails, each runs alone so each gets its own answer.
    public func run(_ jobs: [ServeJob]) -> [ServeOutcome] {
        if jobs.count > 1, let batch = batchable(jobs), let outcomes = runBatch(batch) {
            return outcomes
        }
        return jobs.map { job in
            switch job {
            case .answer(let a): return .answer(a)
            case .infer(let j): return runOne(j)
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

    /// Appends the answer line (without its newline) to `out`.
    public func encode(_ outcome: ServeOutcome, into out: inout [UInt8]) {
        switch outcome {
        case .answer(let json):
            var text = ""
            json.write(into: &text)
            out.append(contentsOf: text.utf8)
        case .outputs(let job, let tensors):
            var id = ""
            job.id.write(into: &id)
            out.append(contentsOf: #"{"id":"#.utf8)
            out.append(contentsOf: id.utf8)
            out.append(contentsOf: #","model_name":"#.utf8)
            TensorJSONCodec.appendString(models[job.model].name, to: &out)
            out.append(contentsOf: #","outputs":["#.utf8)
            for (i, t) in tensors.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                TensorJSONCodec.encode(name: job.outputs[i], tensor: t, base64: job.base64[i], into: &out)
            }
            out.append(contentsOf: "]}".utf8)
        }
    }

    // MARK: - Metadata

    /// Model metadata: name, platform, inputs and outputs with -1 for dimensions not fixed.
    static func metadata(of model: Model) -> JSON {
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
            ("inputs", .array(model.inputs.map(describe))),
            ("outputs", .array(model.outputs.map(describe))),
        ])
    }
}
