#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLKernels
import DLTensor

/// Runs a graph on the CPU.
///
/// Built once per graph: checks every op has a kernel and orders the nodes. Each `run` checks the
/// inputs against the declared types, infers concrete shapes node by node (the same inference the
/// graph uses statically), runs the kernels, and drops every intermediate value after its last use.
///
/// Values are tensors, or sequences and optionals (`GraphValue`) for the Sequence*/Optional* ops
/// and control flow. Graph-valued attributes (If branches, Loop/Scan bodies) get executors of
/// their own, built here, which see the enclosing scope's values by name.
public struct Executor: Sendable {
    public let graph: Graph
    /// For each node, the values whose last reader it is (freed right after it runs).
    private let releaseAfter: [[String]]
    /// Executors of each node's graph attributes for node-by-node runs: node index → attribute
    /// name → executors (one, or several for a `graphs` attribute).
    private let subgraphs: SubgraphExecutors
    /// The ai.onnx opset the graph (or its enclosing model, for a subgraph) was written for.
    private let opset: Int?
    /// Plans per input shape (see `ExecutionPlan`); nil for graphs that always run unplanned
    /// (sequence or optional inputs, ops with value kernels only).
    private let plans: PlanCache?
    /// The graph plans are built from: `graph` after `GraphOptimizer`'s passes (fusions the
    /// runtime alone understands, so `graph` itself stays as read).
    let planned: Graph
    /// Executors of `planned`'s graph attributes, by node index (`subgraphs` when the passes
    /// are off and `planned` has `graph`'s nodes).
    let plannedSubgraphs: [Int: [String: [Executor]]]
    /// The names and constants of the graphs enclosing this one (empty for a main graph): what
    /// executors of subgraphs made while planning need.
    private let enclosingScope: Set<String>
    private let enclosingConstants: [String: Tensor]
    /// How this executor runs (threads, plans, passes, packing, kernel paths).
    public let options: RuntimeOptions
    /// For a subgraph: the enclosing scope's names it reads, in the order its plans take them as
    /// inputs after its own. Empty for a top-level graph.
    private let outerInputs: [String]

    /// - Parameter options: how to run; the defaults unless the caller chooses (the command-line
    ///   tools map their `DLKIT_*` variables in with `RuntimeOptions(environment:)`).
    /// - Throws: `RuntimeError.invalidGraph` listing every op without a kernel, or a graph error.
    public init(graph: Graph, options: RuntimeOptions = .default) throws(RuntimeError) {
        try self.init(graph: graph, outerScope: [], opset: graph.metadata.onnxOpset, options: options)
    }

