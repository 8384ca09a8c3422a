import DLTensor

/// Evaluates, once, the parts of the graph that do not depend on what a caller feeds:
///
/// - `Constant` nodes become initializers (so the fusion passes, which look for initializer
///   weights, see them).
/// - A node whose inputs are all constant and small becomes an initializer holding its result,
///   for the shape-sized ops exporters emit around Reshape: Shape, Size, Gather, Unsqueeze,
///   Squeeze, Reshape, Flatten, Concat, Slice, Cast, Add/Sub/Mul/Div/Mod, Sqrt/Reciprocal/Neg,
///   Equal, Where, Range, ConstantOfShape.
/// - Shapes are followed symbolically: `Shape(x)` of a value whose type has some fixed dims is a
///   vector of known and unknown entries, and Gather/Slice/Concat/Unsqueeze/Squeeze/arithmetic on
///   such vectors keep the entries that are known. A result with every entry known is folded, so
///   `Shape -> Gather -> Unsqueeze -> Concat` chains fold when they pick only fixed dims, and
///   anything depending on a symbolic dim (`batch`) stays for the runtime plan, which folds it
///   once per concrete input shape.
///
/// The evaluator lives here because DLGraph may not import the kernels: it handles only small
/// tensors (at most `maxElements` elements) and only the cases whose result it computes exactly
/// as the kernels do (integer division and modulo only for non-negative operands, float math only
/// on float32 with IEEE-exact operations). Anything else is left to the runtime.
///
/// Graph outputs are never folded (their producing node stays), nor initializers a caller may
/// override (those listed as graph inputs), nor random ops. Nodes whose outputs nobody reads any
/// more are then removed (`EliminateDeadNodes.removeDead`).
public enum ConstantFolding: GraphPass {
    public static let name = "constant-folding"
    /// The largest result (in elements) folded into an initializer.
    public static let maxElements = 4096

