#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLSupport
import DLTensor

/// Writes IR graphs as ONNX models that `onnx.checker` accepts and ONNX Runtime 1.31 loads.
///
/// Names, doc strings, `metadata_props`, `value_info`, symbolic dims and opset imports are kept;
/// tensor data is written as `raw_data`, or to an external data file. The producer fields name
/// DLKit. The model is encoded with `ProtoMessage`: sizes are computed first, then the bytes are
/// streamed field by field, tensor bytes straight from their storage (often a mapped file), so
/// the serialized model never exists whole in memory.
public enum ONNXWriter {
    public static let producerName = "dlkit"
    public static let producerVersion = "0.1.0"
    /// The newest IR version ONNX Runtime 1.31 loads.
    public static let maxIRVersion = 13

    /// Writes `graph` to `path` atomically, streaming tensor bytes from their storage.
    ///
    /// With external data (asked for, or needed because the weights pass the 2 GiB protobuf
    /// limit) the initializers of at least `options.externalThreshold` bytes go to one file,
    /// `<path>.data`, each at an offset that is a multiple of 4096. Both files are written to
    /// temporary files first; the data file is renamed into place, then the model. A failure
    /// leaves neither.
    /// - Throws: `ONNXError.opsetConversion` listing every node that blocks `options.opset`,
    ///   `.tooLarge` when the model cannot fit, `.write` when the disk refuses.
    @discardableResult
    public static func write(_ graph: Graph, to path: String, options: ONNXWriteOptions = ONNXWriteOptions())
        throws(ONNXError) -> ONNXWriteReport
    {
        var graph = graph
        var report = ONNXWriteReport(opset: graph.metadata.onnxOpset ?? defaultOpset, irVersion: 0)
        if let target = options.opset {
            report.convertedNodes = try OpsetConverter.convert(&graph, to: target, path: path)
            report.opset = target
        }
        graph = NormalForm.writtenForm(graph, opset: report.opset)
        report.irVersion = irVersion(for: graph)
        var inline = model(graph, includeInitializers: true)
        report.inlineModelBytes = inline.byteCount
        let external: Bool
        switch options.externalData {
        case .always: external = true
        case .never: external = false
        case .automatic:
            external = inline.byteCount > ONNXReader.maxModelBytes
            report.switchedToExternalData = external
        }
        guard external else {
            guard inline.byteCount <= ONNXReader.maxModelBytes else { throw .tooLarge(path: path, bytes: inline.byteCount) }
            do {
                let w = try AtomicFileWriter(path: path)
                try inline.stream { (b) throws(AtomicFileError) in try w.write(b) }
                try w.commit()
            } catch { throw .write(path: path, reason: "\(error)") }
            return report
        }
        let dataPath = path + ".data"
        let location = dataPath.split(separator: "/").last.map(String.init) ?? dataPath
        let layout = ExternalDataLayout(graph.initializers, location: location,
                                        threshold: max(0, options.externalThreshold))
        var m = model(graph, includeInitializers: true, external: layout)
        guard m.byteCount <= ONNXReader.maxModelBytes else {
            throw .write(path: path, reason: "the model is \(m.byteCount) bytes even with \(layout.entries.count) tensors as external data, over the 2 GiB protobuf limit; lower the external-data threshold")
        }
        if !layout.entries.isEmpty {
            report.dataPath = dataPath
            report.externalTensors = layout.entries.count
            report.externalBytes = layout.entries.reduce(0) { $0 + $1.tensor.byteCount }
        }
        // Both files go to temporary files first; rename data, then model; on any failure remove both.
        do {
            let data = layout.entries.isEmpty ? nil : try AtomicFileWriter(path: dataPath)
            if let data { try layout.stream(to: data) }
            let w = try AtomicFileWriter(path: path)
            do { try m.stream { (b) throws(AtomicFileError) in try w.write(b) } } catch {
                data?.abandon()
                throw error
            }
            if let data {
                do { try data.commit() } catch { w.abandon(); throw error }
            }
            do { try w.commit() } catch {
                if data != nil { unlink(dataPath) }
                throw error
            }
        } catch { throw .write(path: path, reason: "\(error)") }
        return report
    }

    /// The opset written for graphs that name none (built in Swift, or from Keras).
    public static let defaultOpset = 17