    /// An executor for a subgraph whose nodes may read `outerScope` names from enclosing graphs.
    /// The enclosing graphs' `constants` it reads become initializers of its own, so that its
    /// passes fold what it computes from them (silero-vad's If branches rearrange the LSTM's
    /// weights with Slice and Concat on every run otherwise) and its plans pack them.
    init(graph: Graph, outerScope: Set<String>, constants: [String: Tensor] = [:], opset: Int?, options: RuntimeOptions) throws(RuntimeError) {
        var g = graph
        if !constants.isEmpty {
            for name in g.outerNames.sorted() { if let t = constants[name] { g.initializers[name] = t } }
        }
        var missing: [String: Int] = [:]
        for n in g.nodes where !OpKernels.has(n) {
            missing[n.domain.isEmpty || n.domain == "ai.onnx" ? n.opType : "\(n.domain).\(n.opType)", default: 0] += 1
        }
        guard missing.isEmpty else { throw .invalidGraph(.unsupportedOps(missing)) }
        do { try g.verifyAndSort(outerScope: outerScope) } catch { throw .invalidGraph(error) }
        // Readers give the IR's form; a graph built in Swift may hold older attribute forms.
        NormalForm.normalise(&g)
        self.graph = g
        var lastUse: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() {
            for v in n.inputs where !v.isEmpty { lastUse[v] = i }
            // Names a subgraph reads from this scope are implicit inputs of the node.
            for v in n.subgraphOuterNames { lastUse[v] = i }
        }
        let keep = Set(g.outputs.map(\.name)).union(g.initializers.names)
        var release = [[String]](repeating: [], count: g.nodes.count)
        for (v, i) in lastUse where !keep.contains(v) { release[i].append(v) }
        releaseAfter = release
        self.opset = opset
        // Every node needs a tensor kernel (Identity also has a value kernel; on tensors the two
        // agree), or is control flow whose subgraphs run through executors of their own.
        let plannable = g.nodes.allSatisfy { OpKernels.kernel(for: $0) != nil || (!$0.subgraphs.isEmpty && OpKernels.valueKernel(for: $0) != nil) }
            && g.inputs.allSatisfy { $0.container == nil }
        self.options = options
        plans = plannable && options.plans ? PlanCache(packs: options.packing ? WeightPacks(mappedMinRows: options.packMappedMinRows) : nil) : nil
        // A subgraph's plans take the outer values it reads as inputs of their own.
        outerInputs = outerScope.isEmpty ? [] : g.outerNames.sorted()
        var planGraph = g
        planGraph.inputs += outerInputs.map { ValueInfo(name: $0, type: nil) }
        let optimize = plans != nil && options.passes
        let plannedGraph = optimize ? Self.optimized(planGraph, dump: options.dumpPasses) : planGraph
        planned = plannedGraph
        enclosingScope = outerScope
        enclosingConstants = constants
        let scope = outerScope.union(g.definedNames)
        let unplannedGraph = g
        let makeUnplanned = { () throws(RuntimeError) -> [Int: [String: [Executor]]] in
            var subs: [Int: [String: [Executor]]] = [:]
            for (i, n) in unplannedGraph.nodes.enumerated() {
                for (name, body) in n.subgraphs {
                    subs[i, default: [:]][name, default: []].append(try Executor(graph: body, outerScope: scope, opset: opset, options: options))
                }
            }
            return subs
        }
        if optimize && g.nodes.contains(where: { !$0.subgraphs.isEmpty }) {
            // The passes may have moved or rewritten nodes: the plan's subgraphs are the planned
            // graph's. The node-by-node run's are made when a run first needs them: made here,
            // each nesting level would build the next one twice (2^depth executors).
            plannedSubgraphs = try Self.subgraphExecutors(of: plannedGraph, scope: outerScope, constants: constants, opset: opset, options: options)
            subgraphs = SubgraphExecutors(make: makeUnplanned)
        } else {
            let subs = try makeUnplanned()
            plannedSubgraphs = subs
            subgraphs = SubgraphExecutors(made: subs)
        }
    }

    /// Executors for the graph attributes of `graph`'s nodes, by node index, each given the
    /// constants it reads from `graph` and the graphs enclosing it (`constants`).
    private static func subgraphExecutors(of graph: Graph, scope: Set<String>, constants: [String: Tensor], opset: Int?,
                                          options: RuntimeOptions) throws(RuntimeError) -> [Int: [String: [Executor]]] {
        var out: [Int: [String: [Executor]]] = [:]
        let inner = scope.union(graph.definedNames)
        let known = Self.constants(of: graph, enclosing: constants)
        for (i, n) in graph.nodes.enumerated() {
            for (name, body) in n.subgraphs {
                out[i, default: [:]][name, default: []].append(
                    try Executor(graph: body, outerScope: inner, constants: known, opset: opset, options: options))
            }
        }
        return out
    }

