import CTensorFlowProtos
import DLGraph
import DLSupport
import DLTensor
import Foundation

/// A TensorFlow.js model: `model.json` (`format` graph-model or layers-model, `modelTopology`,
/// `weightsManifest`) and its binary weight shards (`groupN-shardKofM.bin`) beside it.
///
/// Weights are decoded as the manifest stores them: float32, int32 and bool as they are, and the
/// quantized forms (uint8/uint16 with `scale` and `min`: q * scale + min; float16) back to their
/// original type. Graph-models are a GraphDef in JSON and go through the SavedModel importer;
/// layers-models carry a Keras config, which DLKit hands to the Keras importer.
public struct TFJSModel: Sendable {
    public enum Kind: String, Sendable { case graphModel = "graph-model", layersModel = "layers-model" }

    public let path: String
    public let kind: Kind
    package let json: JSON
    /// Weights in manifest order, decoded.
    public let weights: [(name: String, tensor: Tensor)]
    /// The most bytes of shards read for one model.
    public static let maxWeightBytes = 1 << 34

    /// Whether `bytes` look like a TF.js `model.json` (a JSON object naming its topology and
    /// weights manifest near the start).
    public static func isModelJSON(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }), bytes[first] == UInt8(ascii: "{") else { return false }
        let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, 1 << 22)]), as: UTF8.self)
        return head.contains("\"modelTopology\"") && head.contains("\"weightsManifest\"")
    }

    public init(path: String) throws(TensorFlowError) {
        self.path = path
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError { throw .cannotRead(path: path, reason: e.reason) } catch {
            throw .cannotRead(path: path, reason: "\(error)")
        }
        guard file.byteCount <= 1 << 30 else { throw .notTFJS(path: path, reason: "model.json is over 1 GiB") }
        do { json = try JSONParser.parse(file.bytes) } catch { throw .notTFJS(path: path, reason: "not valid JSON: \(error)") }
        let format = json["format"].flatMap { if case .string(let s) = $0 { s } else { nil } }
        if format == "graph-model" {
            kind = .graphModel
        } else if format == "layers-model" || json["modelTopology"]?["model_config"] != nil || json["modelTopology"]?["class_name"] != nil {
            kind = .layersModel
        } else if json["modelTopology"]?["node"] != nil {
            kind = .graphModel
        } else {
            throw .notTFJS(path: path, reason: "format '\(format ?? "")' is neither graph-model nor layers-model")
        }
        weights = try Self.readWeights(json, path: path)
    }

    /// The Keras model config of a layers-model (`modelTopology.model_config`, or the topology itself).
    package var kerasConfig: JSON? {
        guard let t = json["modelTopology"] else { return nil }
        return t["model_config"] ?? (t["class_name"] != nil ? t : nil)
    }

    public var kerasVersion: String? {
        if case .string(let s)? = json["modelTopology"]?["keras_version"] { return s }
        return nil
    }

    // MARK: weights

    private static func readWeights(_ json: JSON, path: String) throws(TensorFlowError) -> [(name: String, tensor: Tensor)] {
        guard case .array(let groups)? = json["weightsManifest"] else { throw .notTFJS(path: path, reason: "weightsManifest is not a list") }
        let dir = (path as NSString).deletingLastPathComponent
        var out: [(name: String, tensor: Tensor)] = []
        var total = 0
        for (g, group) in groups.enumerated() {
            guard case .array(let paths)? = group["paths"], case .array(let specs)? = group["weights"] else {
                throw .notTFJS(path: path, reason: "weightsManifest group \(g) lacks paths or weights")
            }
            var bytes: [UInt8] = []
            for p in paths {
                guard case .string(let name) = p, !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                    throw .notTFJS(path: path, reason: "weight shard path \(p) leaves the model's folder")
                }
                let shard = dir.isEmpty ? name : dir + "/" + name
                let file: MappedFile
                do { file = try MappedFile(path: shard) } catch let e as MappedFileError { throw .cannotRead(path: shard, reason: e.reason) } catch {
                    throw .cannotRead(path: shard, reason: "\(error)")
                }
                total += file.byteCount
                guard total <= maxWeightBytes else { throw .notTFJS(path: path, reason: "the weight shards exceed \(maxWeightBytes) bytes") }
                bytes += file.bytes
            }
            var at = 0
            for spec in specs {
                let result = bytes.withUnsafeBytes { b in
                    Result { () throws(TensorFlowError) in try weight(spec, UnsafeRawBufferPointer(rebasing: b[at...]), path: path) }
                }
                let (name, t, used) = try result.get()
                at += used
                out.append((name, t))
            }
            guard at == bytes.count else {
                throw .notTFJS(path: path, reason: "weightsManifest group \(g) describes \(at) bytes but its shards hold \(bytes.count)")
            }
        }
        return out
    }

    /// One manifest entry decoded from the front of `b`, and the bytes it took.
    private static func weight(_ spec: JSON, _ b: UnsafeRawBufferPointer, path: String) throws(TensorFlowError) -> (String, Tensor, Int) {
        guard case .string(let name)? = spec["name"], case .string(let dtypeName)? = spec["dtype"], case .array(let dims)? = spec["shape"] else {
            throw .notTFJS(path: path, reason: "a weightsManifest entry lacks name, dtype or shape")
        }
        func fail(_ r: String) -> TensorFlowError { .badTensor(path: path, tensor: name, reason: r) }
        var shape: [Int] = [], count = 1
        for d in dims {
            guard case .number(let s) = d, let n = Int(s), n >= 0 else { throw fail("has an invalid shape") }
            let (m, o) = count.multipliedReportingOverflow(by: n)
            guard !o, m <= 1 << 34 else { throw fail("shape \(shape) is too large") }
            shape.append(n)
            count = m
        }
        guard let original = weightDType(dtypeName) else { throw fail("has dtype '\(dtypeName)', which DLKit does not read") }
        var stored = original
        var scale = 1.0, minimum = 0.0
        if let q = spec["quantization"] {
            guard case .string(let qName)? = q["dtype"], let qt = weightDType(qName), [.uint8, .uint16, .float16].contains(qt) else {
                throw fail("has an unknown quantization dtype")
            }
            stored = qt
            if qt != .float16 {
                guard case .number(let s)? = q["scale"], case .number(let m)? = q["min"], let sv = Double(s), let mv = Double(m) else {
                    throw fail("is quantized without scale and min")
                }
                (scale, minimum) = (sv, mv)
            }
        }
        let size = count * stored.byteWidth
        guard size <= b.count else { throw fail("needs \(size) bytes but the shards hold \(b.count) more") }
        let raw: Tensor
        do { raw = try Tensor(dtype: stored, shape: shape, bytes: UnsafeRawBufferPointer(rebasing: b[0..<size])) } catch { throw fail("\(error)") }
        if stored == original { return (name, raw, size) }
        if stored == .float16 { return (name, raw.converted(to: original), size) }
        // Affine dequantization: the storage form of TF.js's uint8/uint16 weights.
        let values = raw.doubles().map { $0 * scale + minimum }
        let decoded = Tensor(shape: shape, scalars: values.map { Float($0) })
        return (name, original == .float32 ? decoded : decoded.converted(to: original), size)
    }

    private static func weightDType(_ name: String) -> DType? {
        switch name {
        case "float32": .float32
        case "int32": .int32
        case "bool": .bool
        case "uint8": .uint8
        case "uint16": .uint16
        case "float16": .float16
        case "int8": .int8
        case "int16": .int16
        default: nil
        }
    }

    // MARK: graph-models

    /// The graph of a graph-model: the GraphDef in `modelTopology`, its `signature` (or, without
    /// one, its Placeholders as inputs and its unconsumed nodes as outputs), weights as constants.
    public func graph(checkOps: Bool = true) throws(TensorFlowError) -> Graph {
        guard kind == .graphModel, let topology = json["modelTopology"] else {
            throw .notTFJS(path: path, reason: "a layers-model has no GraphDef (DLKit reads it through the Keras importer)")
        }
        var parts = SavedModelParts()
        parts.nodes = try TFJSGraphDef.nodes(topology["node"], path: path)
        if case .array(let fns)? = topology["library"]?["function"] {
            for f in fns {
                let fn = try TFJSGraphDef.function(f, path: path)
                parts.functions[fn.name] = fn
            }
        }
        parts.signatures["serving_default"] = try signature(parts.nodes)
        var importer = GraphImporter(path: path, model: parts, bundle: nil)
        for (name, t) in weights { importer.weightConstants[name] = t }
        var g = try importer.build(signature: "serving_default")
        if checkOps {
            do throws(GraphError) { try g.verifyAndSort() } catch { throw .graph(path: path, error) }
        }
        return g
    }

    private func signature(_ nodes: [TFNode]) throws(TensorFlowError) -> SavedModelParts.Signature {
        func infos(_ j: JSON?) throws(TensorFlowError) -> [(String, SavedModelParts.TensorInfo)] {
            guard case .object(let members)? = j else { return [] }
            var out: [(String, SavedModelParts.TensorInfo)] = []
            for m in members {
                guard case .string(let name)? = m.value["name"] else { throw .notTFJS(path: path, reason: "signature entry '\(m.key)' has no tensor name") }
                let dtype = m.value["dtype"].flatMap { if case .string(let s) = $0 { TFJSGraphDef.dataType(s) } else { nil } }
                out.append((m.key, SavedModelParts.TensorInfo(name: name, dtype: dtype ?? TENSORFLOW__DATA_TYPE__DT_FLOAT,
                                                              shape: TFJSGraphDef.shape(m.value["tensorShape"]))))
            }
            return out.sorted { $0.0 < $1.0 }
        }
        let sig = json["signature"]
        var inputs = try infos(sig?["inputs"]), outputs = try infos(sig?["outputs"])
        if inputs.isEmpty {
            for n in nodes where n.op == "Placeholder" {
                let dtype = n.type("dtype") ?? TENSORFLOW__DATA_TYPE__DT_FLOAT
                var shape: [Int]? = nil
                if case .shape(let s)? = n.attrs["shape"] { shape = s }
                inputs.append((n.name, SavedModelParts.TensorInfo(name: n.name + ":0", dtype: dtype, shape: shape)))
            }
        }
        if outputs.isEmpty {
            var consumed = Set<String>()
            for n in nodes { for i in n.inputs { consumed.insert(GraphImporter.nodeName(i)) } }
            for n in nodes where !consumed.contains(n.name) && n.op != "NoOp" && n.op != "Const" && n.op != "Placeholder" {
                outputs.append((n.name, SavedModelParts.TensorInfo(name: n.name + ":0", dtype: n.type("T") ?? TENSORFLOW__DATA_TYPE__DT_FLOAT, shape: nil)))
            }
        }
        guard !outputs.isEmpty else { throw .notTFJS(path: path, reason: "the graph has no outputs") }
        return SavedModelParts.Signature(inputs: inputs, outputs: outputs)
    }
}

