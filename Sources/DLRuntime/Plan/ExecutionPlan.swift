#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLKernels
import DLTensor

/// A graph specialised to one set of input shapes, built on the first run with those shapes and
/// reused by every later one.
///
/// - Values live in slots numbered once, so a run indexes an array instead of hashing names.
/// - Nodes whose inputs are all constant (initializers, Constant nodes, and `Shape`/`Size` of
///   values whose shape is now known) run once while the plan is built; their outputs become
///   constants of the plan and the nodes disappear from the steps. This folds the shape
///   arithmetic torch exports around Reshape.
/// - Output types are inferred once: a step whose output shapes are known for these input shapes
///   skips inference on every run. Steps whose shapes depend on data computed at run time keep
///   inferring per run, exactly as the unplanned executor does.
/// - Every value is dropped after its last reader.
/// - Control flow (If, Loop, Scan) is a step like any other: its subgraphs run through their own
///   executors (and their plans), reading the enclosing values they name from this plan's slots.
///
/// A plan is immutable once built; runs keep their values in a local slot array, so one plan
/// serves concurrent runs.
final class ExecutionPlan: Sendable {
    /// What a step runs.
    enum StepKernel: Sendable {
        /// A tensor kernel.
        case tensors(Kernel)
        /// A control-flow node (If, Loop, Scan): its value kernel, the executors of its graph
        /// attributes, and the slots of the enclosing values its subgraphs read by name.
        case subgraphs(ValueKernel, [String: [Executor]], outer: [(name: String, slot: Int)])
    }

    /// A class, not a struct: a run walks the steps once per run, and copying a struct of this
    /// many references retained and released each of them per step (a fifth of a tiny model's run).
    final class Step: Sendable {
        let node: Node
        let kernel: StepKernel
        /// Slot per node input; -1 for an input left out.
        let inputs: [Int]
        /// Slot per node output; -1 for an output left out.
        let outputs: [Int]
        /// Output types for these input shapes, or nil to infer them on every run.
        let types: [TensorType?]?
        /// For a step without `types`: what its last run inferred, reused while the inputs match.
        let inferred: InferredTypes?
        /// Slots whose last reader this step is (and outputs nobody reads).
        let release: [Int]
        /// The input (index) the output may overwrite, or -1: an elementwise op whose input of
        /// the output's type and shape dies here and is no graph input, output or constant.
        let inPlace: Int
        /// Constant weights packed for this step's kernel (see ``WeightPacks``), or nil.
        let packed: [PackedMatrix]?
        /// The node's window attributes, read once when the plan is built (window ops).
        let window: WindowAttributes?
        /// For a step whose output the plan places in its slab of a Concat's output.
        let slab: SlabTarget?
        /// For a Concat assembled in place (its inputs' slabs).
        let assembly: ConcatAssembly?

        init(node: Node, kernel: StepKernel, inputs: [Int], outputs: [Int], types: [TensorType?]?, inferred: InferredTypes?,
             release: [Int], inPlace: Int, packed: [PackedMatrix]?, window: WindowAttributes?, slab: SlabTarget?, assembly: ConcatAssembly?) {
            (self.node, self.kernel, self.inputs, self.outputs, self.types, self.inferred) = (node, kernel, inputs, outputs, types, inferred)
            (self.release, self.inPlace, self.packed, self.window, self.slab, self.assembly) = (release, inPlace, packed, window, slab, assembly)
        }
    }

    /// A step output's slab in the output of a Concat assembled in place.
    struct SlabTarget: Sendable {
        /// The Concat's number among the plan's assembled ones (its output's slot in a run).
        let group: Int
        /// The bytes of the Concat's whole output.
        let parentBytes: Int
        /// Where the slab starts in it, and its bytes.
        let offset: Int
        let byteCount: Int
    }

    /// A Concat whose output is assembled in place: the steps producing some of its inputs wrote
    /// their slabs; the Concat copies the others.
    struct ConcatAssembly: Sendable {
        let group: Int
        let dtype: DType
        let shape: [Int]
        /// Per input: its slab (offset and bytes), and whether its producer writes it there.
        let parts: [(offset: Int, byteCount: Int, written: Bool)]
    }

