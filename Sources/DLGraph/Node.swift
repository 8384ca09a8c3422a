import DLTensor

/// One operation of the graph. Inputs and outputs name values; an empty input name is an optional
/// input left out, as in ONNX.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    /// Operator domain; "" is the default ai.onnx domain.
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [Attribute]
    public var docString: String

    public init(name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [Attribute] = [], docString: String = "") {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
    }

    /// The name to use in messages: the node's name, or its op type and first output.
    public var displayName: String {
        name.isEmpty ? "\(opType) -> '\(outputs.first ?? "")'" : "'\(name)' (\(opType))"
    }

    public func attribute(_ name: String) -> AttributeValue? {
        attributes.first(where: { $0.name == name })?.value
    }

    /// Reads an int attribute, or `defaultValue` when absent.
    /// - Throws: `GraphError.attributeType` when present with another kind.
    public func int(_ name: String, default defaultValue: Int) throws(GraphError) -> Int {
        switch attribute(name) {
        case nil: return defaultValue
        case .int(let v): return v
        case let other?: throw .attributeType(node: displayName, attribute: name, expected: "int", actual: other.kindName)
        }
    }

    public func float(_ name: String, default defaultValue: Float) throws(GraphError) -> Float {
        switch attribute(name) {
        case nil: return defaultValue
        case .float(let v): return v
        case .int(let v): return Float(v)
        case let other?: throw .attributeType(node: displayName, attribute: name, expected: "float", actual: other.kindName)
        }
    }

    public func ints(_ name: String) throws(GraphError) -> [Int]? {
        switch attribute(name) {
        case nil: return nil
        case .ints(let v): return v
        case let other?: throw .attributeType(node: displayName, attribute: name, expected: "ints", actual: other.kindName)
        }
    }

    public func string(_ name: String, default defaultValue: String) throws(GraphError) -> String {
        switch attribute(name) {
        case nil: return defaultValue
        case .string(let v): return v
        case let other?: throw .attributeType(node: displayName, attribute: name, expected: "string", actual: other.kindName)
        }
    }

    public func tensor(_ name: String) throws(GraphError) -> Tensor? {
        switch attribute(name) {
        case nil: return nil
        case .tensor(let v): return v
        case let other?: throw .attributeType(node: displayName, attribute: name, expected: "tensor", actual: other.kindName)
        }
    }

    /// The input at `index` when it is present (not left out).
    public func input(_ index: Int) -> String? {
        index < inputs.count && !inputs[index].isEmpty ? inputs[index] : nil
    }
}