    /// The values of `graph` known before any run, for its subgraphs: initializers no graph input
    /// overrides, Constant nodes' values, and the enclosing graphs' constants `graph` does not
    /// redefine.
    private static func constants(of graph: Graph, enclosing: [String: Tensor]) -> [String: Tensor] {
        var known = enclosing
        for n in graph.nodes { for o in n.outputs { known[o] = nil } }
        for v in graph.inputs { known[v.name] = nil }
        let overridable = Set(graph.overridableInitializers)
        for (name, t) in graph.initializers where !overridable.contains(name) { known[name] = t }
        for n in graph.nodes where n.opType == "Constant" && OpSet.isDefaultDomain(n) {
            if let name = n.outputs.first, let t = try? ConstantOp.value(of: n) { known[name] = t }
        }
        return known
    }

    /// Runs the graph.
    /// - Parameters:
    ///   - inputs: a tensor for every graph input (initializers listed as inputs may be overridden).
    ///   - outputs: the outputs to return; all graph outputs when nil.
    /// - Throws: `RuntimeError` naming the input or node at fault.
    public func run(_ inputs: [String: Tensor], outputs requested: [String]? = nil) throws(RuntimeError) -> [String: Tensor] {
        let values = try runValues(inputs.mapValues { GraphValue.tensor($0) }, outputs: requested)
        var out: [String: Tensor] = [:]
        for (name, v) in values {
            guard case .tensor(let t) = v else {
                throw .invalidInput(node: "output '\(name)'", reason: "it is a \(v.kindName), not a tensor; use runValues")
            }
            out[name] = t
        }
        return out
    }

    /// Runs the graph on values that may be sequences or optionals as well as tensors.
    public func runValues(_ inputs: [String: GraphValue], outputs requested: [String]? = nil) throws(RuntimeError) -> [String: GraphValue] {
        // The kernels see this executor's choices for the length of the run, on this thread only.
        try KernelOptions.with(options.kernelOptions) { () throws(RuntimeError) in try runValuesNow(inputs, outputs: requested, recorder: nil) }
    }

    /// Runs the graph as ``run(_:outputs:)`` does and times every node. The timings are those of
    /// the nodes as they run: after the runtime's fusions, in execution order, with a node that
    /// holds subgraphs (If, Loop, Scan) timed as a whole. Shape-only nodes folded when a plan is
    /// built take no time in later runs and do not appear.
    public func profile(_ inputs: [String: Tensor], outputs requested: [String]? = nil) throws(RuntimeError) -> (outputs: [String: Tensor], timings: [NodeTiming]) {
        let recorder = ProfileRecorder()
        let values = try KernelOptions.with(options.kernelOptions) { () throws(RuntimeError) in
            try runValuesNow(inputs.mapValues { GraphValue.tensor($0) }, outputs: requested, recorder: recorder)
        }
        var out: [String: Tensor] = [:]
        for (name, v) in values { if case .tensor(let t) = v { out[name] = t } }
        return (out, recorder.timings)
    }

    private func runValuesNow(_ inputs: [String: GraphValue], outputs requested: [String]?, recorder: ProfileRecorder?) throws(RuntimeError) -> [String: GraphValue] {
        try checkInputs(inputs)
        let outputNames = graph.outputs.map(\.name)
        let wanted = requested ?? outputNames
        for w in wanted where !outputNames.contains(w) {
            throw .unknownOutput(name: w, available: outputNames)
        }
        if let plans, let out = try runPlanned(plans, inputs, wanted: wanted, recorder: recorder) { return out }
        var values: [String: GraphValue] = [:]
        for (name, t) in graph.initializers { values[name] = .tensor(t) }
        for (name, t) in inputs { values[name] = t }
        try execute(&values, recorder: recorder)
        var out: [String: GraphValue] = [:]
        for w in wanted {
            guard let t = values[w] else { throw .unknownOutput(name: w, available: outputNames) }
            out[w] = t
        }
        return out
    }