    public static func run(_ graph: inout Graph) -> Bool {
        let fed = Set(graph.inputs.map(\.name))
        let graphOutputs = Set(graph.outputs.map(\.name))
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
        var remove = Set<Int>()

        for (i, node) in graph.nodes.enumerated() {
            let foldable = OpSet.isDefaultDomain(node) && node.subgraphs.isEmpty && node.outputs.count == 1
                && !node.outputs[0].isEmpty && !graphOutputs.contains(node.outputs[0])
            var result: Tensor? = nil
            if foldable {
                if node.opType == "Constant" {
                    result = try? ConstantOp.value(of: node)
                } else if node.inputs.allSatisfy({ $0.isEmpty || consts[$0] != nil }), !node.inputs.isEmpty {
                    result = FoldEvaluator.evaluate(node, node.inputs.map { $0.isEmpty ? nil : consts[$0] })
                    if let r = result, r.elementCount > maxElements { result = nil }
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
            return FoldEvaluator.smallInts(c)
        }
        switch node.opType {
        case "Shape":
            guard let x = node.input(0), let dims = types[x]?.dims else { return nil }
            let r = dims.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
            guard let start = try? node.int("start", default: 0), let end = try? node.int("end", default: r) else { return nil }
            let s = clamp(start), e = clamp(end)
            return SymVector(entries: s < e ? Array(dims[s..<e]) : [], isScalar: false)
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
            let axes = node.inputs.count > 1 ? constInts(1) : (try? node.ints("axes")) ?? nil
            guard let axes, axes.count == 1, axes[0] == 0 || axes[0] == -1 else { return nil }
            return SymVector(entries: x.entries, isScalar: false)
        case "Squeeze":
            guard let x = operand(0), !x.isScalar, x.entries.count == 1 else { return nil }
            let axes = node.inputs.count > 1 ? constInts(1) : (try? node.ints("axes")) ?? nil
            if let axes { guard axes.count == 1, axes[0] == 0 || axes[0] == -1 else { return nil } }
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

/// Exact evaluation of small all-constant nodes (see `ConstantFolding`).
enum FoldEvaluator {
    static func evaluate(_ node: Node, _ inputs: [Tensor?]) -> Tensor? {
        // Whole-byte element types only: sub-byte types are packed, and the byte-level picking
        // below assumes one element per `byteWidth` bytes.
        for t in inputs {
            if let t, t.dtype == .string || t.dtype.bitWidth < 8 || t.elementCount > ConstantFolding.maxElements { return nil }
        }
        func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
        func ints(_ i: Int) -> [Int]? { input(i).flatMap(smallInts) }
        switch node.opType {
        case "Shape", "Size":
            // The shape of a constant: exact whatever the elements are.
            guard let x = input(0) else { return nil }
            let types = [node.inputs[0]: TensorType(dtype: x.dtype, shape: x.shape)]
            return SymVector.evaluate(node, partial: [:], consts: [:], types: types)?.tensor
        case "Identity":
            return input(0)
        case "Cast":
            guard let x = input(0), let code = try? node.int("to", default: 0), let to = DType(onnxCode: Int32(code)) else { return nil }
            guard x.dtype == to || (x.dtype.isIntegerType && [DType.int64, .int32, .float32, .float64].contains(to)) else { return nil }
            return x.converted(to: to)
        case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            guard let x = input(0), let shape = reshapedShape(node, x, ints(1)) else { return nil }
            return try? x.reshaped(to: shape)
        case "Gather":
            guard let x = input(0), x.rank >= 1, let idx = input(1), let ids = ints(1),
                  let a = try? node.int("axis", default: 0), let axis = Axes.normalise(a, rank: x.rank) else { return nil }
            var picks: [Int] = []
            for i in ids {
                let j = i < 0 ? i + x.shape[axis] : i
                guard j >= 0, j < x.shape[axis] else { return nil }
                picks.append(j)
            }
            var shape = Array(x.shape[..<axis])
            shape += idx.shape
            shape += x.shape[(axis + 1)...]
            return pick(x, axis: axis, picks: picks, shape: shape)
        case "Slice":
            guard let x = input(0), x.rank == 1, let starts = ints(1), let ends = ints(2), starts.count == 1, ends.count == 1 else { return nil }
            if input(3) != nil { guard let axes = ints(3), axes == [0] || axes == [-1] else { return nil } }
            var step = 1
            if input(4) != nil { guard let s = ints(4), s.count == 1 else { return nil }; step = s[0] }
            guard let picks = SliceMath.indices(start: starts[0], end: ends[0], step: step, count: x.shape[0]) else { return nil }
            return pick(x, axis: 0, picks: picks, shape: [picks.count])
        case "Concat":
            guard let a = try? node.int("axis", default: 0), let first = input(0) else { return nil }
            let parts = inputs.compactMap { $0 }
            guard parts.count == node.inputs.count, let axis = Axes.normalise(a, rank: first.rank),
                  parts.allSatisfy({ $0.dtype == first.dtype && $0.rank == first.rank }) else { return nil }
            for p in parts { for d in 0..<first.rank where d != axis { guard p.shape[d] == first.shape[d] else { return nil } } }
            var shape = first.shape
            shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
            return concat(parts, axis: axis, shape: shape)
        case "Add", "Sub", "Mul", "Div", "Mod":
            guard let a = input(0), let b = input(1), a.dtype == b.dtype else { return nil }
            if node.opType == "Mod", (try? node.int("fmod", default: 0)) != 0 { return nil }
            if a.dtype == .int64 {
                return binary(a, b, Int64.self) { x, y -> Int64? in
                    switch node.opType {
                    // An overflow is left to the kernel.
                    case "Add": return x.addingReportingOverflow(y).overflow ? nil : x + y
                    case "Sub": return x.subtractingReportingOverflow(y).overflow ? nil : x - y
                    case "Mul": return x.multipliedReportingOverflow(by: y).overflow ? nil : x * y
                    case "Div": return x >= 0 && y > 0 ? x / y : nil
                    default: return x >= 0 && y > 0 ? x % y : nil
                    }
                }
            }
            guard a.dtype == .float32, node.opType != "Mod" else { return nil }
            return binary(a, b, Float.self) { x, y -> Float? in
                switch node.opType {
                case "Add": return x + y
                case "Sub": return x - y
                case "Mul": return x * y
                default: return x / y
                }
            }
        case "Sqrt", "Reciprocal", "Neg":
            guard let x = input(0), x.dtype == .float32 || (node.opType == "Neg" && x.dtype == .int64) else { return nil }
            if x.dtype == .int64 {
                let v = x.scalars(as: Int64.self)
                guard !v.contains(.min) else { return nil }
                return Tensor(shape: x.shape, scalars: v.map { -$0 })
            }
            let v = x.scalars(as: Float.self)
            switch node.opType {
            case "Sqrt": return Tensor(shape: x.shape, scalars: v.map { $0.squareRoot() })
            case "Reciprocal": return Tensor(shape: x.shape, scalars: v.map { 1 / $0 })
            default: return Tensor(shape: x.shape, scalars: v.map { -$0 })
            }
        case "Equal":
            guard let a = input(0), let b = input(1), a.dtype == b.dtype, a.dtype == .int64 else { return nil }
            return binary(a, b, Int64.self, out: Bool.self) { x, y in x == y }
        case "Where":
            guard let c = input(0), let a = input(1), let b = input(2), c.dtype == .bool, a.dtype == b.dtype,
                  a.dtype == .int64 || a.dtype == .float32 else { return nil }
            let shapes = [c.shape, a.shape, b.shape].filter { $0.reduce(1, *) != 1 }
            let shape = shapes.first ?? [c.shape, a.shape, b.shape].max(by: { $0.count < $1.count }) ?? []
            guard shapes.allSatisfy({ $0 == shape }), [c, a, b].allSatisfy({ $0.rank <= shape.count }) else { return nil }
            let cond = c.scalars(as: Bool.self)
            let n = shape.reduce(1, *)
            func sel<T: TensorScalar>(_: T.Type) -> Tensor {
                let x = a.scalars(as: T.self), y = b.scalars(as: T.self)
                return Tensor(shape: shape, scalars: (0..<n).map { i in
                    cond[cond.count == 1 ? 0 : i] ? x[x.count == 1 ? 0 : i] : y[y.count == 1 ? 0 : i]
                })
            }
            return a.dtype == .int64 ? sel(Int64.self) : sel(Float.self)
        case "Range":
            guard let s = input(0), let l = input(1), let d = input(2), [s, l, d].allSatisfy({ $0.dtype == .int64 && $0.elementCount == 1 }) else { return nil }
            let start = s.scalars(as: Int64.self)[0], limit = l.scalars(as: Int64.self)[0], delta = d.scalars(as: Int64.self)[0]
            // Bounded operands first, so the count below cannot overflow.
            let bound: Int64 = 1 << 40
            guard delta != 0, abs(start) < bound, abs(limit) < bound, abs(delta) < bound else { return nil }
            let count = Int(max(0, (limit - start + delta - (delta > 0 ? 1 : -1)) / delta))
            guard count <= ConstantFolding.maxElements else { return nil }
            return Tensor(shape: [count], scalars: (0..<count).map { start + Int64($0) * delta })
        case "ConstantOfShape":
            guard let dims = ints(0), input(0)?.rank == 1,
                  dims.allSatisfy({ $0 >= 0 && $0 <= ConstantFolding.maxElements }),
                  let n = boundedProduct(dims) else { return nil }
            let value = (try? node.tensor("value")) ?? nil
            let v = value ?? Tensor(shape: [1], scalars: [Float(0)])
            guard v.elementCount == 1, v.dtype != .string, v.dtype.bitWidth >= 8 else { return nil }
            return pick(v.reshaped1(), axis: 0, picks: Array(repeating: 0, count: n), shape: dims)
        default:
            return nil
        }
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

    /// The output shape of Unsqueeze/Squeeze/Reshape/Flatten on `x`; nil when not exact here.
    static func reshapedShape(_ node: Node, _ x: Tensor, _ second: [Int]?) -> [Int]? {
        switch node.opType {
        case "Reshape":
            guard let target = second, let dims = try? ReshapeOp.outputDims(
                node: node, input: x.shape.map { .fixed($0) }, target: target,
                allowZero: (try? node.int("allowzero", default: 0)) != 0) else { return nil }
            return dims.concrete
        case "Flatten":
            guard let a = try? node.int("axis", default: 1), let axis = Axes.normalise(a, rank: x.rank, inclusive: true) else { return nil }
            return [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)]
        case "Unsqueeze":
            guard let axes = node.inputs.count > 1 ? second : ((try? node.ints("axes")) ?? nil) else { return nil }
            let r = x.rank + axes.count
            guard let norm = Axes.normalise(axes, rank: r) else { return nil }
            var out: [Int] = []
            var it = x.shape.makeIterator()
            for i in 0..<r { out.append(norm.contains(i) ? 1 : (it.next() ?? 1)) }
            return out
        default:
            let given = node.inputs.count > 1 ? second : ((try? node.ints("axes")) ?? nil)
            guard let axes = given ?? Optional(x.shape.indices.filter { x.shape[$0] == 1 }) else { return nil }
            guard let norm = Axes.normalise(axes, rank: x.rank), norm.allSatisfy({ x.shape[$0] == 1 }) else { return nil }
            return x.shape.indices.filter { !norm.contains($0) }.map { x.shape[$0] }
        }
    }

    /// The product of `dims` when it is at most `maxElements` (checked at every step).
    static func boundedProduct(_ dims: [Int]) -> Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= ConstantFolding.maxElements else { return nil }
            n = p
        }
        return n
    }

    /// Elements of `x` picked along `axis` (`picks` in order), as `shape`.
    static func pick(_ x: Tensor, axis: Int, picks: [Int], shape: [Int]) -> Tensor? {
        let w = x.dtype.byteWidth
        guard w > 0 else { return nil }
        guard boundedProduct(shape) != nil else { return nil }
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *) * w
        let n = x.shape[axis]
        var bytes = [UInt8](repeating: 0, count: outer * picks.count * inner)
        x.withUnsafeBytes { src in
            var o = 0
            for b in 0..<outer {
                for p in picks {
                    for k in 0..<inner { bytes[o + k] = src[(b * n + p) * inner + k] }
                    o += inner
                }
            }
        }
        return bytes.withUnsafeBytes { try? Tensor(dtype: x.dtype, shape: shape, bytes: $0) }
    }

    static func concat(_ parts: [Tensor], axis: Int, shape: [Int]) -> Tensor? {
        let w = parts[0].dtype.byteWidth
        guard w > 0, boundedProduct(shape) != nil else { return nil }
        let outer = shape[..<axis].reduce(1, *)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(shape.reduce(1, *) * w)
        for b in 0..<outer {
            for p in parts {
                let chunk = p.shape[axis...].reduce(1, *) * w
                p.withUnsafeBytes { src in bytes.append(contentsOf: src[(b * chunk)..<((b + 1) * chunk)]) }
            }
        }
        return bytes.withUnsafeBytes { try? Tensor(dtype: parts[0].dtype, shape: shape, bytes: $0) }
    }

    /// Elementwise `f` with broadcasting limited to equal shapes or a one-element operand.
    static func binary<T: TensorScalar, U: TensorScalar>(_ a: Tensor, _ b: Tensor, _: T.Type, out: U.Type = U.self,
                                                          _ f: (T, T) -> U?) -> Tensor? {
        let shape: [Int]
        if a.shape == b.shape { shape = a.shape }
        else if b.elementCount == 1, b.rank <= a.rank { shape = a.shape }
        else if a.elementCount == 1, a.rank <= b.rank { shape = b.shape }
        else { return nil }
        let x = a.scalars(as: T.self), y = b.scalars(as: T.self)
        var out: [U] = []
        out.reserveCapacity(max(x.count, y.count))
        for i in 0..<shape.reduce(1, *) {
            guard let v = f(x[x.count == 1 ? 0 : i], y[y.count == 1 ? 0 : i]) else { return nil }
            out.append(v)
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func binary<T: TensorScalar>(_ a: Tensor, _ b: Tensor, _ t: T.Type, _ f: (T, T) -> T?) -> Tensor? {
        binary(a, b, t, out: T.self, f)
    }
}

extension Tensor {
    /// The elements as a rank-1 tensor (shares storage).
    fileprivate func reshaped1() -> Tensor { (try? reshaped(to: [elementCount])) ?? self }
}

extension DType {
    fileprivate var isIntegerType: Bool {
        [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64].contains(self)
    }
}
