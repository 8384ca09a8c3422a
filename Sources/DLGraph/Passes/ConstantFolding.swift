import DLTensor

/// Evaluates, once, the parts of the graph that do not depend on what a caller feeds:
///
/// - `Constant` nodes become initializers (so the fusion passes, which look for initializer
///   weights, see them).
/// - A node whose inputs are all constant and small becomes an initializer holding its result,
///   for the shape-sized ops exporters emit around Reshape (`evaluatedOps`: Shape, Size, Gather,
///   Unsqueeze, Squeeze, Reshape, Flatten, Concat, Slice, Cast, arithmetic, Equal, Where, Range,
///   ConstantOfShape). The result comes from an `Evaluator`: DLGraph may not import the kernels,
///   so the runtime hands its own in (`DLRuntime.KernelFolding`), and a node folds to exactly
///   what it would give when run. An evaluator that declines, or throws, leaves the node to run.
/// - Shapes are followed symbolically: `Shape(x)` of a value whose type has some fixed dims is a
///   vector of known and unknown entries, and Gather/Slice/Concat/Unsqueeze/Squeeze/arithmetic on
///   such vectors keep the entries that are known. A result with every entry known is folded, so
///   `Shape -> Gather -> Unsqueeze -> Concat` chains fold when they pick only fixed dims, and
///   anything depending on a symbolic dim (`batch`) stays for the runtime plan, which folds it
///   once per concrete input shape.
///
/// - A `Transpose` of an initializer no other node reads is folded whatever its size: a weight
///   stored the other way round (OpenVINO IR's `MatMul` with `transpose_b`) becomes the weight
///   the fusion passes and the packed kernels look for, and the copy replaces the original
///   (the original initializer is dropped).
///
/// Graph outputs are never folded (their producing node stays), nor initializers a caller may
/// override (those listed as graph inputs), nor random ops. Nodes whose outputs nobody reads any
/// more are then removed (`EliminateDeadNodes.removeDead`).
///
/// As a `GraphPass` on its own (no evaluator) it does the first and the last: `Constant` nodes
/// and symbolic shapes.
package enum ConstantFolding: GraphPass {
    public static let name = "constant-folding"
    /// The largest result (in elements) folded into an initializer; larger inputs are not read.
    public static let maxElements = 4096

    /// Computes a node on constant inputs (nil where an input is left out), one tensor per
    /// output; nil when it cannot.
    public typealias Evaluator = (Node, [Tensor?]) -> [Tensor]?

    /// The ops whose all-constant nodes are evaluated: the shape-sized arithmetic exporters emit,
    /// nothing that fusion passes or writers look for (weights stay quantized, Conv stays Conv).
    public static let evaluatedOps: Set<String> = [
        "Shape", "Size", "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Gather", "Slice",
        "Concat", "Add", "Sub", "Mul", "Div", "Mod", "Sqrt", "Reciprocal", "Neg", "Equal", "Where", "Range",
        "ConstantOfShape",
    ]

    public static func run(_ graph: inout Graph) -> Bool { run(&graph, evaluate: nil) }

    public static func run(_ graph: inout Graph, evaluate: Evaluator?) -> Bool {
        let fed = Set(graph.inputs.map(\.name))
        let graphOutputs = Set(graph.outputs.map(\.name))
        let readers = graph.readerCounts()
        var consts: [String: Tensor] = [:]
        var types: [String: TensorType] = [:]
        for (name, t) in graph.initializers {
            types[name] = TensorType(dtype: t.dtype, shape: t.shape)
            if !fed.contains(name) { consts[name] = t }
        }
        for v in graph.inputs { if let t = v.type { types[v.name] = t } }
        // Integer vectors known entry by entry (shape arithmetic with symbolic dims).
        var partial: [String: SymVector] = [:]
        var folded: [(name: String, tensor: Tensor)] = []
        /// Initializers whose one reader was folded (a transposed weight's original).
        var replaced: [String] = []
        var remove = Set<Int>()

        for (i, node) in graph.nodes.enumerated() {
            let foldable = OpSet.isDefaultDomain(node) && node.subgraphs.isEmpty && node.outputs.count == 1
                && !node.outputs[0].isEmpty && !graphOutputs.contains(node.outputs[0])
            var result: Tensor? = nil
            if foldable {
                if node.opType == "Constant" {
                    result = try? ConstantOp.value(of: node)
                } else if let evaluate, evaluatedOps.contains(node.opType), !node.inputs.isEmpty,
                          node.inputs.allSatisfy({ $0.isEmpty || (consts[$0]?.elementCount ?? .max) <= maxElements }) {
                    result = evaluate(node, node.inputs.map { $0.isEmpty ? nil : consts[$0] })?.first
                    if let r = result, r.elementCount > maxElements { result = nil }
                } else if let evaluate, node.opType == "Transpose", node.inputs.count == 1,
                          readers[node.inputs[0]] == 1,
                          let weight = consts[node.inputs[0]] {
                    result = evaluate(node, [weight])?.first
                    if result != nil { replaced.append(node.inputs[0]) }
                }
                if result == nil, let sym = SymVector.evaluate(node, partial: partial, consts: consts, types: types) {
                    if let t = sym.tensor { result = t } else { partial[node.outputs[0]] = sym }
                }
            }
            if let r = result {
                let out = node.outputs[0]
                consts[out] = r
                types[out] = TensorType(dtype: r.dtype, shape: r.shape)
                folded.append((out, r))
                remove.insert(i)
                continue
            }
            if let outs = try? Graph.inferNode(node, types: types, values: consts) {
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty {
                    if let t { types[name] = t }
                }
            }
        }
        var changed = false
        if !remove.isEmpty {
            for (name, t) in folded { graph.initializers[name] = t }
            for name in replaced { graph.initializers[name] = nil }
            graph.rewrite(removing: remove)
            changed = true
        }
        if EliminateDeadNodes.removeDead(&graph) { changed = true }
        return changed
    }
}