    /// What one run allocated and reused (for tests).
    struct RunStats: Sendable {
        /// Buffers the pool had to allocate (0 in steady state).
        var allocations = 0
        /// Free buffers the pool kept for the next run (steady too in steady state).
        var kept = 0
        /// Control-flow steps (If, Loop, Scan) of the plan.
        var controlFlowSteps = 0
        /// Step outputs whose storage came neither from the pool nor from an input (a kernel
        /// that allocates for itself).
        var unpooledOutputs = 0
        /// The nodes of those outputs.
        var unpooledNodes: [String] = []
        /// Steps that wrote their output over a dying input.
        var inPlaceSteps = 0
        /// Steps of the plan given packed weights.
        var packedSteps = 0
        /// Steps that wrote their output straight into their slab of a Concat's output.
        var slabSteps = 0
        /// Steps whose output types are inferred on every run (not known when the plan was built).
        var inferringSteps = 0
    }

    /// Ops whose kernels can write their output over an input of the same shape.
    static let inPlaceOps: Set<String> = ["Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh"]

    /// Output buffers recycled between steps and runs (one pool per concurrent run).
    let pools = PoolSet()
    /// Slots of the graph outputs.
    let outputSlots: [Int]

    let steps: [Step]
    /// Constants by slot (initializers and folded values); nil for computed values.
    let initial: [Tensor?]
    /// Slot of each graph input, in `graph.inputs` order.
    let inputSlots: [Int]
    /// Slot of every name (for outputs).
    let slotOf: [String: Int]
    /// How many nodes were folded away while building.
    let foldedCount: Int
    /// Concats assembled in place (see ``ConcatAssembly``).
    let assembledConcats: Int
    /// If nodes (by index in the planned graph) whose condition this plan knows before any run,
    /// and its value: the executor inlines their branches and plans again.
    let knownConditions: [Int: Bool]

