import DLTensor

/// What type inference of one node sees: the node, the types of its inputs (nil where unknown or
/// left out) and the values of inputs that are known before running (initializers, constants,
/// or at run time every input).
public struct InferenceContext {
    public let node: Node
    public let inputTypes: [TensorType?]
    public let inputValues: [Tensor?]

    public init(node: Node, inputTypes: [TensorType?], inputValues: [Tensor?]) {
        self.node = node
        self.inputTypes = inputTypes
        self.inputValues = inputValues
    }

    /// The type of input `i`. - Throws: when the input is absent or its type unknown.
    public func type(_ i: Int) throws(GraphError) -> TensorType {
        guard i < inputTypes.count, let t = inputTypes[i] else {
            throw .arity(node: node.displayName, reason: "input \(i) has no known type")
        }
        return t
    }

    public func value(_ i: Int) -> Tensor? { i < inputValues.count ? inputValues[i] : nil }

    public func hasInput(_ i: Int) -> Bool { node.input(i) != nil }
}

/// Arity and type rules of one IR op.
public struct OpSchema: Sendable {
    public let name: String
    public let inputs: ClosedRange<Int>
    public let outputs: ClosedRange<Int>
    /// Output types from input types; an output whose type cannot be known yet is nil.
    public let infer: @Sendable (InferenceContext) throws(GraphError) -> [TensorType?]

    public init(_ name: String, inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1,
                infer: @escaping @Sendable (InferenceContext) throws(GraphError) -> [TensorType?]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.infer = infer
    }
}

/// The IR op set: every op DLKit's graph may contain, by ONNX op type.
public enum OpSet {
    public static let schemas: [String: OpSchema] = {
        var s: [String: OpSchema] = [:]
        for schema in ElementwiseOps.schemas + LinearOps.schemas + ConvolutionOps.schemas
            + ShapeOps.schemas + NormalizationOps.schemas + RuntimeShapedOps.schemas
            + NeuralOps.schemas {
            s[schema.name] = schema
        }
        return s
    }()

    /// Ops of the `ai.onnx.preview` domain the IR accepts (they share the op-type namespace with
    /// the default domain; none of these names exists there).
    public static let previewOps: Set<String> = ["FlexAttention"]

    /// Whether the node's domain is one the IR reads: the default domain, or `ai.onnx.preview`
    /// for the ops in `previewOps`.
    public static func accepts(domainOf node: Node) -> Bool {
        node.domain.isEmpty || node.domain == "ai.onnx" || (node.domain == "ai.onnx.preview" && previewOps.contains(node.opType))
    }

    public static func schema(for node: Node) -> OpSchema? {
        guard accepts(domainOf: node) else { return nil }
        return schemas[node.opType]
    }
}