/// A rank-0 or rank-1 int64 value whose entries may be known (`.fixed`) or not.
struct SymVector {
    var entries: [Dim]
    var isScalar: Bool

    /// The value as a tensor when every entry is known.
    var tensor: Tensor? {
        var v: [Int64] = []
        for e in entries {
            guard let x = e.value else { return nil }
            v.append(Int64(x))
        }
        return Tensor(shape: isScalar ? [] : [v.count], scalars: v)
    }

    init(entries: [Dim], isScalar: Bool) {
        self.entries = entries
        self.isScalar = isScalar
    }

    /// A small int64 constant of rank 0 or 1 as fully known entries.
    init?(_ t: Tensor) {
        guard t.dtype == .int64, t.rank <= 1, t.elementCount <= ConstantFolding.maxElements else { return nil }
        entries = t.scalars(as: Int64.self).map { .fixed(Int($0)) }
        isScalar = t.rank == 0
    }

    /// The elements of a rank-0 or rank-1 int64/int32 tensor (exactly: never through Double, so
    /// INT64_MAX, which torch writes for "to the end", stays what it is).
    static func smallInts(_ t: Tensor) -> [Int]? {
        guard t.rank <= 1, t.elementCount <= ConstantFolding.maxElements else { return nil }
        switch t.dtype {
        case .int64: return t.scalars(as: Int64.self).map { Int($0) }
        case .int32: return t.scalars(as: Int32.self).map { Int($0) }
        default: return nil
        }
    }