    /// Ops never evaluated ahead of time: their results are random or depend on a training flag.
    static let unfoldable: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
        "Dropout",
    ]

    /// Builds the plan for `inputs` (tensors for every graph input, already checked).
    /// - Parameters:
    ///   - inPlace: let elementwise steps write over an input that dies there.
    ///   - subgraphs: executors of the graph attributes of `graph`'s nodes, by node index.
    ///   - dump: list the steps on stderr (a star marks those inferring per run).
    /// - Returns: nil when the graph cannot be planned for these inputs (an error while folding or
    ///   inferring); the caller then runs unplanned, which reports the error in its usual words.
    init?(graph: Graph, inputs: [String: Tensor], opset: Int?, packs: WeightPacks? = nil,
          subgraphs: [Int: [String: [Executor]]] = [:], inPlace inPlaceAllowed: Bool = true, dump: Bool = false) {
        var slotOf: [String: Int] = [:]
        func slot(_ name: String) -> Int {
            if let s = slotOf[name] { return s }
            let s = slotOf.count
            slotOf[name] = s
            return s
        }
        var types: [String: TensorType] = [:]
        var consts: [String: Tensor] = [:]
        for (name, t) in graph.initializers {
            types[name] = TensorType(dtype: t.dtype, shape: t.shape)
            consts[name] = t
            _ = slot(name)
        }
        var inputSlots: [Int] = []
        for v in graph.inputs {
            guard let t = inputs[v.name] else { return nil }
            types[v.name] = TensorType(dtype: t.dtype, shape: t.shape)
            inputSlots.append(slot(v.name))
        }

        var pending: [(node: Node, kernel: StepKernel, types: [TensorType?]?)] = []
        var folded = 0
        var knownConditions: [Int: Bool] = [:]
        for (index, node) in graph.nodes.enumerated() {
            if let subs = subgraphs[index] {
                if OpSet.isDefaultDomain(node), node.opType == "If", let cond = node.input(0).flatMap({ consts[$0] }),
                   cond.elementCount == 1, let value = cond.bools().first {
                    knownConditions[index] = value
                }
                // Typed by its subgraphs at run time: later nodes reading its outputs infer per run.
                guard let value = OpKernels.valueKernel(for: node), Self.yieldsTensors(node) else { return nil }
                var outer: [(name: String, slot: Int)] = []
                for name in node.subgraphOuterNames.sorted() {
                    guard let s = slotOf[name] else { return nil }
                    outer.append((name, s))
                }
                for name in node.outputs where !name.isEmpty { _ = slot(name) }
                pending.append((node, .subgraphs(value, subs, outer: outer), []))
                continue
            }
            for node in Self.unfused(node, in: graph, types: types, consts: consts, packing: packs != nil) {
                guard let kernel = OpKernels.kernel(for: node), node.subgraphs.isEmpty else { return nil }
                let present = node.inputs.filter { !$0.isEmpty }
                let isDefault = OpSet.isDefaultDomain(node)
                // Shape and Size of a value whose shape is known are constants of this plan.
                if isDefault, node.opType == "Shape" || node.opType == "Size", let x = present.first,
                   let shape = types[x]?.dims?.concrete, let out = node.outputs.first, !out.isEmpty {
                    guard let value = Self.shapeOp(node, shape: shape) else { return nil }
                    consts[out] = value
                    types[out] = TensorType(dtype: value.dtype, shape: value.shape)
                    _ = slot(out)
                    folded += 1
                    continue
                }
                let outTypes: [TensorType?]
                do { outTypes = try Graph.inferNode(node, types: types, values: consts) } catch { return nil }
                let concrete = outTypes.count >= node.outputs.count
                    && zip(node.outputs, outTypes).allSatisfy { $0.0.isEmpty || $0.1?.dims?.concrete != nil }
                if !Self.unfoldable.contains(node.opType), present.allSatisfy({ consts[$0] != nil }) {
                    // Every input is constant: evaluate now, with the output types a run would infer
                    // from these same values (nil for ops whose kernels size their own outputs).
                    var ctx = KernelContext(node: node, inputs: node.inputs.map { $0.isEmpty ? nil : consts[$0] }, outputTypes: outTypes)
                    ctx.values = ctx.inputs.map { $0.map { GraphValue.tensor($0) } }
                    ctx.opset = opset
                    if let results = try? kernel(ctx), results.count >= node.outputs.filter({ !$0.isEmpty }).count {
                        for (name, t) in zip(node.outputs, results) where !name.isEmpty {
                            consts[name] = t
                            types[name] = TensorType(dtype: t.dtype, shape: t.shape)
                            _ = slot(name)
                        }
                        folded += 1
                        continue
                    }
                    // A failing kernel stays a step: the run reports its error as unplanned runs do.
                }
                var stepTypes: [TensorType?]? = concrete ? outTypes : nil
                if !concrete, let probed = Self.probe(node, kernel: kernel, types: types, consts: consts, outTypes: outTypes, opset: opset) {
                    stepTypes = probed
                }
                for (name, t) in zip(node.outputs, stepTypes ?? []) where !name.isEmpty {
                    if let t { types[name] = t }
                }
                for name in node.outputs where !name.isEmpty { _ = slot(name) }
                pending.append((node, .tensors(kernel), stepTypes))
            }
        }
        for o in graph.outputs { _ = slot(o.name) }

        var lastUse: [Int: Int] = [:]
        for (i, p) in pending.enumerated() {
            for v in p.node.inputs where !v.isEmpty { lastUse[slotOf[v]!] = i }
            if case .subgraphs(_, _, let outer) = p.kernel { for (_, s) in outer { lastUse[s] = i } }
        }
        var keep = Set(graph.outputs.compactMap { slotOf[$0.name] })
        for name in consts.keys { if let s = slotOf[name] { keep.insert(s) } }
        var release = [[Int]](repeating: [], count: pending.count)
        for (s, i) in lastUse where !keep.contains(s) { release[i].append(s) }
        // Outputs nobody reads (LayerNormalization's statistics) go back to the pool at once.
        for (i, p) in pending.enumerated() {
            for o in p.node.outputs where !o.isEmpty {
                if let s = slotOf[o], lastUse[s] == nil, !keep.contains(s), !release[i].contains(s) { release[i].append(s) }
            }
        }
        let fedSlots = Set(inputSlots)
        var inPlace = [Int](repeating: -1, count: pending.count)
        for (i, p) in pending.enumerated() where inPlaceAllowed && OpSet.isDefaultDomain(p.node)
            && Self.inPlaceOps.contains(p.node.opType) {
            guard let out = p.types?.first ?? nil, out.dtype == .float32, let shape = out.dims?.concrete else { continue }
            for (k, name) in p.node.inputs.enumerated() where !name.isEmpty {
                guard let s = slotOf[name], lastUse[s] == i, !keep.contains(s), !fedSlots.contains(s),
                      let t = types[name], t.dtype == .float32, t.dims?.concrete == shape else { continue }
                inPlace[i] = k
                break
            }
        }

        // A Concat along an axis with only 1s before it reads its inputs as consecutive slabs of
        // its output. An input computed by a step of one output that dies at the Concat is written
        // by that step straight into its slab (`KernelContext.makeOutput`), and the Concat copies
        // only the others (yolov8n's C2f, SPPF and neck Concats copied 0.6 ms of 23).
        var slabs = [SlabTarget?](repeating: nil, count: pending.count)
        var assemblies = [ConcatAssembly?](repeating: nil, count: pending.count)
        var producer: [Int: Int] = [:]
        for (i, p) in pending.enumerated() { for o in p.node.outputs { if let s = slotOf[o] { producer[s] = i } } }
        var groups = 0
        for (i, p) in pending.enumerated() where inPlaceAllowed && OpSet.isDefaultDomain(p.node) && p.node.opType == "Concat" {
            guard case .tensors = p.kernel, let out = p.types?.first ?? nil, out.dtype != .string,
                  let shape = out.dims?.concrete, let axis = try? p.node.int("axis", default: 0),
                  (-shape.count..<shape.count).contains(axis), let total = ShapeMath.elementCount(shape) else { continue }
            let a = axis < 0 ? axis + shape.count : axis
            guard shape[..<a].allSatisfy({ $0 == 1 }) else { continue }
            var parts: [(offset: Int, byteCount: Int, written: Bool)] = []
            var writers: [(step: Int, offset: Int, byteCount: Int)] = []
            var offset = 0
            for name in p.node.inputs {
                guard !name.isEmpty, let t = types[name], t.dtype == out.dtype, let dims = t.dims?.concrete,
                      let n = ShapeMath.elementCount(dims) else { break }
                let bytes = n * out.dtype.byteWidth
                var written = false
                if bytes > 0, let s = slotOf[name], lastUse[s] == i, !keep.contains(s), !fedSlots.contains(s),
                   p.node.inputs.filter({ $0 == name }).count == 1, let j = producer[s], slabs[j] == nil, assemblies[j] == nil,
                   case .tensors = pending[j].kernel, pending[j].node.outputs.filter({ !$0.isEmpty }) == [name],
                   pending[j].node.outputs.first == name {
                    writers.append((j, offset, bytes))
                    written = true
                }
                parts.append((offset, bytes, written))
                offset += bytes
            }
            let parentBytes = total * out.dtype.byteWidth
            guard parts.count == p.node.inputs.count, offset == parentBytes, !writers.isEmpty else { continue }
            assemblies[i] = ConcatAssembly(group: groups, dtype: out.dtype, shape: shape, parts: parts)
            for (j, at, bytes) in writers {
                slabs[j] = SlabTarget(group: groups, parentBytes: parentBytes, offset: at, byteCount: bytes)
                // Its slab, not an input it dies over, is where the step writes.
                inPlace[j] = -1
            }
            groups += 1
        }

        steps = pending.enumerated().map { i, p in
            Step(node: p.node, kernel: p.kernel,
                 inputs: p.node.inputs.map { $0.isEmpty ? -1 : slotOf[$0]! },
                 outputs: p.node.outputs.map { $0.isEmpty ? -1 : slotOf[$0]! },
                 types: p.types, inferred: p.types == nil ? InferredTypes() : nil, release: release[i], inPlace: inPlace[i],
                 packed: packs?.packed(for: p.node, consts: consts, inputs: p.node.inputs.map { types[$0]?.dims?.concrete },
                                       outputType: p.types?.first ?? nil),
                 window: WindowAttributes.ifPresent(p.node), slab: slabs[i], assembly: assemblies[i])
        }
        assembledConcats = groups
        outputSlots = graph.outputs.compactMap { slotOf[$0.name] }
        var initial = [Tensor?](repeating: nil, count: slotOf.count)
        for (name, t) in consts { if let s = slotOf[name] { initial[s] = t } }
        self.initial = initial
        self.inputSlots = inputSlots
        self.slotOf = slotOf
        self.foldedCount = folded
        self.knownConditions = knownConditions
        if dump {
            var text = "plan: \(steps.count) steps, \(folded) nodes folded\n"
            for s in steps {
                let mark = s.inPlace >= 0 ? "=" : s.slab != nil ? ">" : " "
                text += "  \(s.types == nil ? "*" : " ")\(mark) \(s.node.displayName)\n"
            }
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// True when every output of `node`'s subgraphs is declared a tensor (or left untyped): the
    /// plan's slots hold tensors only, so a subgraph that yields sequences or optionals runs
    /// unplanned.
    static func yieldsTensors(_ node: Node) -> Bool {
        node.subgraphs.allSatisfy { $0.graph.outputs.allSatisfy { $0.container == nil } }
    }

    /// Runs a control-flow step: its subgraphs see the enclosing values they name.
    private static func runControlFlow(_ step: Step, _ kernel: ValueKernel, _ subs: [String: [Executor]],
                                       outer: [(name: String, slot: Int)], _ slots: [Tensor?], opset: Int?) throws(RuntimeError) -> [Tensor] {
        let tensors = step.inputs.map { $0 < 0 ? nil : slots[$0] }
        var scope: [String: GraphValue] = [:]
        for (name, s) in outer { if let t = slots[s] { scope[name] = .tensor(t) } }
        let node = step.node
        var ctx = KernelContext(node: node, inputs: tensors, outputTypes: [])
        ctx.values = tensors.map { $0.map { GraphValue.tensor($0) } }
        ctx.opset = opset
        ctx.subgraphRunner = { (attr: String, index: Int, inputs: [GraphValue]) throws(RuntimeError) -> [GraphValue] in
            guard let list = subs[attr], index < list.count else {
                throw .invalidInput(node: node.displayName, reason: "graph attribute '\(attr)' is missing")
            }
            return try list[index].runSubgraph(inputs, outer: scope)
        }
        var out: [Tensor] = []
        for (k, v) in try kernel(ctx).enumerated() {
            guard case .tensor(let t) = v else {
                throw .invalidInput(node: node.displayName, reason: "output \(k) is a \(v.kindName), where its subgraph declares a tensor")
            }
            out.append(t)
        }
        return out
    }

    /// `node` as this plan runs it for the types known so far: a FusedConvPool whose fused kernel
    /// would not take them (it takes a float32 2-D convolution with packed weights and output
    /// rows of at least 16 pixels: `Convolution.directMaxPool2Pays`) is its FusedConv and a
    /// MaxPool. Its kernel would fall back to the two on every run, building and typing a
    /// FusedConv node each time (a 12 x 12 TFLite CNN's: 20 us of its 49 us run).
    static func unfused(_ node: Node, in graph: Graph, types: [String: TensorType], consts: [String: Tensor], packing: Bool) -> [Node] {
        guard node.domain == FusedOps.domain, node.opType == "FusedConvPool", node.outputs.count == 1,
              let out = node.outputs.first, !out.isEmpty else { return [node] }
        if packing, let xName = node.input(0), let wName = node.input(1), consts[wName] != nil,
           let x = types[xName], let w = types[wName], x.dtype == .float32, w.dtype == .float32,
           let xs = x.dims?.concrete, let ws = w.dims?.concrete, xs.count == 4, ws.count == 4,
           let window = try? WindowAttributes(node: node),
           let g = try? window.geometry(input: Array(xs.dropFirst(2)), kernel: window.kernelShape ?? Array(ws.dropFirst(2)), isPooling: false),
           g.kernel.count == 2 {
            if Convolution.directMaxPool2Pays(Conv2DParams(input: xs, outChannels: ws[0], geometry: g, groups: window.group)) {
                return [node]
            }
        }
        let names = Set(graph.nodes.flatMap { $0.inputs + $0.outputs } + graph.inputs.map(\.name)).union(graph.initializers.map { $0.0 })
        var conv = out + "/conv"
        while names.contains(conv) { conv += "'" }
        return [Node(name: node.name, opType: "FusedConv", domain: FusedOps.domain, inputs: node.inputs, outputs: [conv],
                     attributes: node.attributes, docString: node.docString),
                Node(name: node.name + "/pool", opType: "MaxPool", inputs: [conv], outputs: [out],
                     attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))])]
    }

    /// Ops whose output shape depends on the values of their data input, not only its shape.
    static let dataShaped: Set<String> = ["NonZero", "Unique", "Compress", "TopK"]

    /// Inputs besides the first whose values never change an op's output shape, only their own
    /// shapes do: indices (Gather's output is shaped by its indices, whatever they point at),
    /// and a scatter's indices and updates.
    static let shapeOnlyInputs: [String: Set<Int>] = [
        "Gather": [1], "GatherElements": [1], "GatherND": [1],
        "ScatterElements": [1, 2], "Scatter": [1, 2], "ScatterND": [1, 2],
    ]

    /// Ops typed at run time whose output shape is their inputs' shapes broadcast, whatever the
    /// values: every input may be computed (a LayerNorm's `Max(epsilon, variance)`, an
    /// attention mask's `And` and `Where`).
    static let broadcasting: Set<String> = [
        "Mod", "Pow", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor",
        "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu", "Max", "Min", "Sum", "Mean", "Where", "Clip",
    ]

    /// The output types of a node typed at run time (Gather, Slice, Split, a Squeeze of computed
    /// axes... whose schemas leave shapes to the kernel) when its computed inputs are the first and those
    /// `shapeOnlyInputs` names (any, for the `broadcasting` ops), and every other input is
    /// constant: then the output shapes follow from the computed inputs' shapes alone, so running
    /// the kernel once on zeros of those shapes gives them for every run with these input shapes.
    /// Later nodes (Shape of the result, Reshape targets) can then fold too, and every step after
    /// a Split keeps its types (YOLOv8's C2f blocks left 206 of 209 steps inferring per run; an
    /// 8-bit softmax's table lookups, Gathers of a constant table by computed indices, left the
    /// 90 steps after them inferring).
    static func probe(_ node: Node, kernel: Kernel, types: [String: TensorType], consts: [String: Tensor],
                      outTypes: [TensorType?], opset: Int?) -> [TensorType?]? {
        guard OpSet.isDefaultDomain(node), !dataShaped.contains(node.opType), !unfoldable.contains(node.opType),
              !node.outputs.isEmpty, node.input(0) != nil else { return nil }
        let shapeOnly = shapeOnlyInputs[node.opType] ?? []
        var inputs: [Tensor?] = []
        var computed = 0
        for (k, name) in node.inputs.enumerated() {
            if name.isEmpty { inputs.append(nil); continue }
            if let c = consts[name] { inputs.append(c); continue }
            guard k == 0 || shapeOnly.contains(k) || broadcasting.contains(node.opType), let t = types[name], t.dtype != .string,
                  let shape = t.dims?.concrete, let n = ShapeMath.elementCount(shape) else { return nil }
            computed += n
            guard computed <= 1 << 24 else { return nil }
            inputs.append(Tensor(zeros: t.dtype, shape: shape))
        }
        var ctx = KernelContext(node: node, inputs: inputs, outputTypes: outTypes)
        ctx.values = inputs.map { $0.map { GraphValue.tensor($0) } }
        ctx.opset = opset
        guard let r = try? kernel(ctx), r.count == node.outputs.count else { return nil }
        return r.map { TensorType(dtype: $0.dtype, shape: $0.shape) }
    }

    /// The value of `Shape` (with its start/end) or `Size` for an input of `shape`.
    static func shapeOp(_ node: Node, shape: [Int]) -> Tensor? {
        if node.opType == "Size" {
            return Tensor.fromInt64s([Int64(shape.reduce(1, *))], dtype: .int64, shape: [])
        }
        guard let range = try? node.shapeRange(rank: shape.count) else { return nil }
        let dims = Array(shape[range])
        return Tensor.fromInt64s(dims.map(Int64.init), dtype: .int64, shape: [dims.count])
    }

    /// Runs the steps on `inputs` (graph input order) and returns the slots afterwards.
    func run(_ inputs: [Tensor], opset: Int?, recorder: ProfileRecorder? = nil) throws(RuntimeError) -> [Tensor?] {
        var stats = RunStats()
        return try run(inputs, opset: opset, stats: &stats, track: false, recorder: recorder)
    }

    /// ``run(_:opset:)``, counting in `stats` what the run allocated when `track` is set.
    func run(_ inputs: [Tensor], opset: Int?, stats: inout RunStats, track: Bool, recorder: ProfileRecorder? = nil) throws(RuntimeError) -> [Tensor?] {
        let pool = pools.checkOut()
        defer { pools.checkIn(pool) }
        pool.resetCounters()
        if track {
            stats.packedSteps = steps.filter { !($0.packed?.isEmpty ?? true) }.count
            stats.controlFlowSteps = steps.filter { if case .subgraphs = $0.kernel { true } else { false } }.count
            stats.inferringSteps = steps.filter { $0.types == nil }.count
        }
        var slots = initial
        for (s, t) in zip(inputSlots, inputs) { slots[s] = t }
        // The outputs of Concats assembled in place, from their first slab's step to the Concat.
        var parents = [TensorStorage?](repeating: nil, count: assembledConcats)
        for step in steps {
            pool.beginStep()
            var results: [Tensor]
            if let recorder {
                // Shapes only: holding the inputs would make them look shared to the in-place check.
                let shapes = step.inputs.map { $0 < 0 ? [] : slots[$0]?.shape ?? [] }
                results = try recorder.time(step.node, shapes: shapes) { () throws(RuntimeError) in
                    try execute(step, &slots, &parents, pool: pool, opset: opset, stats: &stats, track: track)
                }
            } else {
                results = try execute(step, &slots, &parents, pool: pool, opset: opset, stats: &stats, track: track)
            }
            for i in results.indices {
                if i < step.outputs.count, step.outputs[i] >= 0 {
                    slots[step.outputs[i]] = results[i]
                } else {
                    // An output the graph leaves out (LayerNormalization's statistics): recycle it.
                    var unused: Tensor? = results[i]
                    results[i] = Tensor(zeros: .float32, shape: [0])
                    pool.give(&unused)
                }
            }
            // Drop the results array's references first, so a dying value is seen as unique.
            results.removeAll()
            for s in step.release { pool.give(&slots[s]) }
        }
        for s in outputSlots { if let t = slots[s] { pool.lend(t) } }
        stats.allocations = pool.allocations
        if track { stats.kept = pool.freeCount }
        return slots
    }

    /// Runs one step's kernel; its context (holding the inputs) is gone when this returns.
    private func execute(_ step: Step, _ slots: inout [Tensor?], _ parents: inout [TensorStorage?], pool: BufferPool, opset: Int?,
                         stats: inout RunStats, track: Bool) throws(RuntimeError) -> [Tensor] {
        if let a = step.assembly, let parent = parents[a.group] {
            parents[a.group] = nil
            return [Self.assemble(a, parent, step.inputs.map { $0 < 0 ? nil : slots[$0] })]
        }
        var offer: SlabOffer? = nil
        if let target = step.slab {
            let parent = parents[target.group] ?? pool.take(byteCount: target.parentBytes)
            parents[target.group] = parent
            offer = SlabOffer(pool.slab(of: parent, offset: target.offset, byteCount: target.byteCount))
        }
        let results = try run(step, &slots, offer, pool: pool, opset: opset, stats: &stats, track: track)
        if let target = step.slab, let parent = parents[target.group], let first = results.first {
            let at = parent.bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) + target.offset }
            if first.withUnsafeBytes({ $0.baseAddress }) == at.map(UnsafeRawPointer.init) {
                if track { stats.slabSteps += 1 }
            } else if let at, first.byteCount == target.byteCount {
                // The kernel made its output elsewhere (a view of its input, its own allocation):
                // the slab gets a copy, as the Concat would have made.
                first.withUnsafeBytes { if let b = $0.baseAddress { at.copyMemory(from: b, byteCount: target.byteCount) } }
            } else {
                // Not the planned size: the Concat runs its own kernel on its inputs.
                parents[target.group] = nil
            }
        }
        return results
    }

    /// The output of Concat `a` in `parent`: the slabs its producers wrote, the other inputs copied in.
    private static func assemble(_ a: ConcatAssembly, _ parent: TensorStorage, _ inputs: [Tensor?]) -> Tensor {
        if let base = parent.bytes.baseAddress.map(UnsafeMutableRawPointer.init(mutating:)) {
            for (part, t) in zip(a.parts, inputs) where !part.written && part.byteCount > 0 {
                t?.withUnsafeBytes { if let b = $0.baseAddress { (base + part.offset).copyMemory(from: b, byteCount: part.byteCount) } }
            }
        }
        return Tensor(dtype: a.dtype, shape: a.shape, sharing: parent)
    }

    /// Runs one step's kernel (an output `offer`ed a slab); its context (holding the inputs) is
    /// gone when this returns.
    private func run(_ step: Step, _ slots: inout [Tensor?], _ offer: SlabOffer?, pool: BufferPool, opset: Int?,
                     stats: inout RunStats, track: Bool) throws(RuntimeError) -> [Tensor] {
        var inPlace: Int? = nil
        if step.inPlace >= 0, step.inputs[step.inPlace] >= 0,
           slots[step.inputs[step.inPlace]]?.isUniquelyOwnedAndWritable() == true {
            inPlace = step.inPlace
        }
        let kernel: Kernel
        switch step.kernel {
        case .tensors(let k): kernel = k
        case .subgraphs(let value, let subs, let outer):
            return try Self.runControlFlow(step, value, subs, outer: outer, slots, opset: opset)
        }
        do {
            let tensors = step.inputs.map { $0 < 0 ? nil : slots[$0] }
            // Tensor kernels read `inputs`; `values` is for value kernels, which plans never run.
            var ctx = KernelContext(node: step.node, inputs: tensors, outputTypes: step.types ?? [])
            ctx.opset = opset
            ctx.pool = pool
            ctx.inPlaceInput = inPlace
            ctx.packed = step.packed
            ctx.windowAttributes = step.window
            ctx.slab = offer
            if step.types == nil {
                let key = InferredTypes.key(tensors)
                if let key, let known = step.inferred?.types(for: key) {
                    ctx.outputTypes = known
                } else {
                    let node = step.node
                    do {
                        var typeMap: [String: TensorType] = [:]
                        var valueMap: [String: Tensor] = [:]
                        for (name, t) in zip(node.inputs, tensors) where !name.isEmpty {
                            if let t {
                                typeMap[name] = TensorType(dtype: t.dtype, shape: t.shape)
                                if InferredTypes.readsValues(of: t) { valueMap[name] = t }
                            }
                        }
                        ctx.outputTypes = try Graph.inferNode(node, types: typeMap, values: valueMap)
                    } catch { throw .node(node.displayName, error) }
                    if let key { step.inferred?.remember(ctx.outputTypes, for: key) }
                }
            }
            let results = try kernel(ctx)
            if track {
                var known = Set(pool.issued)
                for t in tensors { if let t, t.dtype != .string { known.insert(ObjectIdentifier(t.sharedStorage)) } }
                for t in results where t.dtype != .string && t.byteCount > 0 && !t.isMapped {
                    if !known.contains(ObjectIdentifier(t.sharedStorage)) {
                        stats.unpooledOutputs += 1
                        stats.unpooledNodes.append(step.node.displayName)
                    }
                }
                if let inPlace, let t = tensors[inPlace], results.contains(where: { $0.dtype != .string && $0.sharedStorage === t.sharedStorage }) {
                    stats.inPlaceSteps += 1
                }
            }
            return results
        }
    }
}