    /// Runs through the plan for these input shapes; nil when this run cannot use a plan (an
    /// initializer overridden, a non-tensor input, or a graph the plan builder turned down).
    private func runPlanned(_ plans: PlanCache, _ inputs: [String: GraphValue], wanted: [String], recorder: ProfileRecorder?) throws(RuntimeError) -> [String: GraphValue]? {
        var tensors: [Tensor] = []
        tensors.reserveCapacity(graph.inputs.count)
        for v in graph.inputs {
            guard case .tensor(let t)? = inputs[v.name] else { return nil }
            tensors.append(t)
        }
        guard inputs.count == tensors.count, let plan = plan(plans, for: tensors) else { return nil }
        let slots = try plan.run(tensors, opset: opset, recorder: recorder)
        var out: [String: GraphValue] = [:]
        for w in wanted {
            guard let s = plan.slotOf[w], let t = slots[s] else {
                throw .unknownOutput(name: w, available: graph.outputs.map(\.name))
            }
            out[w] = .tensor(t)
        }
        return out
    }

    /// The cached plan for these input tensors' dtypes and shapes (built on first use); nil when
    /// the plan builder turned the graph down.
    private func plan(_ plans: PlanCache, for tensors: [Tensor]) -> ExecutionPlan? {
        let key = tensors.map { [DType.allCases.firstIndex(of: $0.dtype) ?? -1] + $0.shape }
        // Only when the plan is new: a cached plan costs one key lookup per run.
        return plans.plan(for: key, make: { makePlan(plans, for: tensors) })
    }

    /// A new plan for these inputs. An If whose condition the plan knows before any run (a
    /// condition on shapes) is replaced by the branch it takes, and the graph planned again: its
    /// nodes are then typed, fused and packed with the rest. Nested Ifs resolve a level a round.
    private func makePlan(_ plans: PlanCache, for tensors: [Tensor]) -> ExecutionPlan? {
        var graph = planned, subgraphs = plannedSubgraphs
        var named: [String: Tensor] = [:]
        for (v, t) in zip(graph.inputs, tensors) { named[v.name] = t }
        func build() -> ExecutionPlan? {
            ExecutionPlan(graph: graph, inputs: named, opset: opset, packs: plans.packs, subgraphs: subgraphs,
                          inPlace: options.inPlace, dump: options.dumpPlans)
        }
        guard var plan = build() else { return nil }
        for _ in 0..<8 where !plan.knownConditions.isEmpty {
            var inlined = graph, changed = false
            // From the last node back, so the indices still to inline stay valid.
            for (index, condition) in plan.knownConditions.sorted(by: { $0.key > $1.key }) {
                if let g = InlineBranch.inlining(inlined, nodeAt: index, condition: condition) {
                    inlined = g
                    changed = true
                }
            }
            guard changed else { break }
            if options.passes { inlined = Self.optimized(inlined, dump: options.dumpPasses) }
            guard let subs = try? Self.subgraphExecutors(of: inlined, scope: enclosingScope, constants: enclosingConstants,
                                                         opset: opset, options: options) else { break }
            let previous = (graph, subgraphs)
            (graph, subgraphs) = (inlined, subs)
            guard let next = build() else {
                (graph, subgraphs) = previous
                break
            }
            plan = next
        }
        return plan
    }

    /// Runs `inputs` through the plan for their shapes and reports what that run allocated and
    /// reused; nil when the graph runs unplanned. For tests of the buffer recycling.
    func planRunStats(_ inputs: [String: Tensor]) throws(RuntimeError) -> (ExecutionPlan.RunStats, [String: Tensor])? {
        try KernelOptions.with(options.kernelOptions) { () throws(RuntimeError) in try planRunStatsNow(inputs) }
    }

    private func planRunStatsNow(_ inputs: [String: Tensor]) throws(RuntimeError) -> (ExecutionPlan.RunStats, [String: Tensor])? {
        guard let plans else { return nil }
        let tensors = graph.inputs.compactMap { inputs[$0.name] }
        guard tensors.count == graph.inputs.count, let plan = plan(plans, for: tensors) else { return nil }
        let graph = self.planned
        var stats = ExecutionPlan.RunStats()
        let slots = try plan.run(tensors, opset: opset, stats: &stats, track: true)
        var out: [String: Tensor] = [:]
        for o in graph.outputs { if let s = plan.slotOf[o.name], let t = slots[s] { out[o.name] = t } }
        return (stats, out)
    }

