import DLGraph
import DLTensor

/// Builds a `Graph` from an `IRDocument`: one pass that names every output port, then one
/// translation per layer (IRImporter+Ops.swift). Translation only: no layer is evaluated.
struct IRImporter {
    let doc: IRDocument
    let bin: MappedFile?
    let path: String
    let binPath: String

    var layerByID: [Int: IRLayer] = [:]
    /// (layer, input port) -> (layer, output port) feeding it.
    var source: [PortKey: PortKey] = [:]
    /// The value name of every output port.
    var valueName: [PortKey: String] = [:]
    var usedNames: Set<String> = []

    var nodes: [Node] = []
    var initializers: [(String, Tensor)] = []
    var inputs: [ValueInfo] = []
    var outputs: [ValueInfo] = []
    /// Tensors of Const layers by layer id (read once; attributes such as a Transpose order come
    /// from them).
    var constants: [Int: Tensor] = [:]

    struct PortKey: Hashable { var layer: Int, port: Int }

    init(doc: IRDocument, bin: MappedFile?, path: String, binPath: String) throws(OpenVINOError) {
        self.doc = doc
        self.bin = bin
        self.path = path
        self.binPath = binPath
        for l in doc.layers {
            guard layerByID[l.id] == nil else { throw .invalidIR(path: path, reason: "two layers have id \(l.id)") }
            layerByID[l.id] = l
        }
        for e in doc.edges {
            guard let from = layerByID[e.fromLayer], from.outputs.contains(where: { $0.id == e.fromPort }) else {
                throw .invalidIR(path: path, reason: "edge from layer \(e.fromLayer) port \(e.fromPort): no such output port")
            }
            guard let to = layerByID[e.toLayer], to.inputs.contains(where: { $0.id == e.toPort }) else {
                throw .invalidIR(path: path, reason: "edge to layer \(e.toLayer) port \(e.toPort): no such input port")
            }
            let key = PortKey(layer: e.toLayer, port: e.toPort)
            guard source[key] == nil else {
                throw .invalidIR(path: path, reason: "layer \(to.displayName) input port \(e.toPort) has two edges")
            }
            source[key] = PortKey(layer: e.fromLayer, port: e.fromPort)
        }
        // Names: a port's first tensor name, else the layer name (with the port when it has several).
        for l in doc.layers where l.type != "Result" {
            for p in l.outputs {
                var base = p.names.first ?? (l.outputs.count == 1 ? l.name : "\(l.name):\(p.id)")
                if base.isEmpty { base = "\(l.type)_\(l.id):\(p.id)" }
                valueName[PortKey(layer: l.id, port: p.id)] = unique(base)
            }
        }
    }

    /// `base`, or `base_2`, `base_3`, ... when taken.
    mutating func unique(_ base: String) -> String {
        var name = base, n = 1
        while usedNames.contains(name) { n += 1; name = "\(base)_\(n)" }
        usedNames.insert(name)
        return name
    }

    func fail(_ l: IRLayer, _ reason: String) -> OpenVINOError {
        .invalidLayer(path: path, layer: l.displayName, reason: reason)
    }

    /// The value names feeding `l`'s input ports, in port order.
    func inputNames(_ l: IRLayer) throws(OpenVINOError) -> [String] {
        var out: [String] = []
        for p in l.inputs {
            guard let s = source[PortKey(layer: l.id, port: p.id)], let name = valueName[s] else {
                throw fail(l, "input port \(p.id) has no edge")
            }
            out.append(name)
        }
        return out
    }

    mutating func build() throws(OpenVINOError) -> Graph {
        for l in doc.layers where l.type == "Const" { constants[l.id] = try readConst(l) }
        for l in doc.layers {
            let ins = try inputNames(l)
            let outs = l.outputs.map { valueName[PortKey(layer: l.id, port: $0.id)] ?? "" }
            try translate(l, ins, outs)
        }
        var g = Graph(name: doc.name, inputs: inputs, outputs: outputs, nodes: nodes, initializers: NamedTensors(initializers))
        g.metadata.opsetImports = [(domain: "", version: OpenVINOReader.onnxOpset)]
        g.metadata.producerName = "OpenVINO IR v\(doc.version)"
        do { try g.verifyAndSort() } catch { throw .invalidIR(path: path, reason: "\(error)") }
        return g
    }

