import DLGraph
import DLKernels
import DLTensor

extension ConvolutionKernels {
    /// `ai.dlkit.FusedConvPool(X, W, B)` (see `FuseConvPool`): on the AVX-512 path the 2×2 max
    /// pool runs on each pair of convolution output rows while they are in cache, and the
    /// full-resolution activation is never stored. Otherwise (no packed weights, another dtype,
    /// a shape the kernel does not take, rows too short for it to pay) the FusedConv and the
    /// MaxPool run one after the other.
    static let fusedConvPool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        let bias = ctx.optionalInput(2)
        let outShape = try ctx.outputShape(0)
        if let packed = ctx.packed, x.dtype == .float32, w.dtype == .float32, (bias?.dtype ?? .float32) == .float32,
           x.rank == 4, w.rank == 4 {
            let activation = try FastPaths.activation(ctx, channels: w.shape.first)
            let window = try ctx.window()
            let group = window.group
            let (g, _) = try geometry(ctx, window, input: x.shape, weight: Array(w.shape.dropFirst(2)), isPooling: false)
            let p = Conv2DParams(input: x.shape, outChannels: w.shape[0], geometry: g, groups: group)
            if Convolution.directMaxPool2Pays(p), p.inputCount > 0,
               outShape == [p.batch, p.outChannels, p.outH / 2, p.outW / 2] {
                // Every pooled output is written: a recycled buffer will do.
                var out = ctx.makeOutput(.float32, shape: outShape)
                let done = out.withUnsafeMutableBufferPointer(as: Float.self) { po -> Bool in
                    x.withUnsafeBufferPointer(as: Float.self) { px -> Bool in
                        w.withUnsafeBufferPointer(as: Float.self) { pw -> Bool in
                            guard let y = po.baseAddress, let xp = px.baseAddress else { return false }
                            guard let bias else {
                                return Convolution.conv2DDirectMaxPool2(p, input: xp, weights: packed, bias: nil, output: y,
                                                                         activation: activation, rawWeights: pw.baseAddress)
                            }
                            return bias.withUnsafeBufferPointer(as: Float.self) { pb -> Bool in
                                Convolution.conv2DDirectMaxPool2(p, input: xp, weights: packed, bias: pb.baseAddress, output: y,
                                                                 activation: activation, rawWeights: pw.baseAddress)
                            }
                        }
                    }
                }
                if done { return [out] }
            }
        }
        // The FusedConv on its own (typed as such), then the pool.
        let n = ctx.node
        let convNode = Node(name: n.name, opType: "FusedConv", domain: FusedOps.domain, inputs: n.inputs,
                            outputs: n.outputs, attributes: n.attributes)
        var base = KernelContext(node: convNode, inputs: ctx.inputs, outputTypes: [])
        base.values = ctx.values
        base.opset = ctx.opset
        base.pool = ctx.pool
        base.packed = ctx.packed
        base.windowAttributes = ctx.windowAttributes
        var types: [String: TensorType] = [:]
        var values: [String: Tensor] = [:]
        for (name, t) in zip(n.inputs, ctx.inputs) where !name.isEmpty {
            if let t { types[name] = TensorType(dtype: t.dtype, shape: t.shape); values[name] = t }
        }
        do throws(GraphError) { base.outputTypes = try Graph.inferNode(convNode, types: types, values: values) } catch {
            throw .node(ctx.node.displayName, error)
        }
        guard let y = try FastPaths.fusedConv(base).first else { throw ctx.fail("FusedConv gave no output") }
        return [try ctx.runOp("MaxPool", [y], [Attribute(name: "kernel_shape", value: .ints([2, 2])),
                                               Attribute(name: "strides", value: .ints([2, 2]))])]
    }
}