    /// Runs this graph as a subgraph: `inputs` feed the graph inputs in order (missing trailing
    /// ones are left unset), `outer` is the enclosing scope. Returns the outputs in order.
    func runSubgraph(_ inputs: [GraphValue], outer: [String: GraphValue]) throws(RuntimeError) -> [GraphValue] {
        if let plans, let out = try runSubgraphPlanned(plans, inputs, outer: outer) { return out }
        var values = outer
        for (name, t) in graph.initializers { values[name] = .tensor(t) }
        for (info, v) in zip(graph.inputs, inputs) { values[info.name] = v }
        try execute(&values, recorder: nil)
        var out: [GraphValue] = []
        for o in graph.outputs {
            guard let v = values[o.name] else {
                throw .invalidInput(node: "subgraph '\(graph.name)'", reason: "output '\(o.name)' was not computed")
            }
            out.append(v)
        }
        return out
    }

    /// ``runSubgraph(_:outer:)`` through the plan for these shapes; nil when this run cannot use
    /// one (an input left out, a value that is no tensor, or a graph the plan builder turned down).
    private func runSubgraphPlanned(_ plans: PlanCache, _ inputs: [GraphValue], outer: [String: GraphValue]) throws(RuntimeError) -> [GraphValue]? {
        guard inputs.count == graph.inputs.count else { return nil }
        var tensors: [Tensor] = []
        tensors.reserveCapacity(inputs.count + outerInputs.count)
        for v in inputs {
            guard case .tensor(let t) = v else { return nil }
            tensors.append(t)
        }
        for name in outerInputs {
            guard case .tensor(let t)? = outer[name] else { return nil }
            tensors.append(t)
        }
        guard let plan = plan(plans, for: tensors) else { return nil }
        let slots = try plan.run(tensors, opset: opset)
        var out: [GraphValue] = []
        for o in graph.outputs {
            guard let s = plan.slotOf[o.name], let t = slots[s] else {
                throw .invalidInput(node: "subgraph '\(graph.name)'", reason: "output '\(o.name)' was not computed")
            }
            out.append(.tensor(t))
        }
        return out
    }

    private func execute(_ values: inout [String: GraphValue], recorder: ProfileRecorder?) throws(RuntimeError) {
        let subgraphs = try self.subgraphs.executors()
        for (i, node) in graph.nodes.enumerated() {
            let args = node.inputs.map { $0.isEmpty ? nil : values[$0] }
            let tensors = args.map { $0?.tensor }
            var ctx = KernelContext(node: node, inputs: tensors, outputTypes: [])
            ctx.values = args
            ctx.opset = opset
            if let subs = subgraphs[i] {
                let scope = values
                ctx.subgraphRunner = { (attr: String, index: Int, inputs: [GraphValue]) throws(RuntimeError) -> [GraphValue] in
                    guard let list = subs[attr], index < list.count else {
                        throw .invalidInput(node: node.displayName, reason: "graph attribute '\(attr)' is missing")
                    }
                    return try list[index].runSubgraph(inputs, outer: scope)
                }
            }
            let results: [GraphValue]
            if let recorder {
                results = try recorder.time(node, shapes: tensors.map { $0?.shape ?? [] }) { () throws(RuntimeError) in try runNode(node, ctx, args) }
            } else {
                results = try runNode(node, ctx, args)
            }
            for (name, t) in zip(node.outputs, results) where !name.isEmpty { values[name] = t }
            for v in releaseAfter[i] { values[v] = nil }
        }
    }

