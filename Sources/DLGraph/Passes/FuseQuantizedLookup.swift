import DLTensor

/// Replaces an 8-bit elementwise island by a 256-entry table. A `DequantizeLinear` of an int8 or
/// uint8 tensor, the elementwise float ops that read only what it gives (and one-value
/// constants), and the one `QuantizeLinear` they end in compute each output byte from the input
/// byte at the same place and nothing else: the island is a function of one byte,
/// `ai.dlkit.LookupTable(x, table)`. QDQ exports spell activations between quantized convolutions
/// this way: onnxruntime.quantization's HardSwish is DequantizeLinear → HardSigmoid →
/// Quantize/DequantizeLinear → Mul with the input → QuantizeLinear, five float passes over the
/// activation where one byte lookup does. DLTFLite's 8-bit LOGISTIC, TANH and HARD_SWISH are
/// such islands too, from a DequantizeLinear of scale 1: TFLite's integer steps in 10-30 ops.
///
/// The table comes from running the island's own nodes through `evaluate` (the runtime's
/// kernels) on the 256 possible bytes, so a lookup gives the bytes the island gave. Only with
/// per-tensor scale and zero point (one value each, constants no run can override, the zero
/// point int8 or uint8, no attribute but `axis`), when no value inside is a graph output or read
/// outside the island, and when the constants cannot broadcast the input to a larger rank.
package enum FuseQuantizedLookup {
    public static let name = "fuse-quantized-lookup"

    /// The ops an island may hold: each output element a function of the same element of its
    /// inputs (and of attributes).
    static let elementwise: Set<String> = [
        "Abs", "Add", "Celu", "Ceil", "Clip", "Cos", "Div", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
        "HardSwish", "Identity", "LeakyRelu", "Log", "Max", "Min", "Mish", "Mul", "Neg", "Pow", "PRelu",
        "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt",
        "Sub", "Tanh", "ThresholdedRelu",
        // The integer steps of DLTFLite's 8-bit LOGISTIC, TANH and HARD_SWISH (fixed-point
        // products, roundings by comparison and selection).
        "Cast", "Where", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor",
        "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift",
    ]

    public static func run(_ graph: inout Graph, evaluate: ConstantFolding.Evaluator) -> Bool {
        let readers = graph.readerNodes()
        let graphOutputs = Set(graph.outputs.map(\.name))
        var types: [String: TensorType]?? = nil
        func rank(_ value: String) -> Int? {
            if types == nil { types = .some(try? graph.inferTypes()) }
            return (types ?? nil)?[value]?.dims?.count
        }
        /// The zero point's type of a per-tensor QuantizeLinear / DequantizeLinear, nil otherwise.
        func perTensor(_ n: Node, _ op: String) -> DType? {
            guard OpSet.isDefaultDomain(n), n.opType == op, n.inputs.count == 3, n.outputs.count == 1,
                  n.attributes.allSatisfy({ $0.name == "axis" }),
                  let s = graph.constantInitializer(n.inputs[1], dtype: .float32), s.elementCount == 1,
                  let z = graph.constantInitializer(n.inputs[2]), z.elementCount == 1,
                  z.dtype == .int8 || z.dtype == .uint8 else { return nil }
            return z.dtype
        }
        func isIslandOp(_ n: Node) -> Bool {
            n.outputs.count == 1 && !n.outputs[0].isEmpty && n.subgraphs.isEmpty
                && (OpSet.isDefaultDomain(n) ? elementwise.contains(n.opType)
                    : n.domain == FusedOps.domain && n.opType == "QuantizeDequantize")
        }

        var replaced: [Int: Node] = [:]
        var remove = Set<Int>()
        for (d, dq) in graph.nodes.enumerated() {
            guard !remove.contains(d), replaced[d] == nil, let inType = perTensor(dq, "DequantizeLinear") else { continue }
            // Grow from the dequantized value through island ops; a QuantizeLinear ends it.
            var island: Set<Int> = [d]
            var values: Set<String> = [dq.outputs[0]]
            var frontier = [dq.outputs[0]]
            var terminal: Int?
            var closed = true
            while closed, let v = frontier.popLast() {
                if graphOutputs.contains(v) { closed = false; break }
                for r in readers[v] ?? [] where !island.contains(r) && r != terminal {
                    guard !remove.contains(r), replaced[r] == nil else { closed = false; break }
                    let n = graph.nodes[r]
                    if perTensor(n, "QuantizeLinear") != nil {
                        guard terminal == nil else { closed = false; break }
                        terminal = r
                    } else if isIslandOp(n) {
                        island.insert(r)
                        values.insert(n.outputs[0])
                        frontier.append(n.outputs[0])
                    } else {
                        closed = false
                        break
                    }
                }
            }
            guard closed, let t = terminal, island.count >= 2, values.contains(graph.nodes[t].inputs[0]) else { continue }
            // Every input inside is the island's own value or a one-value constant that cannot
            // raise the rank of what it is broadcast with.
            let xRank = rank(dq.inputs[0])
            let order = island.sorted() + [t]
            let selfContained = order.dropLast().allSatisfy { i in
                graph.nodes[i].inputs.enumerated().allSatisfy { slot, v in
                    if v.isEmpty || values.contains(v) || (i == d && slot == 0) { return true }
                    guard let c = graph.constantInitializer(v), c.elementCount == 1 else { return false }
                    return c.rank == 0 || c.rank <= (xRank ?? 0)
                }
            }
            // The table node takes the QuantizeLinear's place: after every island node it replaces.
            guard selfContained, t > island.max() ?? d else { continue }
            guard let table = tabulate(graph, order: order, inType: inType, evaluate: evaluate) else { continue }
            let q = graph.nodes[t]
            var tableName = q.outputs[0] + "_lookup_table"
            while graph.initializers[tableName] != nil || graph.inputs.contains(where: { $0.name == tableName }) { tableName += "_" }
            graph.initializers[tableName] = table
            replaced[t] = Node(name: q.name, opType: "LookupTable", domain: FusedOps.domain, inputs: [dq.inputs[0], tableName],
                               outputs: q.outputs, docString: q.docString)
            remove.formUnion(island)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// The island's nodes (`order`: graph order, the QuantizeLinear last) run on the 256 bytes
    /// in bit-pattern order: entry b is the output for the input byte whose bits are b.
    static func tabulate(_ graph: Graph, order: [Int], inType: DType, evaluate: ConstantFolding.Evaluator) -> Tensor? {
        let x = inType == .uint8 ? Tensor(shape: [256], scalars: (0..<256).map { UInt8($0) })
            : Tensor(shape: [256], scalars: (0..<256).map { Int8(bitPattern: UInt8($0)) })
        var known: [String: Tensor] = [graph.nodes[order[0]].inputs[0]: x]
        for i in order {
            let n = graph.nodes[i]
            let inputs = n.inputs.map { v in v.isEmpty ? nil : (known[v] ?? graph.constantInitializer(v)) }
            guard let out = evaluate(n, inputs)?.first else { return nil }
            known[n.outputs[0]] = out
        }
        guard let y = known[graph.nodes[order[order.count - 1]].outputs[0]], y.elementCount == 256,
              y.dtype == .uint8 || y.dtype == .int8 else { return nil }
        return try? y.reshaped(to: [256])
    }

    /// `LookupTable(x, table)`: x int8 or uint8, table 256 values of the output type, indexed
    /// by x's bits; typed as the table's type with x's shape.
    static var schema: OpSchema {
        OpSchema("LookupTable", inputs: 2...2) { ctx throws(GraphError) in
            let x = try ctx.type(0), table = try ctx.type(1)
            return [TensorType(dtype: table.dtype, dims: x.dims)]
        }
    }
}
