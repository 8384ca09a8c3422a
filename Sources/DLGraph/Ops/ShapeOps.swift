import DLTensor

/// Ops that move or relabel elements: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, and Constant.
enum ShapeOps {
    /// Squeeze or Unsqueeze typed when its axes are known (a constant input, or the attribute of
    /// opsets before 13); a Squeeze without axes only when every dim is known. Axes out of range,
    /// repeated, or a squeezed dim known not to be 1 leave the type to the runtime, which reports it.
    static func squeeze(unsqueeze: Bool) -> OpSchema {
        OpSchema(unsqueeze ? "Unsqueeze" : "Squeeze", inputs: 1...2) { ctx throws(GraphError) in
            let x = try ctx.type(0)
            guard let d = x.dims else { return [TensorType(dtype: x.dtype, dims: nil)] }
            let listed: [Int]?
            if ctx.hasInput(1) {
                listed = ctx.value(1).flatMap { $0.dtype == .int64 && $0.rank <= 1 ? $0.scalars(as: Int64.self).map { Int($0) } : nil }
            } else {
                listed = try ctx.node.ints("axes")
            }
            // An empty list is read differently by runtimes (none, or every unit dim): left to ours.
            if listed?.isEmpty == true { return [nil] }
            if unsqueeze {
                guard let listed, let axes = Axes.normalise(listed, rank: d.count + listed.count) else { return [nil] }
                var out: [Dim] = []
                var rest = d.makeIterator()
                for i in 0..<(d.count + axes.count) {
                    if axes.contains(i) { out.append(.fixed(1)) } else if let v = rest.next() { out.append(v) }
                }
                return [TensorType(dtype: x.dtype, dims: out)]
            }
            guard let listed else {
                guard d.allSatisfy({ $0.value != nil }) else { return [nil] }
                return [TensorType(dtype: x.dtype, dims: d.filter { $0.value != 1 })]
            }
            guard let axes = Axes.normalise(listed, rank: d.count), axes.allSatisfy({ d[$0].value ?? 1 == 1 }) else { return [nil] }
            return [TensorType(dtype: x.dtype, dims: d.indices.filter { !axes.contains($0) }.map { d[$0] })]
        }
    }

    static var schemas: [OpSchema] {
        [
            OpSchema("Flatten", inputs: 1...1) { ctx throws(GraphError) in
                let x = try ctx.type(0)
                guard let d = x.dims else { return [TensorType(dtype: x.dtype, dims: [.unknown, .unknown])] }
                let axis = try ctx.node.axis(default: 1, rank: d.count, inclusive: true)
                return [TensorType(dtype: x.dtype, dims: [DimMath.product(d[..<axis]), DimMath.product(d[axis...])])]
            },
            OpSchema("Reshape", inputs: 2...2) { ctx throws(GraphError) in
                let x = try ctx.type(0)
                let s = try ctx.type(1)
                guard s.dtype == .int64 else {
                    throw .typeMismatch(node: ctx.node.displayName, reason: "Reshape shape input must be int64, got \(s.dtype)")
                }
                guard let target = ctx.value(1) else {
                    if let n = s.dims?.first?.value { return [TensorType(dtype: x.dtype, dims: Array(repeating: .unknown, count: n))] }
                    return [TensorType(dtype: x.dtype, dims: nil)]
                }
                let allowZero = try ctx.node.int("allowzero", default: 0) != 0
                return [TensorType(dtype: x.dtype, dims: try ReshapeOp.outputDims(
                    node: ctx.node, input: x.dims, target: target.scalars(as: Int64.self).map { Int($0) }, allowZero: allowZero))]
            },
            squeeze(unsqueeze: false), squeeze(unsqueeze: true),
            OpSchema("Transpose", inputs: 1...1) { ctx throws(GraphError) in
                let x = try ctx.type(0)
                guard let d = x.dims else { return [x] }
                let perm = try TransposeOp.permutation(node: ctx.node, rank: d.count)
                return [TensorType(dtype: x.dtype, dims: perm.map { d[$0] })]
            },
            OpSchema("Concat", inputs: 1...Int.max) { ctx throws(GraphError) in
                let name = ctx.node.displayName
                let first = try ctx.type(0)
                guard case .int? = ctx.node.attribute("axis") else {
                    throw .invalidAttribute(node: name, attribute: "axis", reason: "is required (an int)")
                }
                let a = try ctx.node.int("axis", default: 0)
                var ranks: Int? = nil
                var out: [Dim]? = nil
                for i in 0..<ctx.node.inputs.count {
                    let t = try ctx.type(i)
                    guard t.dtype == first.dtype else {
                        throw .typeMismatch(node: name, reason: "Concat input \(i) is \(t.dtype), input 0 is \(first.dtype)")
                    }
                    guard let d = t.dims else { continue }
                    if ranks == nil { ranks = d.count }
                    guard d.count == ranks else {
                        throw .shapeMismatch(node: name, reason: "Concat inputs have different ranks")
                    }
                    guard let axis = Axes.normalise(a, rank: d.count) else {
                        throw .invalidAttribute(node: name, attribute: "axis", reason: "is \(a), outside rank \(d.count)")
                    }
                    guard var o = out else { out = d; continue }
                    for j in 0..<d.count where j != axis {
                        if let x = o[j].value, let y = d[j].value, x != y {
                            throw .shapeMismatch(node: name, reason: "Concat input \(i) has size \(y) in dim \(j), input 0 has \(x)")
                        }
                        if o[j].value == nil, d[j].value != nil { o[j] = d[j] }
                    }
                    if let x = o[axis].value, let y = d[axis].value { o[axis] = .fixed(x + y) } else { o[axis] = .unknown }
                    out = o
                }
                return [TensorType(dtype: first.dtype, dims: out)]
            },
            OpSchema("Constant", inputs: 0...0) { ctx throws(GraphError) in
                let t = try ConstantOp.value(of: ctx.node)
                return [TensorType(dtype: t.dtype, shape: t.shape)]
            },
        ]
    }
}

