import CProtos
import DLGraph
import DLTensor

/// State of one read: the file's path for messages, its folder for external data, the opset,
/// open external data files (each mapped once), and the subgraph depth.
struct ReadContext {
    let path: String
    let directory: String
    var opset = 1
    var externalFiles: [String: MappedFile] = [:]
    var depth = 0
    static let maxDepth = 64

    init(path: String, directory: String) {
        self.path = path
        self.directory = directory
    }

    mutating func graph(_ g: UnsafeMutablePointer<Onnx__GraphProto>) throws(ONNXError) -> Graph {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else {
            throw .invalidTensor(path: path, tensor: cString(g.pointee.name), reason: "subgraphs nest deeper than \(Self.maxDepth)")
        }
        var inits = NamedTensors()
        for t in messages(g.pointee.initializer, g.pointee.n_initializer) {
            let name = cString(t.pointee.name)
            guard !inits.contains(name) else {
                throw .invalidTensor(path: path, tensor: name, reason: "the initializer name is used twice")
            }
            inits[name] = try tensor(t)
        }
        if g.pointee.n_sparse_initializer > 0 {
            throw .invalidTensor(path: path, tensor: cString(g.pointee.name), reason: "sparse initializers are not supported yet")
        }
        var inputs: [ValueInfo] = []
        var overridable: [String] = []
        for v in messages(g.pointee.input, g.pointee.n_input) {
            let info = try valueInfo(v)
            if inits.contains(info.name) { overridable.append(info.name) } else { inputs.append(info) }
        }
        let outputs = try messages(g.pointee.output, g.pointee.n_output).map { (v) throws(ONNXError) in try valueInfo(v) }
        var valueInfos: [ValueInfo] = []
        for v in messages(g.pointee.value_info, g.pointee.n_value_info) {
            // Intermediate types of other kinds (sequences, maps) are hints only: drop them.
            if let info = try? valueInfo(v) { valueInfos.append(info) }
        }
        var nodes: [Node] = []
        for n in messages(g.pointee.node, g.pointee.n_node) {
            var attrs: [Attribute] = []
            let nodeName = cString(n.pointee.name)
            let opType = cString(n.pointee.op_type)
            for a in messages(n.pointee.attribute, n.pointee.n_attribute) {
                attrs.append(try attribute(a, node: nodeName.isEmpty ? opType : nodeName))
            }
            nodes.append(Node(name: nodeName, opType: opType, domain: cString(n.pointee.domain),
                              inputs: strings(n.pointee.input, n.pointee.n_input),
                              outputs: strings(n.pointee.output, n.pointee.n_output),
                              attributes: attrs, docString: cString(n.pointee.doc_string)))
        }
        var graph = Graph(name: cString(g.pointee.name), inputs: inputs, outputs: outputs, nodes: nodes, initializers: inits)
        graph.docString = cString(g.pointee.doc_string)
        graph.valueInfo = valueInfos
        graph.overridableInitializers = overridable
        return graph
    }

    func valueInfo(_ v: UnsafeMutablePointer<Onnx__ValueInfoProto>) throws(ONNXError) -> ValueInfo {
        let name = cString(v.pointee.name)
        let doc = cString(v.pointee.doc_string)
        guard let tp = v.pointee.type else { return ValueInfo(name: name, type: nil, docString: doc) }
        switch try kind(tp, name: name) {
        case .tensor(let t): return ValueInfo(name: name, type: t, docString: doc)
        case let other: return ValueInfo(name: name, container: other, docString: doc)
        }
    }