/// A GraphDef in protobuf's JSON form (camelCase fields, int64 as strings, bytes as base64).
enum TFJSGraphDef {
    static func nodes(_ j: JSON?, path: String) throws(TensorFlowError) -> [TFNode] {
        guard case .array(let list)? = j else { return [] }
        var out: [TFNode] = []
        for n in list {
            guard case .string(let name)? = n["name"], case .string(let op)? = n["op"] else {
                throw .notTFJS(path: path, reason: "a node lacks name or op")
            }
            var inputs: [String] = []
            if case .array(let ins)? = n["input"] {
                for i in ins { if case .string(let s) = i, !s.hasPrefix("^") { inputs.append(s) } }
            }
            var attrs: [String: TFAttr] = [:]
            if case .object(let members)? = n["attr"] {
                for m in members { attrs[m.key] = attr(m.value) }
            }
            out.append(TFNode(name: name, op: op, inputs: inputs, attrs: attrs))
        }
        return out
    }

    static func function(_ f: JSON, path: String) throws(TensorFlowError) -> TFFunction {
        func argNames(_ j: JSON?) -> [String] {
            guard case .array(let a)? = j else { return [] }
            return a.compactMap { if case .string(let s)? = $0["name"] { s } else { nil } }
        }
        var ret: [String: String] = [:]
        if case .object(let members)? = f["ret"] {
            for m in members { if case .string(let s) = m.value { ret[m.key] = s } }
        }
        let sig = f["signature"]
        guard case .string(let name)? = sig?["name"] else { throw .notTFJS(path: path, reason: "a library function has no name") }
        return TFFunction(name: name, inputArgs: argNames(sig?["inputArg"]), outputArgs: argNames(sig?["outputArg"]),
                          nodes: try nodes(f["nodeDef"], path: path), ret: ret)
    }