    // MARK: Constants

    /// Reads a Const layer's bytes from the `.bin`: range checked against the file, size against
    /// the element type and shape. Aligned data is viewed in place; unaligned or packed copied.
    func readConst(_ l: IRLayer) throws(OpenVINOError) -> Tensor {
        guard let et = l.data["element_type"], let dtype = IRElement.dtype(et) else {
            throw fail(l, "element_type '\(l.data["element_type"] ?? "missing")' is not one DLKit reads")
        }
        guard let dims = IRShape.dims(l.data["shape"] ?? ""), let shape = IRShape.concrete(dims) else {
            throw fail(l, "shape '\(l.data["shape"] ?? "")' is not a static shape")
        }
        guard let count = ShapeMath.elementCount(shape) else { throw fail(l, "shape \(shape) is too large") }
        guard let offset = Int(l.data["offset"] ?? ""), let size = Int(l.data["size"] ?? ""), offset >= 0, size >= 0 else {
            throw fail(l, "offset '\(l.data["offset"] ?? "missing")' / size '\(l.data["size"] ?? "missing")' are not byte counts")
        }
        let (need, o) = count.multipliedReportingOverflow(by: dtype.bitWidth)
        guard !o, (need + 7) / 8 == size else {
            throw fail(l, "size \(size) does not match \(et) \(shape) (\(o ? "overflow" : String((need + 7) / 8)) bytes)")
        }
        guard let bin else { throw fail(l, "its data is in \(binPath), which does not exist") }
        guard offset <= bin.byteCount, size <= bin.byteCount - offset else {
            throw fail(l, "\(size) bytes at offset \(offset) are outside \(binPath) (\(bin.byteCount) bytes)")
        }
        if dtype.bitWidth < 8 {
            // Packed sub-byte integers: low nibble first; unpacked to a byte each (signed extended).
            var out = [Int8](repeating: 0, count: count)
            let b = bin.bytes
            for i in 0..<count {
                let byte = b[offset + i / 2]
                let nib = i % 2 == 0 ? byte & 0x0F : byte >> 4
                out[i] = dtype == .int4 && nib >= 8 ? Int8(Int(nib) - 16) : Int8(nib)
            }
            do {
                return try out.withUnsafeBytes { (raw) throws(TensorError) in try Tensor(dtype: dtype, shape: shape, bytes: raw) }
            } catch { throw fail(l, "\(error)") }
        }
        do {
            if offset % max(dtype.byteWidth, 1) == 0 {
                return try Tensor(dtype: dtype, shape: shape, viewing: bin, offset: offset)
            }
            return try Tensor(dtype: dtype, shape: shape, bytes: UnsafeRawBufferPointer(rebasing: bin.bytes[offset..<(offset + size)]))
        } catch { throw fail(l, "\(error)") }
    }

    /// The tensor of the Const layer feeding input `i` of `l`, if it is one; through a Convert
    /// too (an fp16-compressed IR decompresses every constant so), in the Const's own type.
    func constant(_ l: IRLayer, _ i: Int) -> Tensor? {
        guard i < l.inputs.count, let s = source[PortKey(layer: l.id, port: l.inputs[i].id)] else { return nil }
        if let t = constants[s.layer] { return t }
        guard let convert = layerByID[s.layer], convert.type == "Convert", !convert.inputs.isEmpty,
              let c = source[PortKey(layer: convert.id, port: convert.inputs[0].id)] else { return nil }
        return constants[c.layer]
    }

    /// The integers of a constant input (an axis list, an order, a split): nil when not constant.
    func constantInts(_ l: IRLayer, _ i: Int) -> [Int]? {
        constant(l, i).flatMap(IRShape.integers)
    }

