import DLTensor

/// The value of a node attribute. Graph-valued attributes (If/Loop bodies) nest whole graphs.
public indirect enum AttributeValue: Sendable {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(Tensor)
    case graph(Graph)
    case floats([Float])
    case ints([Int])
    case strings([String])
    case tensors([Tensor])
    case graphs([Graph])
    /// A type (ONNX TYPE_PROTO attributes, e.g. Optional's `type`).
    case type(ValueKind)

    public var kindName: String {
        switch self {
        case .float: "float"
        case .int: "int"
        case .string: "string"
        case .tensor: "tensor"
        case .graph: "graph"
        case .floats: "floats"
        case .ints: "ints"
        case .strings: "strings"
        case .tensors: "tensors"
        case .graphs: "graphs"
        case .type: "type"
        }
    }
}

/// A named attribute of a node, in the order the source file listed it.
public struct Attribute: Sendable {
    public var name: String
    public var value: AttributeValue
    public var docString: String

    public init(name: String, value: AttributeValue, docString: String = "") {
        self.name = name
        self.value = value
        self.docString = docString
    }
}
