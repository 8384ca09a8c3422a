import DLTensor

extension Graph {
    /// The default limit on the bytes a run may hold at once (16 GiB): far above what the models
    /// this toolkit serves need, far below what a crafted shape can ask for.
    public static let defaultAllocationBudget = 16 << 30

    /// The most bytes the values computed by a run hold at once, from the shapes inference gives
    /// (`inputTypes` overrides the declared input types, e.g. with a request's concrete shapes).
    /// Values whose shape stays symbolic count as zero; initializers are already in memory and
    /// are not counted. A value is live from the node that makes it to its last reader (graph
    /// outputs to the end). Returns nil when inference fails: the run reports that itself.
    public func peakAllocation(inputTypes: [String: TensorType] = [:]) -> (bytes: Int, value: String)? {
        guard let types = try? inferTypes(inputTypes: inputTypes) else { return nil }
        let created = creatorSizes(types)
        func size(_ name: String) -> Int {
            if let b = created[name] { return b }
            guard let t = types[name], let dims = t.dims else { return 0 }
            var n = max(t.dtype.byteWidth, 1)
            for d in dims {
                guard case .fixed(let k) = d, k >= 0 else { return 0 }
                let (m, o) = n.multipliedReportingOverflow(by: k)
                if o { return Int.max }
                n = m
            }
            return n
        }
        var lastUse: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            for v in n.inputs where !v.isEmpty { lastUse[v] = i }
        }
        for o in outputs { lastUse[o.name] = nodes.count }
        var dropAt: [Int: [String]] = [:]
        var live = 0, peak = 0, peakValue = ""
        for v in inputs where initializers[v.name] == nil {
            let b = size(v.name)
            live = live > Int.max - b ? Int.max : live + b
            dropAt[lastUse[v.name] ?? -1, default: []].append(v.name)
        }
        peak = live
        for (i, n) in nodes.enumerated() {
            for o in n.outputs where !o.isEmpty {
                let b = size(o)
                live = live > Int.max - b ? Int.max : live + b
                if live > peak { peak = live; peakValue = o }
                dropAt[lastUse[o] ?? i, default: []].append(o)
            }
            for v in dropAt[i] ?? [] { live -= min(live, size(v)) }
        }
        return (peak, peakValue.isEmpty ? (inputs.first?.name ?? "") : peakValue)
    }

    /// Refuses a graph whose run would hold more than `budget` bytes at once (see
    /// `peakAllocation`), before anything is allocated.
    /// - Throws: `GraphError.overBudget` naming the value at which the budget is passed.
    public func checkAllocation(budget: Int = Graph.defaultAllocationBudget, inputTypes: [String: TensorType] = [:]) throws(GraphError) {
        guard let (bytes, value) = peakAllocation(inputTypes: inputTypes), bytes > budget else { return }
        throw .overBudget(value: value, bytes: bytes, budget: budget)
    }

    /// Output sizes of the ops that create tensors from a shape argument (typed only at run
    /// time, so inference leaves them open) when that argument is a constant in the file:
    /// ConstantOfShape, Expand, Tile and Range, the usual ways to ask for a huge tensor.
    /// Lower bounds where the element type is not known (one byte per element).
    func creatorSizes(_ types: [String: TensorType]) -> [String: Int] {
        var consts: [String: Tensor] = [:]
        for (name, t) in initializers { consts[name] = t }
        for n in nodes where n.opType == "Constant" {
            if let o = n.outputs.first, let t = try? ConstantOp.value(of: n) { consts[o] = t }
        }
        func ints(_ name: String) -> [Int]? {
            guard let t = consts[name], t.shape.count <= 1 else { return nil }
            switch t.dtype {
            case .int64: return t.scalars(as: Int64.self).map { Int(clamping: $0) }
            case .int32: return t.scalars(as: Int32.self).map { Int($0) }
            default: return nil
            }
        }
        func scalar(_ name: String) -> Double? {
            guard let t = consts[name], t.elementCount == 1 else { return nil }
            switch t.dtype {
            case .int64: return Double(t.scalars(as: Int64.self)[0])
            case .int32: return Double(t.scalars(as: Int32.self)[0])
            case .float32: return Double(t.scalars(as: Float.self)[0])
            case .float64: return t.scalars(as: Double.self)[0]
            default: return nil
            }
        }
        func fixedDims(_ name: String) -> [Int]? {
            guard let dims = types[name]?.dims else { return nil }
            var out: [Int] = []
            for d in dims { guard case .fixed(let k) = d else { return nil }; out.append(k) }
            return out
        }
        func bytes(_ dims: [Int], width: Int) -> Int {
            var n = max(width, 1)
            for d in dims {
                guard d >= 0 else { return 0 }
                let (m, o) = n.multipliedReportingOverflow(by: d)
                if o { return Int.max }
                n = m
            }
            return n
        }
        var out: [String: Int] = [:]
        for n in nodes {
            guard let o = n.outputs.first, !o.isEmpty, n.inputs.count >= 1 else { continue }
            let width = types[n.inputs[0]]?.dtype.byteWidth ?? 1
            switch n.opType {
            case "ConstantOfShape":
                if let shape = ints(n.inputs[0]) { out[o] = bytes(shape, width: 1) }
            case "Expand" where n.inputs.count >= 2:
                guard let shape = ints(n.inputs[1]) else { continue }
                // Expand broadcasts the input against the target (a clash fails the run itself).
                let dims = fixedDims(n.inputs[0]).flatMap { try? Broadcast.shape($0, shape) } ?? shape
                out[o] = bytes(dims, width: width)
            case "Tile" where n.inputs.count >= 2:
                guard let reps = ints(n.inputs[1]), let x = fixedDims(n.inputs[0]), reps.count == x.count else { continue }
                var dims: [Int] = []
                for (a, b) in zip(x, reps) {
                    let (m, ov) = a.multipliedReportingOverflow(by: max(b, 0))
                    dims.append(ov ? Int.max : m)
                }
                out[o] = bytes(dims, width: width)
            case "Range" where n.inputs.count >= 3:
                guard let a = scalar(n.inputs[0]), let b = scalar(n.inputs[1]), let d = scalar(n.inputs[2]), d != 0 else { continue }
                let count = ((b - a) / d).rounded(.up)
                out[o] = count.isFinite && count < 9e18 ? bytes([max(Int(count), 0)], width: width) : Int.max
            default:
                continue
            }
        }
        return out
    }
}