    func requireInts(_ l: IRLayer, _ i: Int, _ what: String) throws(OpenVINOError) -> [Int] {
        guard let v = constantInts(l, i) else { throw fail(l, "\(what) (input \(i)) must be an integer Const") }
        return v
    }

    // MARK: Emitting

    mutating func emit(_ op: String, _ ins: [String], _ outs: [String], _ attrs: [Attribute] = [], name: String = "") {
        nodes.append(Node(name: name, opType: op, inputs: ins, outputs: outs, attributes: attrs))
    }

    /// A fresh value name derived from `base`.
    mutating func temp(_ base: String) -> String { unique(base) }

    /// Emits `op` into a fresh value and returns its name.
    mutating func value(_ op: String, _ ins: [String], _ attrs: [Attribute] = [], base: String) -> String {
        let out = temp(base)
        emit(op, ins, [out], attrs)
        return out
    }

    mutating func constantValue(_ t: Tensor, base: String) -> String {
        let n = temp(base)
        initializers.append((n, t))
        return n
    }

    mutating func ints(_ v: [Int], base: String, scalar: Bool = false) -> String {
        constantValue(Tensor(shape: scalar ? [] : [v.count], scalars: v.map { Int64($0) }), base: base)
    }

    mutating func float(_ v: Float, base: String) -> String {
        constantValue(Tensor(shape: [], scalars: [v]), base: base)
    }

    /// `name` as int64 (shape and index inputs of IR may be i32).
    mutating func asInt64(_ l: IRLayer, _ i: Int, _ name: String) -> String {
        let p = i < l.inputs.count ? l.inputs[i].precision.uppercased() : "I64"
        if p == "I64" || p.isEmpty { return name }
        return value("Cast", [name], [Attribute(name: "to", value: .int(Int(DType.int64.onnxCode)))], base: name + "_i64")
    }

    func rank(_ l: IRLayer, input i: Int) -> Int? { i < l.inputs.count ? l.inputs[i].dims.count : nil }

    func dims(_ l: IRLayer, input i: Int) -> [Int?]? { i < l.inputs.count ? l.inputs[i].dims : nil }

    func dtype(_ port: IRPort) -> DType? { IRElement.dtype(port.precision) }

    // MARK: Attributes of <data>

    func attrInts(_ l: IRLayer, _ key: String, default d: [Int]? = nil) throws(OpenVINOError) -> [Int] {
        guard let s = l.data[key] else {
            if let d { return d }
            throw fail(l, "has no '\(key)'")
        }
        guard let v = IRShape.ints(s) else { throw fail(l, "'\(key)' is '\(s)', not a list of integers") }
        return v
    }

    func attrInt(_ l: IRLayer, _ key: String, default d: Int? = nil) throws(OpenVINOError) -> Int {
        guard let s = l.data[key] else {
            if let d { return d }
            throw fail(l, "has no '\(key)'")
        }
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw fail(l, "'\(key)' is '\(s)', not an integer") }
        return v
    }

    func attrFloat(_ l: IRLayer, _ key: String, default d: Float? = nil) throws(OpenVINOError) -> Float {
        guard let s = l.data[key] else {
            if let d { return d }
            throw fail(l, "has no '\(key)'")
        }
        guard let v = Float(s.trimmingCharacters(in: .whitespaces)) else { throw fail(l, "'\(key)' is '\(s)', not a number") }
        return v
    }

    func attrBool(_ l: IRLayer, _ key: String, default d: Bool) throws(OpenVINOError) -> Bool {
        guard let s = l.data[key]?.lowercased() else { return d }
        switch s {
        case "true", "1": return true
        case "false", "0": return false
        default: throw fail(l, "'\(key)' is '\(s)', not true or false")
        }
    }

    func attrString(_ l: IRLayer, _ key: String, default d: String) -> String {
        l.data[key]?.trimmingCharacters(in: .whitespaces) ?? d
    }
}
