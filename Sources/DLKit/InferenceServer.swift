import DLGraph
import DLTensor

/// The request handling of `dlserve`: one JSON request line in, one JSON answer line out, as in
/// `formats/serve-protocol.md` (Open Inference Protocol v2 bodies). It never throws: every
/// failure becomes `{"id": ..., "error": "..."}` and the server keeps going.
public final class InferenceServer: Sendable {
    public let models: [Model]

    /// - Precondition: at least one model, with distinct names.
    public init(models: [Model]) {
        precondition(!models.isEmpty, "a server needs a model")
        self.models = models
    }

    /// Answers one request line (without its newline).
    public func handle(line: String) -> String {
        var utf8 = Array(line.utf8)
        let parsed: JSON
        do {
            parsed = try utf8.withUnsafeMutableBytes { (raw) throws(JSONSyntaxError) in
                try JSONParser.parse(UnsafeRawBufferPointer(raw))
            }
        } catch {
            return JSON.object([("id", .null), ("error", .string("the request is not valid JSON: \(error)"))]).serialized()
        }
        let id = parsed["id"] ?? .null
        do {
            return try answer(parsed, id: id).serialized()
        } catch {
            return JSON.object([("id", id), ("error", .string(error.description))]).serialized()
        }
    }

    func answer(_ request: JSON, id: JSON) throws(ServeError) -> JSON {
        guard case .object = request else { throw .badRequest("the request must be a JSON object") }
        let model = try pickModel(request["model_name"])
        var method = "infer"
        if let m = request["method"] {
            guard case .string(let s) = m else { throw .badRequest("\"method\" must be a string") }
            method = s
        }
        switch method {
        case "infer": return try infer(request, model: model, id: id)
        case "metadata": return Self.metadata(of: model, id: id)
        case "ready": return .object([("id", id), ("ready", .bool(true))])
        default: throw .badRequest("unknown method '\(method)'; use infer, metadata or ready")
        }
    }

    func pickModel(_ name: JSON?) throws(ServeError) -> Model {
        guard let name, name != .null else {
            guard models.count == 1, let only = models.first else {
                throw .badRequest("several models are loaded; name one with \"model_name\" (\(models.map(\.name).joined(separator: ", ")))")
            }
            return only
        }
        guard case .string(let s) = name else { throw .badRequest("\"model_name\" must be a string") }
        guard let m = models.first(where: { $0.name == s }) else {
            throw .badRequest("no model named '\(s)' (loaded: \(models.map(\.name).joined(separator: ", ")))")
        }
        return m
    }

    func infer(_ request: JSON, model: Model, id: JSON) throws(ServeError) -> JSON {
        guard case .array(let inputList)? = request["inputs"] else {
            throw .badRequest("an infer request needs an \"inputs\" array")
        }
        var inputs: [String: Tensor] = [:]
        for (i, item) in inputList.enumerated() {
            let (name, tensor) = try TensorJSONCodec.decode(item, label: "inputs[\(i)]")
            guard inputs[name] == nil else { throw .badRequest("input '\(name)' is given twice") }
            inputs[name] = tensor
        }
        var wanted: [String]? = nil
        var base64 = false
        if case .string("base64")? = request["parameters"]?["data_encoding"] { base64 = true }
        if let outs = request["outputs"] {
            guard case .array(let list) = outs else { throw .badRequest("\"outputs\" must be an array") }
            var names: [String] = []
            for o in list {
                guard case .string(let n)? = o["name"] else { throw .badRequest("each entry of \"outputs\" needs a \"name\" string") }
                names.append(n)
                if case .string("base64")? = o["parameters"]?["data_encoding"] { base64 = true }
            }
            wanted = names
        }
        let results: [String: Tensor]
        do { results = try model.run(inputs, outputs: wanted) } catch { throw .model(error) }
        let order = wanted ?? model.outputs.map(\.name)
        var outputs: [JSON] = []
        for name in order {
            if let t = results[name] { outputs.append(TensorJSONCodec.encode(name: name, tensor: t, base64: base64)) }
        }
        return .object([("id", id), ("model_name", .string(model.name)), ("outputs", .array(outputs))])
    }

    /// Model metadata: name, platform, inputs and outputs with -1 for dimensions not fixed.
    static func metadata(of model: Model, id: JSON) -> JSON {
        let inferred = (try? model.graph.inferTypes()) ?? [:]
        func describe(_ v: ValueInfo) -> JSON {
            let type = v.type ?? inferred[v.name]
            let shape: JSON = type?.dims.map { .array($0.map { .int($0.value ?? -1) }) } ?? .null
            return .object([("name", .string(v.name)),
                            ("datatype", .string(type?.dtype.inferenceProtocolName ?? "")),
                            ("shape", shape)])
        }
        return .object([
            ("id", id), ("name", .string(model.name)), ("versions", .array([.string("1")])),
            ("platform", .string("dlkit")),
            ("inputs", .array(model.inputs.map(describe))),
            ("outputs", .array(model.outputs.map(describe))),
        ])
    }
}
