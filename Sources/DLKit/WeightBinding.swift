import DLGraph
import DLTensor

/// Puts a set of weights (a state dict from any weights file) onto a graph's initializers,
/// matched by name.
///
/// Strict by default: every graph initializer must be in the weights with the same dtype and
/// shape, and every weight must name a graph initializer. All problems are reported in one
/// `WeightBindingError`; nothing is bound partially. `allowMissing` relaxes only the first
/// rule: initializers the weights lack keep the graph's own values (listed in the result).
///
/// ```swift
/// let weights = try StateDict(contentsOf: URL(fileURLWithPath: "finetuned.safetensors"))
/// let graph = try Model.loadGraph(path: "model.onnx").0
/// let bound = try WeightBinding.bind(weights, onto: graph)
/// ```
public enum WeightBinding {
    public struct Result: Sendable {
        public var graph: Graph
        /// Initializers replaced by the weights.
        public var replaced: [String]
        /// Initializers the weights lacked, kept from the graph (only with `allowMissing`).
        public var keptFromGraph: [String]
    }

    /// Binds `weights` onto `graph`. `weightsName` and `graphName` name the two in errors.
    /// - Throws: `DLKitError.weightBinding` listing every missing, extra and mismatched tensor.
    public static func bind(_ weights: StateDict, onto graph: Graph, allowMissing: Bool = false,
                            weightsName: String = "the weights", graphName: String = "the graph") throws(DLKitError) -> Result {
        var error = WeightBindingError(weights: weightsName, graph: graphName, allowMissing: allowMissing)
        var out = graph
        var replaced: [String] = [], kept: [String] = []
        for (name, target) in graph.initializers {
            guard let w = weights[name] else {
                error.missing.append(name)
                kept.append(name)
                continue
            }
            if w.dtype != target.dtype || w.shape != target.shape {
                error.mismatched.append(.init(name: name, graph: describe(target), weights: describe(w)))
                continue
            }
            out.initializers[name] = w
            replaced.append(name)
        }
        error.extra = weights.names.filter { !graph.initializers.contains($0) }
        if !error.extra.isEmpty || !error.mismatched.isEmpty || (!allowMissing && !error.missing.isEmpty) {
            throw .weightBinding(error)
        }
        return Result(graph: out, replaced: replaced, keptFromGraph: kept)
    }

    static func describe(_ t: Tensor) -> String { "\(t.dtype)[\(t.shape.map(String.init).joined(separator: ","))]" }
}

/// Why weights do not fit a graph: every missing, extra and mismatched tensor at once.
public struct WeightBindingError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Mismatch: Equatable, Sendable {
        public var name: String
        /// dtype and shape in the graph and in the weights, e.g. `float32[512,784]`.
        public var graph: String
        public var weights: String
    }

    public var weights: String
    public var graph: String
    public var allowMissing: Bool
    /// Graph initializers the weights do not have.
    public var missing: [String] = []
    /// Weights that name no graph initializer.
    public var extra: [String] = []
    public var mismatched: [Mismatch] = []

    public var description: String {
        var parts: [String] = []
        if !allowMissing && !missing.isEmpty {
            parts.append("\(missing.count) missing (\(Self.list(missing)))")
        }
        if !extra.isEmpty { parts.append("\(extra.count) extra, not in the graph (\(Self.list(extra)))") }
        if !mismatched.isEmpty {
            let m = mismatched.map { "'\($0.name)': graph \($0.graph), weights \($0.weights)" }
            parts.append("\(mismatched.count) of another shape or type (\(m.joined(separator: ", ")))")
        }
        var s = "\(weights) do not fit \(graph): \(parts.joined(separator: "; "))"
        if !allowMissing && !missing.isEmpty { s += "; --allow-missing keeps the graph's values for missing tensors" }
        return s
    }

    static func list(_ names: [String]) -> String { names.map { "'\($0)'" }.joined(separator: ", ") }
}