    static func string(_ j: JSON?) -> String? { if case .string(let s)? = j { return s }; return nil }

    static func int(_ j: JSON?) -> Int? {
        switch j {
        case .string(let s)?: return Int(s)
        case .number(let s)?: return Int(s) ?? Double(s).flatMap { $0.isFinite && abs($0) < 9e18 ? Int($0) : nil }
        default: return nil
        }
    }

    static func double(_ j: JSON?) -> Double? {
        switch j {
        case .string(let s)?: return s == "NaN" ? .nan : s == "Infinity" ? .infinity : s == "-Infinity" ? -.infinity : Double(s)
        case .number(let s)?: return Double(s)
        default: return nil
        }
    }

    static func base64(_ j: JSON?) -> [UInt8]? {
        string(j).flatMap(Base64.decode)
    }

    static func dataType(_ name: String) -> Tensorflow__DataType? {
        let names = ["DT_INVALID", "DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_UINT8", "DT_INT16", "DT_INT8", "DT_STRING",
                     "DT_COMPLEX64", "DT_INT64", "DT_BOOL", "DT_QINT8", "DT_QUINT8", "DT_QINT32", "DT_BFLOAT16",
                     "DT_QINT16", "DT_QUINT16", "DT_UINT16", "DT_COMPLEX128", "DT_HALF", "DT_RESOURCE", "DT_VARIANT",
                     "DT_UINT32", "DT_UINT64"]
        return names.firstIndex(of: name).flatMap { Tensorflow__DataType(rawValue: UInt32($0)) }
    }

