import DLGraph
import DLTensor

/// Writes IR graphs as ONNX models that `onnx.checker` accepts and ONNX Runtime 1.31 loads.
///
/// Names, doc strings, `metadata_props`, `value_info`, symbolic dims and opset imports are kept;
/// tensor data is written as `raw_data`. The producer fields name DLKit.
public enum ONNXWriter {
    public static let producerName = "dlkit"
    public static let producerVersion = "0.1.0"
    /// The newest IR version ONNX Runtime 1.31 loads.
    public static let maxIRVersion = 13

    /// Writes `graph` to `path` atomically, streaming tensor bytes from their storage.
    public static func write(_ graph: Graph, to path: String) throws(ONNXError) {
        var m = model(graph, includeInitializers: true)
        guard m.byteCount <= ONNXReader.maxModelBytes else {
            throw .write(path: path, reason: "the model would be \(m.byteCount) bytes, over the 2 GiB protobuf limit; external data writing is not supported yet")
        }
        do {
            let w = try AtomicFileWriter(path: path)
            try m.stream { (b) throws(AtomicFileError) in try w.write(b) }
            try w.commit()
        } catch { throw .write(path: path, reason: "\(error)") }
    }

    /// The serialized model. With `includeInitializers: false` the initializers are left out
    /// (the checkpoint stores them as safetensors and keeps only the graph here).
    /// With `keepSource: true` the producer fields and IR version are the source's, as read
    /// (the checkpoint stores the graph this way so that converting back loses nothing).
    public static func serialize(_ graph: Graph, includeInitializers: Bool = true, keepSource: Bool = false) -> [UInt8] {
        var m = model(graph, includeInitializers: includeInitializers, keepSource: keepSource)
        return m.serialized()
    }

    /// The IR version to write: the source's when ONNX Runtime can load it, else the one that
    /// matches the opset.
    static func irVersion(for graph: Graph) -> Int {
        let source = graph.metadata.irVersion
        if source >= 3 && source <= maxIRVersion { return source }
        let opset = graph.metadata.onnxOpset ?? 17
        let fromOpset = switch opset {
        case ...8: 3
        case ...10: 5
        case ...11: 6
        case ...14: 7
        case ...18: 8
        case ...20: 9
        case ...22: 10
        default: 11
        }
        return min(fromOpset, maxIRVersion)
    }

    static func model(_ graph: Graph, includeInitializers: Bool, keepSource: Bool = false) -> ProtoMessage {
        var m = ProtoMessage()
        let meta = graph.metadata
        m.int(1, keepSource && meta.irVersion > 0 ? meta.irVersion : irVersion(for: graph))
        m.string(2, keepSource ? meta.producerName : producerName)
        m.string(3, keepSource ? meta.producerVersion : producerVersion)
        m.optionalString(4, meta.domain)
        if meta.modelVersion != 0 { m.int(5, meta.modelVersion) }
        m.optionalString(6, meta.docString)
        m.message(7, self.graph(graph, includeInitializers: includeInitializers))
        let opsets = meta.opsetImports.isEmpty ? [(domain: "", version: 17)] : meta.opsetImports
        for o in opsets {
            var op = ProtoMessage()
            op.string(1, o.domain)
            op.int(2, o.version)
            m.message(8, op)
        }
        for p in meta.metadataProps {
            var e = ProtoMessage()
            e.string(1, p.key)
            e.string(2, p.value)
            m.message(14, e)
        }
        return m
    }

    static func graph(_ g: Graph, includeInitializers: Bool) -> ProtoMessage {
        var m = ProtoMessage()
        for n in g.nodes { m.message(1, node(n)) }
        m.string(2, g.name.isEmpty ? "graph" : g.name)
        if includeInitializers {
            for (name, t) in g.initializers { m.message(5, tensor(t, name: name)) }
        }
        m.optionalString(10, g.docString)
        for v in g.inputs { m.message(11, valueInfo(v)) }
        for name in g.overridableInitializers {
            if let t = g.initializers[name] {
                m.message(11, valueInfo(ValueInfo(name: name, type: TensorType(dtype: t.dtype, shape: t.shape))))
            }
        }
        for v in g.outputs { m.message(12, valueInfo(v)) }
        for v in g.valueInfo { m.message(13, valueInfo(v)) }
        return m
    }

    static func node(_ n: Node) -> ProtoMessage {
        var m = ProtoMessage()
        for i in n.inputs { m.string(1, i) }
        for o in n.outputs { m.string(2, o) }
        m.optionalString(3, n.name)
        m.string(4, n.opType)
        for a in n.attributes { m.message(5, attribute(a)) }
        m.optionalString(6, n.docString)
        m.optionalString(7, n.domain)
        return m
    }

    static func attribute(_ a: Attribute) -> ProtoMessage {
        var m = ProtoMessage()
        m.string(1, a.name)
        let type: Int
        switch a.value {
        case .float(let f): m.float(2, f); type = 1
        case .int(let i): m.int(3, i); type = 2
        case .string(let s): m.string(4, s); type = 3
        case .tensor(let t): m.message(5, tensor(t, name: "")); type = 4
        case .graph(let g): m.message(6, graph(g, includeInitializers: true)); type = 5
        case .floats(let fs): for f in fs { m.float(7, f) }; type = 6
        case .ints(let is_): for i in is_ { m.int(8, i) }; type = 7
        case .strings(let ss): for s in ss { m.string(9, s) }; type = 8
        case .tensors(let ts): for t in ts { m.message(10, tensor(t, name: "")) }; type = 9
        case .graphs(let gs): for g in gs { m.message(11, graph(g, includeInitializers: true)) }; type = 10
        case .type(let k): m.message(14, typeProto(k)); type = 13
        }
        m.optionalString(13, a.docString)
        m.int(20, type)
        return m
    }

    static func tensor(_ t: Tensor, name: String) -> ProtoMessage {
        var m = ProtoMessage()
        for d in t.shape { m.int(1, d) }
        m.int(2, Int(t.dtype.onnxCode))
        if t.dtype == .string {
            for s in t.strings { m.string(6, s) }
        }
        m.optionalString(8, name)
        if t.dtype != .string { m.tensorBytes(9, t) }
        return m
    }

    static func valueInfo(_ v: ValueInfo) -> ProtoMessage {
        var m = ProtoMessage()
        m.string(1, v.name)
        if let kind = v.container ?? v.type.map({ ValueKind.tensor($0) }) {
            m.message(2, typeProto(kind))
        }
        m.optionalString(3, v.docString)
        return m
    }

    /// A `TypeProto`: tensor_type (1), sequence_type (4) or optional_type (9).
    static func typeProto(_ kind: ValueKind) -> ProtoMessage {
        var tp = ProtoMessage()
        switch kind {
        case .tensor(let t):
            var tt = ProtoMessage()
            if let t {
                tt.int(1, Int(t.dtype.onnxCode))
                if let dims = t.dims {
                    var shape = ProtoMessage()
                    for d in dims {
                        var dm = ProtoMessage()
                        switch d {
                        case .fixed(let n): dm.int(1, n)
                        case .symbolic(let s): dm.string(2, s)
                        case .unknown: break
                        }
                        shape.message(1, dm)
                    }
                    tt.message(2, shape)
                }
            }
            tp.message(1, tt)
        case .sequence(let e), .optional(let e):
            var inner = ProtoMessage()
            inner.message(1, typeProto(e))
            if case .sequence = kind { tp.message(4, inner) } else { tp.message(9, inner) }
        }
        return tp
    }
}