    /// Runs one node of an unplanned run on its arguments.
    private func runNode(_ node: Node, _ context: KernelContext, _ args: [GraphValue?]) throws(RuntimeError) -> [GraphValue] {
        if let kernel = OpKernels.valueKernel(for: node) { return try kernel(context) }
        guard let kernel = OpKernels.kernel(for: node) else {
            throw .invalidGraph(.unsupportedOps([node.opType: 1]))
        }
        for (k, a) in args.enumerated() {
            if let a, a.tensor == nil {
                throw .invalidInput(node: node.displayName, reason: "input \(k) is a \(a.kindName); \(node.opType) takes tensors")
            }
        }
        var ctx = context
        let tensors = ctx.inputs
        do {
            var typeMap: [String: TensorType] = [:]
            var valueMap: [String: Tensor] = [:]
            for (name, t) in zip(node.inputs, tensors) where !name.isEmpty {
                typeMap[name] = t.map { TensorType(dtype: $0.dtype, shape: $0.shape) }
                valueMap[name] = t
            }
            ctx.outputTypes = try Graph.inferNode(node, types: typeMap, values: valueMap)
        } catch { throw .node(node.displayName, error) }
        return try kernel(ctx).map { .tensor($0) }
    }

    /// Checks names, types and fixed dims of the inputs. A symbolic dim name is a hint, not a
    /// constraint (as in ONNX Runtime): paddle2onnx names every unknown axis `?`, so axes sharing a
    /// name may differ at run time; the kernels check the shapes they combine.
    func checkInputs(_ inputs: [String: GraphValue]) throws(RuntimeError) {
        let declared = Set(graph.inputs.map(\.name)).union(graph.overridableInitializers)
        for name in inputs.keys.sorted() where !declared.contains(name) {
            throw .unknownInput(name: name, expected: graph.inputs.map(\.name))
        }
        for v in graph.inputs {
            guard let value = inputs[v.name] else { throw .missingInput(name: v.name) }
            if let container = v.container {
                switch (container, value) {
                case (.sequence, .sequence), (.optional, .optional): continue
                case (.optional, _): continue // a present value fills an optional input
                default:
                    throw .invalidInput(node: "input '\(v.name)'", reason: "expected a \(container), got a \(value.kindName)")
                }
            }
            guard case .tensor(let t) = value else {
                throw .invalidInput(node: "input '\(v.name)'", reason: "expected a tensor, got a \(value.kindName)")
            }
            guard let type = v.type else { continue }
            guard t.dtype == type.dtype else { throw .inputType(name: v.name, expected: type.dtype, actual: t.dtype) }
            guard type.accepts(dtype: t.dtype, shape: t.shape) else {
                throw .inputShape(name: v.name, expected: type, actual: t.shape)
            }
        }
        for name in graph.overridableInitializers {
            guard case .tensor(let t)? = inputs[name], let declared = graph.initializers[name] else { continue }
            guard t.dtype == declared.dtype else { throw .inputType(name: name, expected: declared.dtype, actual: t.dtype) }
            guard t.shape == declared.shape else {
                throw .inputShape(name: name, expected: TensorType(dtype: declared.dtype, shape: declared.shape), actual: t.shape)
            }
        }
    }
}

/// The executors of a graph's subgraphs for node-by-node runs, made once, on first use when
/// `make` is given.
final class SubgraphExecutors: @unchecked Sendable {
    private var made: Result<[Int: [String: [Executor]]], RuntimeError>?
    private var make: (() throws(RuntimeError) -> [Int: [String: [Executor]]])?
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(made: [Int: [String: [Executor]]]) {
        self.made = .success(made)
        pthread_mutex_init(lock, nil)
    }

    init(make: @escaping () throws(RuntimeError) -> [Int: [String: [Executor]]]) {
        self.make = make
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    func executors() throws(RuntimeError) -> [Int: [String: [Executor]]] {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if made == nil, let make {
            do throws(RuntimeError) { made = .success(try make()) } catch { made = .failure(error) }
            self.make = nil
        }
        return try (made ?? .success([:])).get()
    }
}