    static func shape(_ j: JSON?) -> [Int]? {
        guard let j else { return nil }
        if case .bool(true)? = j["unknownRank"] { return nil }
        guard case .array(let dims)? = j["dim"] else { return [] }
        var out: [Int] = []
        for d in dims { out.append(int(d["size"]) ?? -1) }
        return out
    }

    static func attr(_ a: JSON) -> TFAttr {
        if let t = string(a["type"]), let code = dataType(t) { return .type(code) }
        if a["i"] != nil, let v = int(a["i"]) { return .i(v) }
        if a["f"] != nil, let v = double(a["f"]) { return .f(Float(v)) }
        if case .bool(let b)? = a["b"] { return .b(b) }
        if let bytes = base64(a["s"]) { return .s(String(decoding: bytes, as: UTF8.self)) }
        if let s = a["shape"] { return .shape(shape(s)) }
        if let name = string(a["func"]?["name"]) { return .fn(name) }
        if let t = a["tensor"] { return .tensor(tensor(t)) }
        if let l = a["list"] {
            func items(_ k: String) -> [JSON] { if case .array(let v)? = l[k] { return v }; return [] }
            return .list(ints: items("i").compactMap { int($0) }, floats: items("f").compactMap { double($0).map { Float($0) } },
                         types: items("type").compactMap { string($0).flatMap(dataType) },
                         strings: items("s").compactMap { base64($0).map { String(decoding: $0, as: UTF8.self) } })
        }
        return .list(ints: [], floats: [], types: [], strings: [])
    }

    static func tensor(_ t: JSON) -> TFTensor {
        func items(_ k: String) -> [JSON] { if case .array(let v)? = t[k] { return v }; return [] }
        var v = TensorValues()
        v.content = base64(t["tensorContent"]) ?? []
        v.floats = items("floatVal").compactMap { double($0).map { Float($0) } }
        v.doubles = items("doubleVal").compactMap { double($0) }
        v.ints = items("intVal").compactMap { int($0).map { Int32(truncatingIfNeeded: $0) } }
        v.int64s = items("int64Val").compactMap { int($0).map { Int64($0) } }
        v.bools = items("boolVal").compactMap { if case .bool(let b) = $0 { b } else { nil } }
        v.halves = items("halfVal").compactMap { int($0).map { Int32(truncatingIfNeeded: $0) } }
        v.strings = items("stringVal").compactMap { base64($0).map { String(decoding: $0, as: UTF8.self) } }
        return v.tensor(dtype: string(t["dtype"]).flatMap(dataType) ?? TENSORFLOW__DATA_TYPE__DT_INVALID, shape: shape(t["tensorShape"]))
    }
}
