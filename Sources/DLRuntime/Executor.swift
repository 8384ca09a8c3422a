import DLGraph
import DLKernels
import DLTensor

/// Runs a graph on the CPU.
///
/// Built once per graph: checks every op has a kernel and orders the nodes. Each `run` checks the
/// inputs against the declared types, infers concrete shapes node by node (the same inference the
/// graph uses statically), runs the kernels, and drops every intermediate value after its last use.
public struct Executor: Sendable {
    public let graph: Graph
    /// For each node, the values whose last reader it is (freed right after it runs).
    private let releaseAfter: [[String]]

    /// - Throws: `RuntimeError.invalidGraph` listing every op without a kernel, or a graph error.
    public init(graph: Graph) throws(RuntimeError) {
        var g = graph
        var missing: [String: Int] = [:]
        for n in g.nodes where OpKernels.table[n.opType] == nil || !OpSet.accepts(domainOf: n) {
            missing[n.opType, default: 0] += 1
        }
        guard missing.isEmpty else { throw .invalidGraph(.unsupportedOps(missing)) }
        do { try g.verifyAndSort() } catch { throw .invalidGraph(error) }
        self.graph = g
        var lastUse: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() {
            for v in n.inputs where !v.isEmpty { lastUse[v] = i }
        }
        let keep = Set(g.outputs.map(\.name)).union(g.initializers.names)
        var release = [[String]](repeating: [], count: g.nodes.count)
        for (v, i) in lastUse where !keep.contains(v) { release[i].append(v) }
        releaseAfter = release
    }

    /// Runs the graph.
    /// - Parameters:
    ///   - inputs: a tensor for every graph input (initializers listed as inputs may be overridden).
    ///   - outputs: the outputs to return; all graph outputs when nil.
    /// - Throws: `RuntimeError` naming the input or node at fault.
    public func run(_ inputs: [String: Tensor], outputs requested: [String]? = nil) throws(RuntimeError) -> [String: Tensor] {
        try checkInputs(inputs)
        let outputNames = graph.outputs.map(\.name)
        let wanted = requested ?? outputNames
        for w in wanted where !outputNames.contains(w) {
            throw .unknownOutput(name: w, available: outputNames)
        }
        var values: [String: Tensor] = [:]
        for (name, t) in graph.initializers { values[name] = t }
        for (name, t) in inputs { values[name] = t }
        for (i, node) in graph.nodes.enumerated() {
            let args = node.inputs.map { $0.isEmpty ? nil : values[$0] }
            let types = args.map { $0.map { TensorType(dtype: $0.dtype, shape: $0.shape) } }
            let outTypes: [TensorType?]
            do {
                var typeMap: [String: TensorType] = [:]
                var valueMap: [String: Tensor] = [:]
                for (name, t, v) in zip3(node.inputs, types, args) where !name.isEmpty {
                    typeMap[name] = t
                    valueMap[name] = v
                }
                outTypes = try Graph.inferNode(node, types: typeMap, values: valueMap)
            } catch { throw .node(node.displayName, error) }
            guard let kernel = OpKernels.table[node.opType] else {
                throw .invalidGraph(.unsupportedOps([node.opType: 1]))
            }
            let results = try kernel(KernelContext(node: node, inputs: args, outputTypes: outTypes))
            for (name, t) in zip(node.outputs, results) where !name.isEmpty { values[name] = t }
            for v in releaseAfter[i] { values[v] = nil }
        }
        var out: [String: Tensor] = [:]
        for w in wanted {
            guard let t = values[w] else { throw .unknownOutput(name: w, available: outputNames) }
            out[w] = t
        }
        return out
    }

    /// Checks names, types and shapes of the inputs, and that each symbolic dim has one size.
    func checkInputs(_ inputs: [String: Tensor]) throws(RuntimeError) {
        let declared = Set(graph.inputs.map(\.name)).union(graph.overridableInitializers)
        for name in inputs.keys.sorted() where !declared.contains(name) {
            throw .unknownInput(name: name, expected: graph.inputs.map(\.name))
        }
        var symbols: [String: (Int, String)] = [:]
        for v in graph.inputs {
            guard let t = inputs[v.name] else { throw .missingInput(name: v.name) }
            guard let type = v.type else { continue }
            guard t.dtype == type.dtype else { throw .inputType(name: v.name, expected: type.dtype, actual: t.dtype) }
            guard type.accepts(dtype: t.dtype, shape: t.shape) else {
                throw .inputShape(name: v.name, expected: type, actual: t.shape)
            }
            for (d, size) in zip(type.dims ?? [], t.shape) {
                guard case .symbolic(let s) = d else { continue }
                if let (first, _) = symbols[s], first != size {
                    throw .inconsistentDim(symbol: s, first: first, input: v.name, actual: size)
                }
                symbols[s] = (size, v.name)
            }
        }
        for name in graph.overridableInitializers {
            guard let t = inputs[name], let declared = graph.initializers[name] else { continue }
            guard t.dtype == declared.dtype else { throw .inputType(name: name, expected: declared.dtype, actual: t.dtype) }
            guard t.shape == declared.shape else {
                throw .inputShape(name: name, expected: TensorType(dtype: declared.dtype, shape: declared.shape), actual: t.shape)
            }
        }
    }
}

func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
}