    /// The entry-wise result of `node` when its inputs are partly known vectors; nil when the op
    /// or its operands are outside what is followed.
    static func evaluate(_ node: Node, partial: [String: SymVector], consts: [String: Tensor],
                         types: [String: TensorType]) -> SymVector? {
        func operand(_ i: Int) -> SymVector? {
            guard let name = node.input(i) else { return nil }
            if let p = partial[name] { return p }
            if let c = consts[name] { return SymVector(c) }
            return nil
        }
        func constInts(_ i: Int) -> [Int]? {
            guard let name = node.input(i), let c = consts[name] else { return nil }
            return SymVector.smallInts(c)
        }
        switch node.opType {
        case "Shape":
            guard let x = node.input(0), let dims = types[x]?.dims else { return nil }
            guard let range = try? node.shapeRange(rank: dims.count) else { return nil }
            return SymVector(entries: Array(dims[range]), isScalar: false)
        case "Size":
            guard let x = node.input(0), let dims = types[x]?.dims else { return nil }
            return SymVector(entries: [DimMath.product(dims[...])], isScalar: true)
        case "Gather":
            guard let data = operand(0), !data.isScalar, (try? node.int("axis", default: 0)) == 0,
                  let name = node.input(1), let idx = consts[name], idx.rank <= 1, let ids = constInts(1) else { return nil }
            var out: [Dim] = []
            for i in ids {
                let j = i < 0 ? i + data.entries.count : i
                guard j >= 0, j < data.entries.count else { return nil }
                out.append(data.entries[j])
            }
            return SymVector(entries: out, isScalar: idx.rank == 0)
        case "Unsqueeze":
            guard let x = operand(0), x.isScalar else { return nil }
            guard let axes = constInts(1), axes.count == 1, axes[0] == 0 || axes[0] == -1 else { return nil }
            return SymVector(entries: x.entries, isScalar: false)
        case "Squeeze":
            guard let x = operand(0), !x.isScalar, x.entries.count == 1 else { return nil }
            if node.input(1) != nil {
                guard let axes = constInts(1), axes.count == 1, axes[0] == 0 || axes[0] == -1 else { return nil }
            }
            return SymVector(entries: x.entries, isScalar: true)
        case "Concat":
            guard (try? node.int("axis", default: 0)).map({ $0 == 0 || $0 == -1 }) == true else { return nil }
            var out: [Dim] = []
            for i in node.inputs.indices {
                guard let v = operand(i), !v.isScalar else { return nil }
                out += v.entries
            }
            return SymVector(entries: out, isScalar: false)
        case "Slice":
            guard let x = operand(0), !x.isScalar, let starts = constInts(1), let ends = constInts(2),
                  starts.count == 1, ends.count == 1 else { return nil }
            if node.input(3) != nil { guard let axes = constInts(3), axes == [0] || axes == [-1] else { return nil } }
            var step = 1
            if node.input(4) != nil { guard let s = constInts(4), s.count == 1, s[0] != 0 else { return nil }; step = s[0] }
            let n = x.entries.count
            guard let range = SliceMath.indices(start: starts[0], end: ends[0], step: step, count: n) else { return nil }
            return SymVector(entries: range.map { x.entries[$0] }, isScalar: false)
        case "Cast":
            guard let x = operand(0), let to = try? node.int("to", default: 0), to == 7 else { return nil }
            return x
        case "Add", "Sub", "Mul", "Div":
            guard let a = operand(0), let b = operand(1) else { return nil }
            guard partial[node.inputs[0]] != nil || partial[node.inputs[1]] != nil else { return nil }
            let n = max(a.entries.count, b.entries.count)
            guard a.entries.count == n || a.entries.count == 1, b.entries.count == n || b.entries.count == 1 else { return nil }
            var out: [Dim] = []
            for i in 0..<n {
                let x = a.entries[a.entries.count == 1 ? 0 : i], y = b.entries[b.entries.count == 1 ? 0 : i]
                out.append(combine(node.opType, x, y))
            }
            return SymVector(entries: out, isScalar: a.isScalar && b.isScalar)
        default:
            return nil
        }
    }

    static func combine(_ op: String, _ x: Dim, _ y: Dim) -> Dim {
        if let a = x.value, let b = y.value {
            switch op {
            case "Add": return a.addingReportingOverflow(b).overflow ? .unknown : .fixed(a + b)
            case "Sub": return a.subtractingReportingOverflow(b).overflow ? .unknown : .fixed(a - b)
            case "Mul": return a.multipliedReportingOverflow(by: b).overflow ? .unknown : .fixed(a * b)
            default: return a >= 0 && b > 0 ? .fixed(a / b) : .unknown
            }
        }
        // x + 0, x - 0, x * 1, x / 1 keep the symbol.
        switch (op, y.value) {
        case ("Add", 0?), ("Sub", 0?), ("Mul", 1?), ("Div", 1?): return x
        default: break
        }
        if op == "Add" || op == "Mul", x.value == (op == "Add" ? 0 : 1) { return y }
        return .unknown
    }
}

/// Slice index arithmetic as ONNX defines it (clamped starts and ends, any step).
enum SliceMath {
    static func indices(start: Int, end: Int, step: Int, count n: Int) -> [Int]? {
        guard step != 0 else { return nil }
        var s = start < 0 ? start + n : start
        var e = end < 0 ? end + n : end
        if step > 0 {
            s = min(max(s, 0), n)
            e = min(max(e, 0), n)
            return s < e ? Array(stride(from: s, to: e, by: step)) : []
        }
        s = min(max(s, -1), n - 1)
        e = min(max(e, -1), n - 1)
        return s > e ? Array(stride(from: s, to: e, by: step)) : []
    }
}
