import DLTensor

/// Model-level facts a source file carried; kept so a conversion back to that format loses nothing.
public struct ModelMetadata: Sendable {
    /// Operator set version per domain ("" = ai.onnx).
    public var opsetImports: [(domain: String, version: Int)] = []
    public var irVersion: Int = 0
    public var producerName: String = ""
    public var producerVersion: String = ""
    public var domain: String = ""
    public var modelVersion: Int = 0
    public var docString: String = ""
    public var metadataProps: [(key: String, value: String)] = []

    public init() {}

    /// The ai.onnx opset the graph was written for.
    public var onnxOpset: Int? {
        opsetImports.first(where: { $0.domain == "" || $0.domain == "ai.onnx" })?.version
    }
}

/// DLKit's one intermediate representation: values named by strings, nodes in an order where
/// every node comes after the nodes it reads from, weights as named tensors.
///
/// Ops are the ONNX standard operators, each in one form whatever opset a graph was read at:
/// attributes that later opsets take as inputs (Squeeze's `axes`, Clip's bounds, ...) are inputs
/// (`NormalForm`), and forms whose meaning changed (Softmax before 13, DFT before 20) are
/// rewritten by the reader. `metadata.onnxOpset` is the opset the graph is written at: the ONNX
/// writer turns those inputs back into attributes for an older one, and converts to another
/// opset only when asked (`OpsetConverter`). Importers of other formats emit the IR's form. So
/// the runtime, gradients and exporters key on one op set.
public struct Graph: Sendable {
    public var name: String
    public var docString: String = ""
    /// Inputs a caller feeds (initializers are not listed here even if the source listed them).
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Types known for intermediate values.
    public var valueInfo: [ValueInfo] = []
    public var nodes: [Node]
    /// Weights and other constant tensors, by value name.
    public var initializers: NamedTensors
    /// Initializer names the source file also listed as graph inputs (overridable at run time in ONNX).
    public var overridableInitializers: [String] = []
    public var metadata: ModelMetadata = ModelMetadata()

    public init(name: String, inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node],
                initializers: NamedTensors = NamedTensors()) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
    }

    /// Number of scalars in all floating-point and integer initializers.
    public var parameterCount: Int {
        initializers.reduce(0) { $0 + $1.tensor.elementCount }
    }

    /// How many nodes of each op type the graph has.
    public var opCounts: [String: Int] {
        var c: [String: Int] = [:]
        for n in nodes { c[n.opType, default: 0] += 1 }
        return c
    }
}
