/// How `ONNXWriter.write` lays out a model: the opset to write and where tensor bytes go.
public struct ONNXWriteOptions: Sendable {
    /// When initializer bytes go to a separate `.data` file beside the model.
    public enum ExternalData: Sendable, Equatable {
        /// Always inline; a model over the 2 GiB protobuf limit is an error.
        case never
        /// Inline unless the model would exceed the 2 GiB protobuf limit (the default).
        case automatic
        /// Initializers of at least `externalThreshold` bytes go to the data file.
        case always
    }

    /// The ai.onnx opset to write; nil keeps the one the graph was imported with (17 for graphs
    /// built in Swift or from Keras). Op versions are converted where their semantics changed.
    public var opset: Int?
    public var externalData: ExternalData
    /// Initializers smaller than this many bytes stay inline when data goes external.
    public var externalThreshold: Int

    /// onnx's own `convert_model_to_external_data` keeps tensors under 1 KiB inline too.
    public static let defaultExternalThreshold = 1024
    /// Offsets in the data file are multiples of this (the ONNX spec's recommendation: a page,
    /// so a reader can map every tensor).
    public static let dataAlignment = 4096

    public init(opset: Int? = nil, externalData: ExternalData = .automatic,
                externalThreshold: Int = ONNXWriteOptions.defaultExternalThreshold) {
        self.opset = opset
        self.externalData = externalData
        self.externalThreshold = externalThreshold
    }
}

/// What `ONNXWriter.write` did, for the caller to report.
public struct ONNXWriteReport: Sendable {
    public var opset: Int
    public var irVersion: Int
    /// The external data file written, nil when every tensor is inline.
    public var dataPath: String?
    public var externalTensors = 0
    public var externalBytes = 0
    /// True when the caller did not ask for external data but the weights needed it.
    public var switchedToExternalData = false
    /// Bytes the model would have had with every tensor inline.
    public var inlineModelBytes = 0
    /// Nodes whose form changed for the target opset.
    public var convertedNodes = 0
}