/// Shared rules of Reshape, used by type inference and by the runtime.
package enum ReshapeOp {
    /// The output dims of Reshape: 0 copies the input dim (unless `allowZero`), one -1 takes what is left.
    public static func outputDims(node: Node, input: [Dim]?, target: [Int], allowZero: Bool) throws(GraphError) -> [Dim] {
        let name = node.displayName
        guard target.filter({ $0 == -1 }).count <= 1 else {
            throw .shapeMismatch(node: name, reason: "Reshape target \(target) has more than one -1")
        }
        guard target.allSatisfy({ $0 >= -1 }) else {
            throw .shapeMismatch(node: name, reason: "Reshape target \(target) has a size below -1")
        }
        if allowZero && target.contains(0) && target.contains(-1) {
            throw .shapeMismatch(node: name, reason: "Reshape target \(target) mixes 0 and -1 with allowzero=1")
        }
        var out: [Dim] = []
        for (i, t) in target.enumerated() {
            if t == 0 && !allowZero {
                guard let input, i < input.count else {
                    if input == nil { out.append(.unknown); continue }
                    throw .shapeMismatch(node: name, reason: "Reshape target \(target) copies dim \(i) of a rank-\(input?.count ?? 0) input")
                }
                out.append(input[i])
            } else {
                out.append(t == -1 ? .unknown : .fixed(t))
            }
        }
        guard let input else { return out }
        guard let total = input.concrete.flatMap(ShapeMath.elementCount) else {
            // Symbolic input: -1 is still known when the symbols cancel between input and output.
            guard let hole = target.firstIndex(of: -1) else { return out }
            var symbols: [String: Int] = [:]
            var fixedIn = 1, fixedOut = 1
            for d in input {
                switch d {
                case .fixed(let v): fixedIn *= v
                case .symbolic(let s): symbols[s, default: 0] += 1
                case .unknown: return out
                }
            }
            for (i, d) in out.enumerated() where i != hole {
                switch d {
                case .fixed(let v): fixedOut *= v
                case .symbolic(let s): symbols[s, default: 0] -= 1
                case .unknown: return out
                }
            }
            if symbols.values.allSatisfy({ $0 == 0 }), fixedOut > 0, fixedIn % fixedOut == 0 {
                out[hole] = .fixed(fixedIn / fixedOut)
            }
            return out
        }
        let known = out.compactMap(\.value)
        guard let knownCount = ShapeMath.elementCount(known) else {
            throw .shapeMismatch(node: name, reason: "Reshape target \(target) is too large")
        }
        if let hole = target.firstIndex(of: -1) {
            guard knownCount > 0, total % knownCount == 0 else {
                throw .shapeMismatch(node: name, reason: "cannot reshape \(input.map(\.description)) (\(total) elements) to \(target)")
            }
            out[hole] = .fixed(total / knownCount)
        } else if knownCount != total {
            throw .shapeMismatch(node: name, reason: "cannot reshape \(input.map(\.description)) (\(total) elements) to \(target)")
        }
        return out
    }
}

/// Shared rules of Transpose.
package enum TransposeOp {
    /// The permutation: the `perm` attribute, or the reversed dims when absent.
    public static func permutation(node: Node, rank: Int) throws(GraphError) -> [Int] {
        guard let p = try node.ints("perm") else { return Array((0..<rank).reversed()) }
        guard p.count == rank, Set(p) == Set(0..<rank) else {
            throw .invalidAttribute(node: node.displayName, attribute: "perm", reason: "\(p) is not a permutation of 0..<\(rank)")
        }
        return p
    }
}

/// Shared rules of Constant.
package enum ConstantOp {
    /// The tensor a Constant node produces, from whichever `value*` attribute it has.
    public static func value(of node: Node) throws(GraphError) -> Tensor {
        guard node.attributes.count == 1, let a = node.attributes.first else {
            throw .invalidAttribute(node: node.displayName, attribute: "value", reason: "Constant needs exactly one value attribute, has \(node.attributes.count)")
        }
        switch (a.name, a.value) {
        case ("value", .tensor(let t)): return t
        case ("value_float", .float(let f)): return Tensor(scalar: f)
        case ("value_floats", .floats(let f)): return Tensor(shape: [f.count], scalars: f)
        case ("value_int", .int(let i)): return Tensor(scalar: Int64(i))
        case ("value_ints", .ints(let i)): return Tensor(shape: [i.count], scalars: i.map { Int64($0) })
        case ("value_string", .string(let s)): return Tensor(shape: [], strings: [s])
        case ("value_strings", .strings(let s)): return Tensor(shape: [s.count], strings: s)
        default:
            throw .invalidAttribute(node: node.displayName, attribute: a.name, reason: "of kind \(a.value.kindName) is not a Constant value (sparse values are not supported)")
        }
    }
}