    /// The kind of value a `TypeProto` describes: a tensor type, or a sequence/optional of one.
    func kind(_ tp: UnsafeMutablePointer<Onnx__TypeProto>, name: String, depth: Int = 0) throws(ONNXError) -> ValueKind {
        guard depth < 16 else { throw .unsupportedType(path: path, value: name, kind: "type nested more than 16 deep") }
        switch tp.pointee.value_case {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            guard let tt = tp.pointee.tensor_type else { return .tensor(nil) }
            let code = tt.pointee.has_elem_type != 0 ? tt.pointee.elem_type : 0
            guard let dtype = DType(onnxCode: code) else {
                throw .unsupportedDataType(path: path, tensor: name, code: code)
            }
            guard let shape = tt.pointee.shape else { return .tensor(TensorType(dtype: dtype, dims: nil)) }
            var dims: [Dim] = []
            for d in messages(shape.pointee.dim, shape.pointee.n_dim) {
                switch d.pointee.value_case {
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                    let v = d.pointee.dim_value
                    if v == -1 { dims.append(.unknown) } else if v >= 0 && v <= Int64(Int32.max) * 1024 {
                        dims.append(.fixed(Int(v)))
                    } else { throw .invalidDim(path: path, value: name, dim: v) }
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                    let s = cString(d.pointee.dim_param)
                    dims.append(s.isEmpty ? .unknown : .symbolic(s))
                default:
                    dims.append(.unknown)
                }
            }
            return .tensor(TensorType(dtype: dtype, dims: dims))
        case ONNX__TYPE_PROTO__VALUE__NOT_SET:
            return .tensor(nil)
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            guard let e = tp.pointee.sequence_type?.pointee.elem_type else { return .sequence(.tensor(nil)) }
            return .sequence(try kind(e, name: name, depth: depth + 1))
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            guard let e = tp.pointee.optional_type?.pointee.elem_type else { return .optional(.tensor(nil)) }
            return .optional(try kind(e, name: name, depth: depth + 1))
        case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: throw .unsupportedType(path: path, value: name, kind: "map")
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE: throw .unsupportedType(path: path, value: name, kind: "sparse tensor")
        default: throw .unsupportedType(path: path, value: name, kind: "opaque value")
        }
    }

    mutating func attribute(_ a: UnsafeMutablePointer<Onnx__AttributeProto>, node: String) throws(ONNXError) -> Attribute {
        let name = cString(a.pointee.name)
        let p = a.pointee
        let value: AttributeValue
        var type = p.has_type != 0 ? p.type : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
        if type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
            // Old files may leave `type` out: take the one field that is set.
            if p.has_f != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT }
            else if p.has_i != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT }
            else if p.has_s != 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING }
            else if p.t != nil { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR }
            else if p.g != nil { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH }
            else if p.n_floats > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS }
            else if p.n_ints > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS }
            else if p.n_strings > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS }
        }
        switch type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: value = .float(p.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: value = .int(Int(p.i))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: value = .string(binaryString(p.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = p.t else { throw .unsupportedAttribute(path: path, node: node, attribute: name, kind: "empty tensor") }
            value = .tensor(try tensor(t))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
            guard let g = p.g else { throw .unsupportedAttribute(path: path, node: node, attribute: name, kind: "empty graph") }
            value = .graph(try graph(g))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            value = .floats(p.n_floats > 0 && p.floats != nil ? Array(UnsafeBufferPointer(start: p.floats, count: p.n_floats)) : [])
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            value = .ints(p.n_ints > 0 && p.ints != nil ? UnsafeBufferPointer(start: p.ints, count: p.n_ints).map { Int($0) } : [])
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
            value = .strings(p.n_strings > 0 && p.strings != nil ? UnsafeBufferPointer(start: p.strings, count: p.n_strings).map(binaryString) : [])
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
            var ts: [Tensor] = []
            for t in messages(p.tensors, p.n_tensors) { ts.append(try tensor(t)) }
            value = .tensors(ts)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
            var gs: [Graph] = []
            for g in messages(p.graphs, p.n_graphs) { gs.append(try graph(g)) }
            value = .graphs(gs)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
            guard let tp = p.tp else { throw .unsupportedAttribute(path: path, node: node, attribute: name, kind: "empty type") }
            value = .type(try kind(tp, name: name))
        default:
            throw .unsupportedAttribute(path: path, node: node, attribute: name, kind: "type \(type.rawValue)")
        }
        return Attribute(name: name, value: value, docString: cString(p.doc_string))
    }
}
