import DLGraph
import DLTensor

extension StateDict {
    /// What `bind(to:verify:)` insists on. Strictness is explicit: the default checks everything.
    public struct Verify: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Every initializer of the model gets a tensor.
        public static let noMissingKeys = Verify(rawValue: 1)
        /// Every tensor of the state dict is used.
        public static let noUnusedKeys = Verify(rawValue: 2)
        public static let all: Verify = [.noMissingKeys, .noUnusedKeys]
    }

    /// The model's graph with its initializers replaced by these weights, as a new `Model`,
    /// through `WeightBinding` (its rule for names, shapes and dtypes). Floating-point weights are
    /// converted to the model's floating-point dtype, narrowing too: loading float64 weights into
    /// a float32 model is asked for explicitly by calling this.
    /// - Throws: `DLKitError.weightBinding` listing every missing, unused or mismatched name.
    public func bind(to model: Model, verify: Verify = .all) throws(DLKitError) -> Model {
        let policy = WeightBinding.Policy(allowMissing: !verify.contains(.noMissingKeys), allowUnexpected: !verify.contains(.noUnusedKeys),
                                          convertNarrowingFloats: true)
        let report = try WeightBinding.bind(self, onto: model.graph, policy: policy, weightsName: "the weights", graphName: model.name)
        return try Model(graph: report.graph, name: model.name, format: model.format)
    }
}