    /// The serialized model. With `includeInitializers: false` the initializers are left out
    /// (the checkpoint stores them as safetensors and keeps only the graph here).
    /// With `keepSource: true` the producer fields and IR version are the source's, as read
    /// (the checkpoint stores the graph this way so that converting back loses nothing).
    public static func serialize(_ graph: Graph, includeInitializers: Bool = true, keepSource: Bool = false) -> [UInt8] {
        let written = NormalForm.writtenForm(graph, opset: graph.metadata.onnxOpset ?? defaultOpset)
        var m = model(written, includeInitializers: includeInitializers, keepSource: keepSource)
        return m.serialized()
    }

    /// The lowest IR version that carries each ai.onnx opset (onnx.helper.VERSION_TABLE).
    static func minimumIRVersion(opset: Int) -> Int {
        switch opset {
        case ...8: 3
        case 9: 4
        case 10: 5
        case 11: 6
        case ...14: 7
        case ...18: 8
        case ...20: 9
        case ...22: 10
        case 23: 11
        case 24: 12
        default: 13
        }
    }

    /// The IR version to write: the source's when ONNX Runtime can load it and it carries the
    /// opset, else the one that matches the opset.
    static func irVersion(for graph: Graph) -> Int {
        let fromOpset = min(minimumIRVersion(opset: graph.metadata.onnxOpset ?? defaultOpset), maxIRVersion)
        let source = graph.metadata.irVersion
        if source >= fromOpset && source <= maxIRVersion { return source }
        return fromOpset
    }

    static func model(_ graph: Graph, includeInitializers: Bool, keepSource: Bool = false,
                      external: ExternalDataLayout? = nil) -> ProtoMessage {
        var m = ProtoMessage()
        let meta = graph.metadata
        let ir = keepSource && meta.irVersion > 0 ? meta.irVersion : irVersion(for: graph)
        m.int(1, ir)
        m.string(2, keepSource ? meta.producerName : producerName)
        m.string(3, keepSource ? meta.producerVersion : producerVersion)
        m.optionalString(4, meta.domain)
        if meta.modelVersion != 0 { m.int(5, meta.modelVersion) }
        m.optionalString(6, meta.docString)
        // Before IR 4 every initializer had to be listed as a graph input too.
        m.message(7, self.graph(graph, includeInitializers: includeInitializers, external: external,
                                initializersAsInputs: ir < 4 && includeInitializers))
        let opsets = meta.opsetImports.isEmpty ? [(domain: "", version: defaultOpset)] : meta.opsetImports
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

    static func graph(_ g: Graph, includeInitializers: Bool, external: ExternalDataLayout? = nil,
                      initializersAsInputs: Bool = false) -> ProtoMessage {
        var m = ProtoMessage()
        for n in g.nodes { m.message(1, node(n)) }
        m.string(2, g.name.isEmpty ? "graph" : g.name)
        if includeInitializers {
            for (name, t) in g.initializers {
                if let e = external?.offsets[name] {
                    m.message(5, externalTensor(t, name: name, location: e.location, offset: e.offset))
                } else {
                    m.message(5, tensor(t, name: name))
                }
            }
        }
        m.optionalString(10, g.docString)
        for v in g.inputs { m.message(11, valueInfo(v)) }
        let listed = initializersAsInputs ? g.initializers.names : g.overridableInitializers
        for name in listed {
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
        if t.dtype.bitWidth < 8 {
            m.bytes(9, packed(t))
        } else if t.dtype != .string {
            m.tensorBytes(9, t)
        }
        return m
    }

    /// The elements of a 4- or 2-bit tensor packed low bits first, as ONNX stores them.
    static func packed(_ t: Tensor) -> [UInt8] {
        let bits = t.dtype.bitWidth, perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        var out = [UInt8](repeating: 0, count: t.dtype.packedByteCount(t.elementCount))
        t.withUnsafeBytes { src in
            for i in 0..<t.elementCount { out[i / perByte] |= (src[i] & mask) << UInt8((i % perByte) * bits) }
        }
        return out
    }

    /// A TensorProto whose bytes live at `offset` of the data file `location`.
    static func externalTensor(_ t: Tensor, name: String, location: String, offset: Int) -> ProtoMessage {
        var m = ProtoMessage()
        for d in t.shape { m.int(1, d) }
        m.int(2, Int(t.dtype.onnxCode))
        m.optionalString(8, name)
        for (k, v) in [("location", location), ("offset", String(offset)), ("length", String(t.byteCount))] {
            var e = ProtoMessage()
            e.string(1, k)
            e.string(2, v)
            m.message(13, e)
        }
        m.int(14, 1)  // data_location: EXTERNAL
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
