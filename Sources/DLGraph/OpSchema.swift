import DLTensor

/// What type inference of one node sees: the node, the types of its inputs (nil where unknown or
/// left out) and the values of inputs that are known before running (initializers, constants,
/// or at run time every input).
package struct InferenceContext {
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
package struct OpSchema: Sendable {
    public let name: String
    public let inputs: ClosedRange<Int>
    public let outputs: ClosedRange<Int>
    /// Output types from input types; an output whose type cannot be known yet is nil.
    public let infer: @Sendable (InferenceContext) throws(GraphError) -> [TensorType?]
    /// How many leading inputs must have known types for `infer` to run (nil: all of them); the
    /// others reach it as nil when unknown.
    public let typedInputs: Int?

    public init(_ name: String, inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1, typedInputs: Int? = nil,
                infer: @escaping @Sendable (InferenceContext) throws(GraphError) -> [TensorType?]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.typedInputs = typedInputs
        self.infer = infer
    }
}

/// The IR op set: every op DLKit's graph may contain, by ONNX op type.
package enum OpSet {
    public static let schemas: [String: OpSchema] = {
        var s: [String: OpSchema] = [:]
        for schema in ElementwiseOps.schemas + LinearOps.schemas + ConvolutionOps.schemas
            + ShapeOps.schemas + NormalizationOps.schemas + RuntimeShapedOps.schemas
            + MovementOps.schemas + NeuralOps.schemas + SpatialOps.schemas + FlowOps.schemas {
            s[schema.name] = schema
        }
        return s
    }()

    /// Ops of the other ONNX domains the IR knows (ai.onnx.ml, ai.onnx.preview.training), by
    /// domain and op type.
    public static let domainSchemas: [String: [String: OpSchema]] = {
        var s: [String: [String: OpSchema]] = [:]
        for (domain, schema) in FlowOps.domainSchemas { s[domain, default: [:]][schema.name] = schema }
        for schema in FusedOps.schemas { s[FusedOps.domain, default: [:]][schema.name] = schema }
        return s
    }()

    /// Ops of the `ai.onnx.preview` domain the IR reads as default-domain ops (they share the
    /// op-type namespace; none of these names exists in the default domain).
    public static let previewOps: Set<String> = ["FlexAttention"]

    /// True when the node's op is looked up among the default-domain schemas.
    public static func isDefaultDomain(_ node: Node) -> Bool {
        node.domain.isEmpty || node.domain == "ai.onnx" || (node.domain == "ai.onnx.preview" && previewOps.contains(node.opType))
    }

    public static func schema(for node: Node) -> OpSchema? {
        guard isDefaultDomain(node) else { return domainSchemas[node.domain]?[node.opType] }
        return schemas[node.opType]
    }
}
