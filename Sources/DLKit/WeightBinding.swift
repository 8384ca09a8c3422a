import DLGraph
import DLTensor

/// Puts a set of weights (a state dict from any weights file) onto a graph's initializers,
/// matched by name. The one binder: `StateDict.bind(to:verify:)` and `Converter`'s `--graph`
/// path both come here.
///
/// The rule: names and shapes must match. A weight of the initializer's own dtype is bound as it
/// is. A floating-point weight of another floating-point dtype is converted to the graph's dtype
/// when no value can change (a wider type: float16/bfloat16 → float32 → float64), and when it
/// would narrow only if the policy says so (`convertNarrowingFloats`); every conversion is listed
/// in the report. Any other dtype difference is refused. Initializers the weights lack
/// (`missing`) and weights that name no initializer (`unexpected`) are refused unless the policy
/// allows them. All problems are reported in one `WeightBindingError`; nothing is bound partially.
///
/// ```swift
/// let weights = try StateDict(contentsOf: URL(fileURLWithPath: "finetuned.safetensors"))
/// let graph = try Model.loadGraph(path: "model.onnx").0
/// let report = try WeightBinding.bind(weights, onto: graph)
/// ```
public enum WeightBinding {
    /// What the binder lets pass.
    public struct Policy: Sendable, Equatable {
        /// Initializers the weights lack keep the graph's own values.
        public var allowMissing: Bool
        /// Weights that name no initializer are left out.
        public var allowUnexpected: Bool
        /// Floating-point weights are converted to a narrower floating-point type of the graph
        /// (float64 → float32, float32 → float16), which may round.
        public var convertNarrowingFloats: Bool

        public init(allowMissing: Bool = false, allowUnexpected: Bool = false, convertNarrowingFloats: Bool = false) {
            self.allowMissing = allowMissing
            self.allowUnexpected = allowUnexpected
            self.convertNarrowingFloats = convertNarrowingFloats
        }

        /// Everything checked, nothing narrowed.
        public static let strict = Policy()
    }

    /// What a binding did.
    public struct Report: Sendable {
        public var graph: Graph
        /// Initializers given the weights' values, in the graph's order.
        public var bound: [String]
        /// Initializers the weights lacked, kept from the graph (only with `allowMissing`).
        public var missing: [String]
        /// Weights that name no initializer, left out (only with `allowUnexpected`).
        public var unexpected: [String]
        /// Weights converted to the graph's dtype.
        public var converted: [Conversion]
    }

    public struct Conversion: Sendable, Equatable {
        public var name: String
        public var from: DType
        public var to: DType
    }

    /// Binds `weights` onto `graph` under `policy`. `weightsName` and `graphName` name the two in
    /// errors.
    /// - Throws: `DLKitError.weightBinding` listing every missing, unexpected and mismatched tensor.
    public static func bind(_ weights: StateDict, onto graph: Graph, policy: Policy = .strict,
                            weightsName: String = "the weights", graphName: String = "the graph") throws(DLKitError) -> Report {
        var error = WeightBindingError(weights: weightsName, graph: graphName, allowMissing: policy.allowMissing,
                                       allowUnexpected: policy.allowUnexpected)
        var report = Report(graph: graph, bound: [], missing: [], unexpected: [], converted: [])
        for (name, target) in graph.initializers {
            guard let w = weights[name] else {
                error.missing.append(name)
                report.missing.append(name)
                continue
            }
            guard w.shape == target.shape else {
                error.mismatched.append(.init(name: name, graph: describe(target), weights: describe(w)))
                continue
            }
            if w.dtype == target.dtype {
                report.graph.initializers[name] = w
            } else if w.dtype.isFloatingPoint, target.dtype.isFloatingPoint,
                      policy.convertNarrowingFloats || widens(w.dtype, to: target.dtype) {
                report.graph.initializers[name] = w.converted(to: target.dtype)
                report.converted.append(Conversion(name: name, from: w.dtype, to: target.dtype))
            } else {
                error.mismatched.append(.init(name: name, graph: describe(target), weights: describe(w)))
                continue
            }
            report.bound.append(name)
        }
        let unexpected = weights.names.filter { !graph.initializers.contains($0) }
        error.unexpected = unexpected
        report.unexpected = unexpected
        if !error.mismatched.isEmpty || (!policy.allowUnexpected && !unexpected.isEmpty) || (!policy.allowMissing && !error.missing.isEmpty) {
            throw .weightBinding(error)
        }
        return report
    }

    /// True when every value of `from` is exactly a value of `to`.
    static func widens(_ from: DType, to: DType) -> Bool {
        switch (from, to) {
        case (.float16, .float32), (.float16, .float64), (.bfloat16, .float32), (.bfloat16, .float64), (.float32, .float64): true
        default: false
        }
    }

    static func describe(_ t: Tensor) -> String { "\(t.dtype)[\(t.shape.map(String.init).joined(separator: ","))]" }
}

/// Why weights do not fit a graph: every missing, unexpected and mismatched tensor at once, in
/// the library's terms (a command-line tool adds how its flags relax the policy).
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
    public var allowUnexpected: Bool = false
    /// Graph initializers the weights do not have.
    public var missing: [String] = []
    /// Weights that name no graph initializer.
    public var unexpected: [String] = []
    /// Weights of another shape, or of a dtype the policy does not convert.
    public var mismatched: [Mismatch] = []

    /// True when missing tensors are among the reasons (allowing them would change the outcome).
    public var refusedMissing: Bool { !allowMissing && !missing.isEmpty }

    public var description: String {
        var parts: [String] = []
        if refusedMissing { parts.append("\(missing.count) missing (\(Self.list(missing)))") }
        if !allowUnexpected && !unexpected.isEmpty { parts.append("\(unexpected.count) extra, not in the graph (\(Self.list(unexpected)))") }
        if !mismatched.isEmpty {
            let m = mismatched.map { "'\($0.name)': graph \($0.graph), weights \($0.weights)" }
            parts.append("\(mismatched.count) of another shape or type (\(m.joined(separator: ", ")))")
        }
        return "\(weights) do not fit \(graph): \(parts.joined(separator: "; "))"
    }

    static func list(_ names: [String]) -> String { names.map { "'\($0)'" }.joined(separator: ", ") }
}
