import DLGraph
import DLTensor

/// `ai.dlkit.OneHotMatMul(X, R, W)` (see `FoldOneHotMatMul`): `MatMul(Cast(Equal(X, R)), W)`.
/// When X's last axis is 1, R is 0..<N along its last axis and W is float32 `[N, C]`, each output
/// row is W's row number X (zeros when X is no whole number in 0..<N): a copy of C floats in
/// place of N comparisons and an N-deep product. Any other shapes or types run the three ops.
enum OneHotKernel {
    static let kernel: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), r = try ctx.input(1), w = try ctx.input(2)
        guard w.dtype == .float32, w.rank == 2, x.rank >= r.rank, x.shape.last == 1, x.dtype != .string, x.dtype != .bool,
              OneHotRange.isIota(r, count: w.shape[0]) else { return try unfused(ctx, x, r, w) }
        let n = w.shape[0], c = w.shape[1]
        let shape = Array(x.shape.dropLast()) + [c]
        let rows = x.elementCount
        // The value each row names; -1 for none (a fraction, NaN, or outside 0..<N).
        let picks: [Int]
        if x.dtype.isFloatingPoint {
            picks = x.doubles().map { v in v >= 0 && v < Double(n) && v.rounded(.towardZero) == v ? Int(v) : -1 }
        } else {
            picks = x.int64s().map { v in v >= 0 && v < Int64(n) ? Int(v) : -1 }
        }
        var out = ctx.makeOutput(.float32, shape: shape)
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            w.withUnsafeBufferPointer(as: Float.self) { pw in
                guard let y = po.baseAddress, let wp = pw.baseAddress else { return }
                for row in 0..<rows {
                    let dst = y + row * c
                    if picks[row] >= 0 {
                        dst.update(from: wp + picks[row] * c, count: c)
                    } else {
                        dst.update(repeating: 0, count: c)
                    }
                }
            }
        }
        return [out]
    }

    /// The three ops the node stands for, through their general kernels.
    static func unfused(_ ctx: KernelContext, _ x: Tensor, _ r: Tensor, _ w: Tensor) throws(RuntimeError) -> [Tensor] {
        func run(_ op: String, _ inputs: [Tensor], _ attributes: [Attribute] = []) throws(RuntimeError) -> Tensor {
            let node = Node(name: ctx.node.name, opType: op, inputs: inputs.indices.map { "in\($0)" }, outputs: ["out"], attributes: attributes)
            guard let y = try NodeRunner.run(node, inputs: inputs, opset: ctx.opset).first else { throw ctx.fail("\(op) gave no output") }
            return y
        }
        let hot = try run("Cast", [try run("Equal", [x, r])], [Attribute(name: "to", value: .int(Int(w.dtype.onnxCode)))])
        return [try run("MatMul", [hot, w])]
    }
}
