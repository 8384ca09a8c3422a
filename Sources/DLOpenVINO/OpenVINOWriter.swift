import DLGraph
import DLSupport
import DLTensor
import Foundation

/// Writes a `Graph` as OpenVINO IR v11: `model.xml` and `model.bin` beside it.
///
/// ```swift
/// try OpenVINOWriter.write(graph, to: "model.xml")                        // f32 weights
/// try OpenVINOWriter.write(graph, to: "model.xml", compressToFP16: true)  // f16 Const + Convert
/// ```
/// Both files appear whole or not at all (temporary files, fsync, rename; the `.bin` first).
/// Graph ops (ONNX semantics) become OpenVINO opset1..opset14 layers (OpenVINOWriter+Ops.swift);
/// ops with no translation are listed all at once before anything is written.
public enum OpenVINOWriter {
    public static func write(_ graph: Graph, to path: String, compressToFP16: Bool = false) throws(OpenVINOError) {
        var b = IRBuilder(graph: graph, path: path, compress: compressToFP16)
        try b.build()
        let binPath = OpenVINOReader.binPath(forXML: path)
        let xml = b.renderXML()
        do {
            let binFile = try AtomicFileWriter(path: binPath)
            let xmlFile = try AtomicFileWriter(path: path)
            do {
                try binFile.write(b.bin)
                try xmlFile.write(xml)
                try binFile.commit()
                try xmlFile.commit()
            } catch {
                binFile.abandon()
                xmlFile.abandon()
                throw error
            }
        } catch { throw .cannotWrite(path: path, reason: "\(error)") }
    }

    /// The graph ops the writer translates.
    public static var supportedOps: Set<String> { IRBuilder.supported }
}

/// A port of a layer being written: where a graph value comes from.
struct OVPort {
    var layer: Int
    var port: Int
}

/// One layer being written.
struct OVLayer {
    struct Port {
        var id: Int
        var type: TensorType?
        var names: [String] = []
    }
    var id: Int
    var name: String
    var type: String
    var version: String
    var data: [(String, String)]
    var inputs: [Port]
    var outputs: [Port]
    var rtInfo = ""
}

struct IRBuilder {
    let graph: Graph
    let path: String
    let compress: Bool
    var layers: [OVLayer] = []
    var edges: [(from: OVPort, to: OVPort)] = []
    var bin: [UInt8] = []
    /// Graph value -> the port that produces it.
    var produced: [String: OVPort] = [:]
    var types: [String: TensorType] = [:]
    /// Values known before running: initializers and Constant outputs.
    var constants: [String: Tensor] = [:]

    init(graph: Graph, path: String, compress: Bool) {
        self.graph = graph
        self.path = path
        self.compress = compress
        types = (try? graph.inferTypes()) ?? [:]
        for (name, t) in graph.initializers { constants[name] = t }
        for n in graph.nodes where n.opType == "Constant" {
            if let t = try? ConstantOp.value(of: n), let o = n.outputs.first { constants[o] = t }
        }
    }

    func fail(_ n: Node, _ reason: String) -> OpenVINOError {
        .unsupportedForWriting(path: path, ops: ["\(n.opType) (node \(n.displayName): \(reason))": 1])
    }

    mutating func build() throws(OpenVINOError) {
        var unsupported: [String: Int] = [:]
        for n in graph.nodes where !Self.supported.contains(n.opType) || !(n.domain.isEmpty || n.domain == "ai.onnx") {
            unsupported[n.domain.isEmpty ? n.opType : "\(n.domain).\(n.opType)", default: 0] += 1
        }
        if !unsupported.isEmpty { throw .unsupportedForWriting(path: path, ops: unsupported) }
        for v in graph.inputs {
            guard let t = v.type, IRElement.name(t.dtype) != nil else {
                throw .unsupportedForWriting(path: path, ops: ["input '\(v.name)' of type \(v.type.map(\.description) ?? "unknown")": 1])
            }
            let shape = t.dims.map { $0.map { $0.value.map(String.init) ?? "?" }.joined(separator: ",") } ?? "..."
            let p = add("Parameter", "opset1", name: v.name, [], data: [("shape", shape), ("element_type", IRElement.name(t.dtype) ?? "f32")],
                        outputs: [t], names: [[v.name]])[0]
            produced[v.name] = p
        }
        for (name, t) in graph.initializers { produced[name] = try constant(t, name: name) }
        for n in graph.nodes { try translate(n) }
        for v in graph.outputs {
            guard let p = produced[v.name] else {
                throw .unsupportedForWriting(path: path, ops: ["output '\(v.name)' is not produced": 1])
            }
            // The output's name must be a tensor name of the port feeding the Result.
            name(p, v.name)
            _ = add("Result", "opset1", name: v.name + "/sink_port_0", [p], outputs: [])
        }
    }

    /// Adds `name` to the tensor names of port `p`.
    mutating func name(_ p: OVPort, _ name: String) {
        guard let i = layers.firstIndex(where: { $0.id == p.layer }),
              let j = layers[i].outputs.firstIndex(where: { $0.id == p.port }) else { return }
        if !layers[i].outputs[j].names.contains(name) { layers[i].outputs[j].names.append(name) }
    }

