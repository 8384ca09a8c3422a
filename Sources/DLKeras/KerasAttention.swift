import DLGraph
import DLTensor

extension GraphBuilder {
    /// MultiHeadAttention on (batch, time, features) inputs, attending over the time axis:
    /// per-head projections as one MatMul each (the kernels (d, heads, dim) become (d, heads·dim)),
    /// scaled dot products, Softmax, the weighted values, and the output projection
    /// ((heads, value_dim, out) as (heads·value_dim, out)). Inputs are [query, value, key].
    mutating func multiHeadAttention(_ s: LayerSpec, _ xs: [Value], _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        guard xs.count >= 2 else { throw fail(s, "needs a query and a value input") }
        let query = xs[0], value = xs[1], key = xs.count > 2 ? xs[2] : xs[1]
        guard [query, value, key].allSatisfy({ $0.rank == 3 }) else {
            throw fail(s, "only inputs of rank 3 (batch, time, features) are supported")
        }
        if let axes = s.config["attention_axes"], !axes.isNull {
            let a = axes.intValue.map { [$0] } ?? axes.arrayValue?.compactMap(\.intValue) ?? []
            guard a == [1] || a == [-2] else { throw fail(s, "attention_axes \(a) is not supported (the time axis only)") }
        }
        if bool(s, "use_gate", false) { throw fail(s, "use_gate is not supported") }
        if let w = s.config["sliding_window"], !w.isNull { throw fail(s, "sliding_window is not supported") }
        if s.options["use_causal_mask"]?.boolValue == true { throw fail(s, "use_causal_mask is not supported") }
        for k in ["attention_mask", "query_mask", "value_mask", "key_mask"] {
            if let m = s.options[k], !m.isNull { throw fail(s, "\(k) is not supported") }
        }
        let heads = try count(s, "num_heads"), keyDim = try count(s, "key_dim")
        let valueDim = s.config["value_dim"]?.isNull ?? true ? keyDim : try count(s, "value_dim")
        guard let dq = query.shape[2], let dv = value.shape[2], let dk = key.shape[2] else { throw fail(s, "feature sizes must be known") }
        var outDim = dq
        if let o = s.config["output_shape"], !o.isNull {
            let dims = o.intValue.map { [$0] } ?? o.arrayValue?.compactMap(\.intValue) ?? []
            guard dims.count == 1, dims[0] >= 1, dims[0] <= Self.maxConfigInt else { throw fail(s, "output_shape \(dims) is not supported (one size only)") }
            outDim = dims[0]
        }
        let useBias = bool(s, "use_bias", true)
        let stored = byName[s.name].map { $0.weights } ?? []
        let ws = stored.map(\.tensor)
        if !stored.isEmpty { usedWeights.insert(s.name) }
        try expectCount(s, ws, useBias ? 8 : 4)
        // Keras 3 files keep each projection in its own group (read in name order); legacy files
        // list them query, key, value, attention_output. Find each by its name.
        func index(_ group: String, _ legacy: String, _ i: Int) throws(KerasError) -> Int {
            let leaf = i == 0 ? "kernel" : "bias"
            if let k = stored.firstIndex(where: { w in
                let n = w.name.hasSuffix(":0") ? String(w.name.dropLast(2)) : w.name
                return n.hasSuffix("/\(group)/vars/\(i)") || n.hasSuffix("/\(legacy)/\(leaf)") || n == "\(legacy)/\(leaf)"
            }) { return k }
            throw .weights(path: weights.path, reason: "layer '\(s.name)' (\(s.className)): no \(legacy) \(leaf) among its weights")
        }
        func projection(_ group: String, _ legacy: String, _ x: Value, inDim: Int, dim: Int,
                        _ rec: inout KerasLayerRecord) throws(KerasError) -> String {
            let w = try variable(s, ws, try index(group, legacy, 0), name: "\(legacy)/kernel", keras3Path: "\(group)/vars/0",
                                 legacy: "\(s.name)/\(legacy)/kernel", shape: [inDim, heads, dim],
                                 layout: WeightLayout(irShape: [inDim, heads * dim]), record: &rec)
            var y = op1("MatMul", [x.name, w], name: s.name)
            if useBias {
                let b = try variable(s, ws, try index(group, legacy, 1), name: "\(legacy)/bias", keras3Path: "\(group)/vars/1",
                                     legacy: "\(s.name)/\(legacy)/bias", shape: [heads, dim],
                                     layout: WeightLayout(irShape: [heads * dim]), record: &rec)
                y = op1("Add", [y, b], name: s.name)
            }
            // (batch, time, heads·dim) -> (batch, heads, time, dim)
            let split = op1("Reshape", [y, ints("\(s.name)/\(legacy)_heads", [0, 0, heads, dim])], name: s.name)
            return op1("Transpose", [split], [Attribute(name: "perm", value: .ints([0, 2, 1, 3]))], name: s.name)
        }
        let q = try projection("query_dense", "query", query, inDim: dq, dim: keyDim, &rec)
        let k = try projection("key_dense", "key", key, inDim: dk, dim: keyDim, &rec)
        let v = try projection("value_dense", "value", value, inDim: dv, dim: valueDim, &rec)
        let scale = constant("\(s.name)/scale", Tensor(scalar: Float(1.0 / Double(keyDim).squareRoot())))
        let qs = op1("Mul", [q, scale], name: s.name)
        let kt = op1("Transpose", [k], [Attribute(name: "perm", value: .ints([0, 1, 3, 2]))], name: s.name)
        let scores = op1("MatMul", [qs, kt], name: s.name)
        let p = op1("Softmax", [scores], [Attribute(name: "axis", value: .int(-1))], name: s.name)
        let mixed = op1("MatMul", [p, v], name: s.name)
        let back = op1("Transpose", [mixed], [Attribute(name: "perm", value: .ints([0, 2, 1, 3]))], name: s.name)
        let merged = op1("Reshape", [back, ints("\(s.name)/merge_heads", [0, 0, heads * valueDim])], name: s.name)
        let wo = try variable(s, ws, try index("output_dense", "attention_output", 0), name: "attention_output/kernel",
                              keras3Path: "output_dense/vars/0", legacy: "\(s.name)/attention_output/kernel",
                              shape: [heads, valueDim, outDim], layout: WeightLayout(irShape: [heads * valueDim, outDim]), record: &rec)
        var y = op1("MatMul", [merged, wo], name: s.name)
        if useBias {
            let bo = try variable(s, ws, try index("output_dense", "attention_output", 1), name: "attention_output/bias",
                                  keras3Path: "output_dense/vars/1", legacy: "\(s.name)/attention_output/bias",
                                  shape: [outDim], record: &rec)
            y = op1("Add", [y, bo], name: s.name)
        }
        return Value(name: y, shape: [query.shape[0], query.shape[1], outDim])
    }
}
