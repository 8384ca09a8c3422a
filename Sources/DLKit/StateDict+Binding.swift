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

    /// The model's graph with its initializers replaced by these weights, as a new `Model`.
    /// Shapes must match exactly; a dtype that differs is converted when both are floating point
    /// and refused otherwise. All problems are reported together.
    /// - Throws: `DLKitError.weightsMismatch` listing every missing, unused or mismatched name.
    public func bind(to model: Model, verify: Verify = .all) throws(DLKitError) -> Model {
        var graph = model.graph
        var problems: [String] = []
        var used = Set<String>()
        for (name, current) in model.graph.initializers {
            guard let t = tensors[name] else {
                if verify.contains(.noMissingKeys) { problems.append("missing '\(name)'") }
                continue
            }
            used.insert(name)
            guard t.shape == current.shape else {
                problems.append("'\(name)' has shape \(t.shape), the model needs \(current.shape)")
                continue
            }
            if t.dtype == current.dtype {
                graph.initializers[name] = t
            } else if t.dtype.isFloatingPoint && current.dtype.isFloatingPoint {
                graph.initializers[name] = t.converted(to: current.dtype)
            } else {
                problems.append("'\(name)' is \(t.dtype), the model needs \(current.dtype)")
            }
        }
        if verify.contains(.noUnusedKeys) {
            for name in names where !used.contains(name) { problems.append("unused '\(name)'") }
        }
        guard problems.isEmpty else { throw .weightsMismatch(path: model.name, problems: problems) }
        return try Model(graph: graph, name: model.name, format: model.format)
    }
}