/// Plans by input shapes, shared by the copies of one executor. Bounded: past `limit` shapes the
/// oldest plans are dropped (a server fed ever-new shapes does not grow without end).
final class PlanCache: @unchecked Sendable {
    private var plans: [[[Int]]: ExecutionPlan] = [:]
    private var order: [[[Int]]] = []
    private var failed: Set<[[Int]]> = []
    /// The plan found or built last, and its key.
    private var recent: (key: [[Int]], plan: ExecutionPlan)?
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let limit = 16
    /// Packed weights shared by all the plans here; nil when packing is off.
    let packs: WeightPacks?

    init(packs: WeightPacks?) {
        self.packs = packs
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// The plan for `key`, built with `make` on first use; nil when it cannot be planned.
    func plan(for key: [[Int]], make: () -> ExecutionPlan?) -> ExecutionPlan? {
        pthread_mutex_lock(lock)
        // Runs mostly repeat the last shapes: comparing with them spares hashing the key (a
        // graph with control flow looks up a plan per subgraph run).
        if let recent, recent.key == key {
            pthread_mutex_unlock(lock)
            return recent.plan
        }
        if let p = plans[key] {
            recent = (key, p)
            pthread_mutex_unlock(lock)
            return p
        }
        let knownBad = failed.contains(key)
        pthread_mutex_unlock(lock)
        if knownBad { return nil }
        // Built outside the lock: two threads may both build the first plan; one wins.
        let p = make()
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard let p else {
            if failed.count < 64 { failed.insert(key) }
            return nil
        }
        if plans[key] == nil {
            if order.count >= limit { plans[order.removeFirst()] = nil }
            plans[key] = p
            order.append(key)
        }
        recent = plans[key].map { (key, $0) }
        return plans[key]
    }
}

/// The output types a step without plan-time types inferred on its last run, with the key of
/// the inputs they came from: every input's dtype and shape, and the values of small integer
/// inputs, the only values run-time inference is given (a Reshape's target shape). A step after
/// a data-dependent If (silero-vad's decoder) then infers once, not on every run.
final class InferredTypes: @unchecked Sendable {
    private var key: [Int] = []
    private var types: [TensorType?]? = nil
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(lock, nil) }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Integer inputs of at most this many elements have their values read (and keyed).
    static let valueLimit = 16

    static func readsValues(of t: Tensor) -> Bool {
        t.dtype.isInteger && t.elementCount <= valueLimit
    }

    /// The key of these inputs; nil for an input that cannot be keyed (strings).
    static func key(_ tensors: [Tensor?]) -> [Int]? {
        var key: [Int] = []
        for t in tensors {
            guard let t else {
                key.append(-1)
                continue
            }
            guard t.dtype != .string, let code = DType.allCases.firstIndex(of: t.dtype) else { return nil }
            key.append(code)
            key.append(t.rank)
            key += t.shape
            if readsValues(of: t) { t.withUnsafeBytes { key += $0.map { Int($0) } } }
        }
        return key
    }

    func types(for key: [Int]) -> [TensorType?]? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return self.key == key ? types : nil
    }

    func remember(_ types: [TensorType?], for key: [Int]) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        self.key = key
        self.types = types
    }
}