    /// Appends a layer reading `inputs`; returns its output ports.
    @discardableResult
    mutating func add(_ type: String, _ version: String, name: String, _ inputs: [OVPort], data: [(String, String)] = [],
                      outputs: [TensorType?], names: [[String]] = []) -> [OVPort] {
        let id = layers.count
        var layer = OVLayer(id: id, name: name.isEmpty ? "\(type)_\(id)" : name, type: type, version: version, data: data,
                            inputs: [], outputs: [])
        for (i, src) in inputs.enumerated() {
            layer.inputs.append(OVLayer.Port(id: i, type: portType(src)))
            edges.append((src, OVPort(layer: id, port: i)))
        }
        var out: [OVPort] = []
        for (k, t) in outputs.enumerated() {
            let pid = inputs.count + k
            layer.outputs.append(OVLayer.Port(id: pid, type: t, names: k < names.count ? names[k] : []))
            out.append(OVPort(layer: id, port: pid))
        }
        layers.append(layer)
        return out
    }

    func portType(_ p: OVPort) -> TensorType? {
        guard p.layer < layers.count else { return nil }
        return layers[p.layer].outputs.first { $0.id == p.port }?.type
    }

    /// A Const layer holding `t` (f32 written as f16 + Convert when compressing and in range).
    mutating func constant(_ t: Tensor, name: String) throws(OpenVINOError) -> OVPort {
        guard let et = IRElement.name(t.dtype) else {
            throw .unsupportedForWriting(path: path, ops: ["constant '\(name)' of dtype \(t.dtype)": 1])
        }
        if compress, t.dtype == .float32, t.elementCount > 1, t.doubles().allSatisfy({ abs($0) <= 65504 }) {
            let half = t.converted(to: .float16)
            let c = appendConst(half, element: "f16", name: name + "_compressed")
            let p = add("Convert", "opset1", name: name, [c], data: [("destination_type", "f32")],
                        outputs: [TensorType(dtype: .float32, shape: t.shape)], names: [[name]])[0]
            layers[p.layer].rtInfo = "<attribute name=\"decompression\" version=\"0\" />"
            return p
        }
        let p = appendConst(t, element: et, name: name)
        self.name(p, name)
        return p
    }

    /// Writes `t`'s bytes to the `.bin` (aligned to the element width; sub-byte types packed low
    /// nibble first) and adds its Const layer.
    mutating func appendConst(_ t: Tensor, element: String, name: String) -> OVPort {
        let width = max(t.dtype.byteWidth, 1)
        while bin.count % width != 0 { bin.append(0) }
        let offset = bin.count
        if t.dtype.bitWidth == 4 {
            let v = t.withUnsafeBytes { Array($0) }
            var i = 0
            while i < v.count {
                let lo = v[i] & 0x0F, hi = i + 1 < v.count ? v[i + 1] & 0x0F : 0
                bin.append(lo | hi << 4)
                i += 2
            }
        } else {
            t.withUnsafeBytes { bin.append(contentsOf: $0) }
        }
        let shape = t.shape.map(String.init).joined(separator: ",")
        return add("Const", "opset1", name: name, [],
                   data: [("element_type", element), ("shape", shape), ("offset", String(offset)), ("size", String(bin.count - offset))],
                   outputs: [TensorType(dtype: t.dtype, shape: t.shape)])[0]
    }

    // MARK: Rendering

    func renderXML() -> String {
        var s = "<?xml version=\"1.0\"?>\n<net name=\"\(Self.escape(graph.name.isEmpty ? "model" : graph.name))\" version=\"11\">\n\t<layers>\n"
        for l in layers {
            s += "\t\t<layer id=\"\(l.id)\" name=\"\(Self.escape(l.name))\" type=\"\(l.type)\" version=\"\(l.version)\">\n"
            if !l.data.isEmpty {
                s += "\t\t\t<data" + l.data.map { " \($0.0)=\"\(Self.escape($0.1))\"" }.joined() + " />\n"
            }
            if !l.rtInfo.isEmpty { s += "\t\t\t<rt_info>\n\t\t\t\t\(l.rtInfo)\n\t\t\t</rt_info>\n" }
            for (tag, ports) in [("input", l.inputs), ("output", l.outputs)] where !ports.isEmpty {
                s += "\t\t\t<\(tag)>\n"
                for p in ports {
                    let precision = p.type.map { IRElement.precision($0.dtype) } ?? "FP32"
                    let names = p.names.isEmpty ? "" : " names=\"\(Self.escape(p.names.map { $0.replacingOccurrences(of: ",", with: "\\,") }.joined(separator: ",")))\""
                    s += "\t\t\t\t<port id=\"\(p.id)\" precision=\"\(precision)\"\(names)"
                    if let dims = p.type?.dims, !dims.isEmpty {
                        s += ">\n" + dims.map { "\t\t\t\t\t<dim>\($0.value ?? -1)</dim>\n" }.joined() + "\t\t\t\t</port>\n"
                    } else {
                        s += " />\n"
                    }
                }
                s += "\t\t\t</\(tag)>\n"
            }
            s += "\t\t</layer>\n"
        }
        s += "\t</layers>\n\t<edges>\n"
        for e in edges {
            s += "\t\t<edge from-layer=\"\(e.from.layer)\" from-port=\"\(e.from.port)\" to-layer=\"\(e.to.layer)\" to-port=\"\(e.to.port)\" />\n"
        }
        s += "\t</edges>\n\t<rt_info>\n\t\t<Runtime_version value=\"dlkit\" />\n\t</rt_info>\n</net>\n"
        return s
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            default: out.append(c)
            }
        }
        return out
    }
}
