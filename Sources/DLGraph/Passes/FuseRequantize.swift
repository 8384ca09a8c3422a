import DLTensor

/// Replaces the chain of float64 IR ops that requantizes integer sums with a fixed-point
/// multiplier (how DLTFLite writes TFLite's `MultiplyByQuantizedMultiplier`, see its
/// `IntegerOps.swift`) and quantizes the result, by one
/// `ai.dlkit.Requantize(x, left, multiplier, right, real_scale, y_scale, y_zero_point)`:
///
///     w = Cast<float64>(x)                      (absorbed when present; any numeric x)
///     h = (w * left) * multiplier               (the left Mul optional)
///     t = Floor(h + 0.5)
///     d = t * right
///     u = Floor(Abs(d) + 0.5) * Sign(d)         (round half away from zero)
///     r = Cast<float32>(u) * real_scale
///     y = QuantizeLinear(act(r), y_scale, y_zero_point)   (act: Relu or Clip, optional)
///
/// `left`, `multiplier` and `right` are float64 initializers of one value or one per element of
/// x's last axis; the scales float32 scalars, the zero point an int8 or uint8 scalar. The fused
/// kernel does the same float operations in the same order per element, so its result is the
/// chain's to the bit; it saves the dozen full-size float64 intermediates. A chain that stops at
/// u (no quantized output: the scaled inputs of an 8-bit ADD) becomes
/// `ai.dlkit.FixedPointMultiply(x, left, multiplier, right, x_offset, x_scale)`, u in float64,
/// taking in the ADD input's centring and shift (see below).
package enum FuseRequantize: GraphPass {
    public static let name = "fuse-requantize"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        func node(_ v: String, _ op: String, readers count: Int = 1) -> Int? {
            guard readers[v] == count, !outputs.contains(v), let p = producer[v], OpSet.isDefaultDomain(graph.nodes[p]),
                  graph.nodes[p].opType == op, graph.nodes[p].outputs.count == 1 else { return nil }
            return p
        }
        /// A float64 initializer of one value or a vector (broadcast along the last axis).
        func vector64(_ name: String) -> Tensor? {
            graph.constantInitializer(name, dtype: .float64).flatMap { $0.rank <= 1 && $0.elementCount >= 1 ? $0 : nil }
        }
        func scalar(_ name: String, _ dtype: DType) -> Tensor? {
            graph.constantInitializer(name, dtype: dtype).flatMap { $0.elementCount == 1 ? $0 : nil }
        }
        func isHalf(_ name: String) -> Bool { scalar(name, .float64)?.scalars(as: Double.self).first == 0.5 }
        /// (the non-constant operand, the constant) of a two-input node whose other operand `accept`s.
        func split(_ n: Node, _ accept: (String) -> Bool) -> (String, String)? {
            guard n.inputs.count == 2 else { return nil }
            if accept(n.inputs[1]) { return (n.inputs[0], n.inputs[1]) }
            if accept(n.inputs[0]) { return (n.inputs[1], n.inputs[0]) }
            return nil
        }
        func castTo(_ n: Node) -> Int? { (try? n.int("to", default: 0)) ?? nil }

        /// The fixed-point multiply ending in the round-half-away Mul at `rounded`:
        /// (x, left or "", multiplier, right, the nodes from `rounded`'s operands back to x).
        func fixedPoint(_ rounded: Int) -> (String, String, String, String, [Int])? {
            let r = graph.nodes[rounded]
            guard r.inputs.count == 2 else { return nil }
            // u = Floor(Add(Abs(d), 0.5)) * Sign(d), the operands in either order.
            var found: (d: String, nodes: [Int])?
            for side in 0..<2 {
                guard let floor = node(r.inputs[side], "Floor"), let sign = node(r.inputs[1 - side], "Sign"),
                      let add = node(graph.nodes[floor].inputs[0], "Add"),
                      let (magnitude, _) = split(graph.nodes[add], isHalf),
                      let abs = node(magnitude, "Abs") else { continue }
                let d = graph.nodes[abs].inputs[0]
                guard graph.nodes[sign].inputs[0] == d else { continue }
                found = (d, [floor, sign, add, abs])
                break
            }
            guard let (d, roundNodes) = found, let down = node(d, "Mul", readers: 2),
                  let (t, right) = split(graph.nodes[down], { vector64($0) != nil }),
                  let tFloor = node(t, "Floor"), let tAdd = node(graph.nodes[tFloor].inputs[0], "Add"),
                  let (h, _) = split(graph.nodes[tAdd], isHalf),
                  let high = node(h, "Mul"), let (s, multiplier) = split(graph.nodes[high], { vector64($0) != nil }) else { return nil }
            var nodes = roundNodes + [down, tFloor, tAdd, high]
            var w = s, left = ""
            if let up = node(s, "Mul"), let (x, l) = split(graph.nodes[up], { vector64($0) != nil }) {
                nodes.append(up)
                (w, left) = (x, l)
            }
            if let cast = node(w, "Cast"), castTo(graph.nodes[cast]) == Int(DType.float64.onnxCode) {
                nodes.append(cast)
                w = graph.nodes[cast].inputs[0]
            }
            return (w, left, multiplier, right, nodes)
        }

        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (qi, q) in graph.nodes.enumerated() where OpSet.isDefaultDomain(q) && q.opType == "QuantizeLinear" {
            guard q.inputs.count == 3, q.outputs.count == 1, q.attributes.allSatisfy({ $0.name == "axis" }),
                  scalar(q.inputs[1], .float32) != nil,
                  let z = scalar(q.inputs[2], .int8) ?? scalar(q.inputs[2], .uint8), z.rank <= 1 else { continue }
            var chain: [Int] = []
            var activation: [Attribute] = []
            var real = q.inputs[0]
            for op in ["Relu", "Clip"] {
                if let a = node(real, op), let attrs = FusedOps.activationAttributes(of: graph.nodes[a], in: graph) {
                    chain.append(a)
                    activation = attrs
                    real = graph.nodes[a].inputs[0]
                    break
                }
            }
            guard let m = node(real, "Mul"), let (u32, realScale) = split(graph.nodes[m], { scalar($0, .float32) != nil }),
                  let c32 = node(u32, "Cast"), castTo(graph.nodes[c32]) == Int(DType.float32.onnxCode),
                  let rounded = node(graph.nodes[c32].inputs[0], "Mul"), let (w, left, multiplier, right, front) = fixedPoint(rounded) else { continue }
            chain += [m, c32, rounded] + front
            guard chain.allSatisfy({ !remove.contains($0) && replaced[$0] == nil }), replaced[qi] == nil else { continue }
            replaced[qi] = Node(name: q.name, opType: "Requantize", domain: FusedOps.domain,
                                inputs: [w, left, multiplier, right, realScale, q.inputs[1], q.inputs[2]],
                                outputs: q.outputs, attributes: activation, docString: q.docString)
            remove.formUnion(chain)
        }
        // Fixed-point multiplies whose result is no quantized output (the scaled inputs of an
        // 8-bit ADD/SUB): `FixedPointMultiply(x, left, multiplier, right, x_offset, x_scale)`, u in
        // float64, with the input's centring and shift, Mul(Sub(Cast<float64>(x), x_offset),
        // x_scale) (each part optional, the constants float64 scalars), taken in.
        func isScalar64(_ name: String) -> Bool { scalar(name, .float64) != nil }
        for (i, n) in graph.nodes.enumerated() where OpSet.isDefaultDomain(n) && n.opType == "Mul" && n.outputs.count == 1 {
            guard replaced[i] == nil, !remove.contains(i), let (start, left, multiplier, right, chain) = fixedPoint(i) else { continue }
            var x = start, front = chain
            var offset = "", scale = ""
            if let mul = node(x, "Mul"), let (t, s) = split(graph.nodes[mul], isScalar64) {
                front.append(mul)
                (x, scale) = (t, s)
            }
            if let sub = node(x, "Sub"), graph.nodes[sub].inputs.count == 2, isScalar64(graph.nodes[sub].inputs[1]) {
                front.append(sub)
                (x, offset) = (graph.nodes[sub].inputs[0], graph.nodes[sub].inputs[1])
            }
            if !offset.isEmpty || !scale.isEmpty, let cast = node(x, "Cast"), castTo(graph.nodes[cast]) == Int(DType.float64.onnxCode) {
                front.append(cast)
                x = graph.nodes[cast].inputs[0]
            }
            guard front.allSatisfy({ !remove.contains($0) && replaced[$0] == nil }) else { continue }
            replaced[i] = Node(name: n.name, opType: "FixedPointMultiply", domain: FusedOps.domain,
                               inputs: [x, left, multiplier, right, offset, scale], outputs: n.outputs, docString: n.docString)
            remove.formUnion(front)
        }
        // An 8-bit ADD/SUB's raw sum, Add or Sub of two FixedPointMultiply results (fused in an
        // earlier round) read nowhere else: `FixedPointAdd(a, its 5 constants, b, its 5 constants)`
        // with `subtract`, float64 as the chain.
        for (i, n) in graph.nodes.enumerated() where OpSet.isDefaultDomain(n) && (n.opType == "Add" || n.opType == "Sub") && n.outputs.count == 1 {
            func multiply(_ v: String) -> Int? {
                guard readers[v] == 1, !outputs.contains(v), let p = producer[v], graph.nodes[p].domain == FusedOps.domain,
                      graph.nodes[p].opType == "FixedPointMultiply", replaced[p] == nil, !remove.contains(p) else { return nil }
                return p
            }
            guard replaced[i] == nil, !remove.contains(i), n.inputs.count == 2, n.attributes.isEmpty,
                  let a = multiply(n.inputs[0]), let b = multiply(n.inputs[1]), a != b else { continue }
            func six(_ k: Int) -> [String] { graph.nodes[k].inputs + Array(repeating: "", count: max(0, 6 - graph.nodes[k].inputs.count)) }
            replaced[i] = Node(name: n.name, opType: "FixedPointAdd", domain: FusedOps.domain, inputs: six(a) + six(b), outputs: n.outputs,
                               attributes: [Attribute(name: "subtract", value: .int(n.opType == "Sub" ? 1 : 0))], docString: n.docString)
            remove.formUnion([a, b])
        }
        // The Requantize of such a sum, its only reader: one FixedPointAdd with the Requantize's
        // six constants after its twelve and its activation attributes, the quantized bytes out.
        for (i, n) in graph.nodes.enumerated() where n.domain == FusedOps.domain && n.opType == "Requantize" && n.inputs.count == 7 {
            guard replaced[i] == nil, !remove.contains(i), readers[n.inputs[0]] == 1, !outputs.contains(n.inputs[0]),
                  let a = producer[n.inputs[0]], graph.nodes[a].domain == FusedOps.domain, graph.nodes[a].opType == "FixedPointAdd",
                  graph.nodes[a].inputs.count == 12, replaced[a] == nil, !remove.contains(a) else { continue }
            let add = graph.nodes[a]
            replaced[i] = Node(name: add.name, opType: "FixedPointAdd", domain: FusedOps.domain, inputs: add.inputs + n.inputs.dropFirst(),
                               outputs: n.outputs, attributes: add.attributes + n.attributes, docString: add.docString)
            remove.insert(a)
        }
        // An 8-bit MEAN's sum, ReduceSum(Sub(Cast<float64>(x), x_offset), axes) with constant
        // axes: `CentredSum(x, axes, x_offset)`, float64 as the chain (an integer sum for 8-bit x).
        for (i, n) in graph.nodes.enumerated() where OpSet.isDefaultDomain(n) && n.opType == "ReduceSum" && n.outputs.count == 1 {
            guard replaced[i] == nil, !remove.contains(i), n.inputs.count == 2, n.attributes.allSatisfy({ $0.name == "keepdims" }),
                  let axes = graph.constantInitializer(n.inputs[1], dtype: .int64), axes.rank == 1, axes.elementCount > 0,
                  let sub = node(n.inputs[0], "Sub"), graph.nodes[sub].inputs.count == 2, isScalar64(graph.nodes[sub].inputs[1]),
                  let cast = node(graph.nodes[sub].inputs[0], "Cast"), castTo(graph.nodes[cast]) == Int(DType.float64.onnxCode),
                  !remove.contains(sub), !remove.contains(cast), replaced[sub] == nil, replaced[cast] == nil else { continue }
            replaced[i] = Node(name: n.name, opType: "CentredSum", domain: FusedOps.domain,
                               inputs: [graph.nodes[cast].inputs[0], n.inputs[1], graph.nodes[sub].inputs[1]], outputs: n.outputs,
                               attributes: n.attributes, docString: n.docString)
            remove.formUnion([sub, cast])
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// `Requantize(x, left, multiplier, right, real_scale, y_scale, y_zero_point)`: x's shape,
    /// the zero point's type.
    static var schema: OpSchema {
        OpSchema("Requantize", inputs: 7...7) { ctx throws(GraphError) in
            let x = try ctx.type(0), z = try ctx.type(6)
            return [TensorType(dtype: z.dtype, dims: x.dims)]
        }
    }

    /// `FixedPointAdd(a, a_left, a_multiplier, a_right, a_offset, a_scale, b, ...)`: the two
    /// FixedPointMultiply results added (or subtracted, `subtract` 1), float64, broadcast; with
    /// six more inputs, a Requantize's (left, multiplier, right, real_scale, y_scale,
    /// y_zero_point), the sum requantized: y_zero_point's type.
    static var fixedPointAddSchema: OpSchema {
        OpSchema("FixedPointAdd", inputs: 12...18) { ctx throws(GraphError) in
            let a = try ctx.type(0), b = try ctx.type(6)
            let dtype = ctx.node.inputs.count == 18 ? try ctx.type(17).dtype : .float64
            guard let da = a.dims, let db = b.dims else { return [TensorType(dtype: dtype, dims: nil)] }
            do throws(Broadcast.Mismatch) {
                return [TensorType(dtype: dtype, dims: try Broadcast.dims(da, db))]
            } catch {
                throw .shapeMismatch(node: ctx.node.displayName, reason: error.description)
            }
        }
    }

    /// `CentredSum(x, axes, x_offset)`: ReduceSum(Float64(x) − x_offset, axes, keepdims), float64.
    static var centredSumSchema: OpSchema {
        OpSchema("CentredSum", inputs: 3...3) { ctx throws(GraphError) in
            let x = try ctx.type(0)
            guard let dims = x.dims, let axes = ctx.value(1)?.scalars(as: Int64.self) else { return [TensorType(dtype: .float64, dims: nil)] }
            let keep = try ctx.node.int("keepdims", default: 1) != 0
            let reduced = Set(axes.map { Int($0) < 0 ? Int($0) + dims.count : Int($0) })
            var out: [Dim] = []
            for (k, d) in dims.enumerated() {
                if !reduced.contains(k) { out.append(d) } else if keep { out.append(.fixed(1)) }
            }
            return [TensorType(dtype: .float64, dims: out)]
        }
    }

    /// `FixedPointMultiply(x, left, multiplier, right, x_offset, x_scale)`: u of the chain above
    /// for (x − x_offset)·x_scale, float64 of x's shape.
    static var fixedPointSchema: OpSchema {
        OpSchema("FixedPointMultiply", inputs: 4...6) { ctx throws(GraphError) in
            [TensorType(dtype: .float64, dims: try ctx.type(0).dims)]
        }
    }
}
