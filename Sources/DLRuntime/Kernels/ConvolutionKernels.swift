import DLGraph
import DLKernels
import DLTensor

/// Float32 Conv, pooling and BatchNormalization for 1-D and 2-D spatial inputs (NCW, NCHW), on
/// the DLKernels loops: fast variants (see ``KernelRegistry``) in front of the general kernels of
/// `ConvFamilyKernels`, `PoolingKernels` and `NormalizationKernels`.
enum ConvolutionKernels {
    static var fast: [FastEntry] {
        let maxPool = pool(max: true), averagePool = pool(max: false)
        return [
            .init("Conv", "float32 X, W and B, rank 3 or 4", { ctx throws(RuntimeError) in
                let x = try ctx.input(0), w = try ctx.input(1)
                guard x.dtype == .float32, w.dtype == .float32, ctx.optionalInput(2).map({ $0.dtype == .float32 }) ?? true,
                      x.shape.count == 3 || x.shape.count == 4 else { return nil }
                return try conv(ctx)
            }),
            .init("MaxPool", "float32 rank 3 or 4, storage_order 0, no Indices output", { ctx throws(RuntimeError) in
                let x = try ctx.input(0)
                let wantsIndices = ctx.node.outputs.count > 1 && !ctx.node.outputs[1].isEmpty
                guard x.dtype == .float32, !wantsIndices, x.shape.count == 3 || x.shape.count == 4,
                      (try ctx.int("storage_order", 0)) == 0 else { return nil }
                return try maxPool(ctx)
            }),
            .init("AveragePool", "float32 rank 3 or 4", { ctx throws(RuntimeError) in
                let x = try ctx.input(0)
                guard x.dtype == .float32, x.shape.count == 3 || x.shape.count == 4 else { return nil }
                return try averagePool(ctx)
            }),
            .init("GlobalAveragePool", "float32 whose output shape is known", { ctx throws(RuntimeError) in
                guard try ctx.input(0).dtype == .float32, ctx.outputTypes.first??.dims?.concrete != nil else { return nil }
                return try globalAveragePool(ctx)
            }),
            .init("BatchNormalization", "inference mode, every input float32 of rank 2 or more, no statistics outputs", { ctx throws(RuntimeError) in
                let x = try ctx.input(0)
                guard x.dtype == .float32, x.rank >= 2, try ctx.int("training_mode", 0) == 0,
                      ctx.inputs.dropFirst().allSatisfy({ $0?.dtype == .float32 }),
                      !ctx.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) else { return nil }
                return try batchNorm(ctx)
            }),
        ]
    }

    /// Geometry of a 1-D or 2-D window op, with 1-D as 2-D of height 1.
    static func geometry(_ ctx: KernelContext, _ window: WindowAttributes, input: [Int], weight: [Int]?, isPooling: Bool)
        throws(RuntimeError) -> (g: WindowGeometry, twoD: Bool)
    {
        let spatial = Array(input.dropFirst(2))
        guard spatial.count == 1 || spatial.count == 2 else {
            throw .unsupported(node: ctx.node.displayName, reason: "\(ctx.node.opType) over \(spatial.count) spatial dims is not supported yet (1-D and 2-D)")
        }
        let g = try ctx.attribute { () throws(GraphError) in
            try window.geometry(input: spatial, kernel: window.kernelShape ?? weight ?? [], isPooling: isPooling)
        }
        return (g, spatial.count == 2)
    }

    static let conv: Kernel = { ctx throws(RuntimeError) in try conv(ctx, activation: .none) }

    /// Conv with `activation` applied in the epilogue (the bias pass), images split over workers.
    static func conv(_ ctx: KernelContext, activation: Activation) throws(RuntimeError) -> [Tensor] {
        try conv(ctx, activation: activation, residual: nil)
    }

    /// `ai.dlkit.FusedConvAdd(X, W, B, R)` (see `FuseConvAdd`): the residual R added and the
    /// activation applied in the convolution's epilogue when R has the output's shape; otherwise
    /// (R broadcasts, or not float32) Conv, Add and the activation run one after another.
    static let fusedConvAdd: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1), r = try ctx.input(3)
        let activation = try FastPaths.activation(ctx, channels: w.shape.first)
        let outShape = try ctx.outputShape(0)
        if x.dtype == .float32, w.dtype == .float32, r.dtype == .float32,
           ctx.optionalInput(2).map({ $0.dtype == .float32 }) ?? true,
           x.rank == 3 || x.rank == 4, r.shape == outShape {
            // The conv kernel reads inputs 0-2 and Conv's attributes only: the node goes as it is.
            return try conv(ctx, activation: activation, residual: r)
        }
        let n = ctx.node
        let convNode = Node(name: n.name, opType: "Conv", inputs: Array(n.inputs.prefix(3)), outputs: n.outputs,
                            attributes: n.attributes.filter { !FastPaths.activationAttributeNames.contains($0.name) })
        var base = KernelContext(node: convNode, inputs: Array(ctx.inputs.prefix(3)), outputTypes: ctx.outputTypes)
        base.values = Array(ctx.values.prefix(3))
        base.opset = ctx.opset
        base.pool = ctx.pool
        base.packed = ctx.packed
        base.windowAttributes = ctx.windowAttributes
        // The Conv's own type, for its kernel (the fused output may be broadcast wider).
        var types: [String: TensorType] = [:]
        var values: [String: Tensor] = [:]
        for (name, t) in zip(base.node.inputs, base.inputs) where !name.isEmpty {
            if let t { types[name] = TensorType(dtype: t.dtype, shape: t.shape); values[name] = t }
        }
        do throws(GraphError) { base.outputTypes = try Graph.inferNode(base.node, types: types, values: values) } catch {
            throw .node(ctx.node.displayName, error)
        }
        guard let convKernel = OpKernels.table["Conv"]?.run, let y = try convKernel(base).first else {
            throw ctx.unsupported("no kernel for Conv")
        }
        return [try ctx.applyingFusedActivation(try ctx.runOp("Add", [y, r]))]
    }

    /// Conv with `activation` (and `residual`, of the output's shape, when given) applied in the
    /// epilogue; rows of the batch split over the workers.
    static func conv(_ ctx: KernelContext, activation: Activation, residual: Tensor?) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0), w = try ctx.input(1)
        let bias = ctx.optionalInput(2)
        try ctx.requireFloat32(x, w)
        if let bias { try ctx.requireFloat32(bias) }
        let window = try ctx.window()
        let group = window.group
        let (g, twoD) = try geometry(ctx, window, input: x.shape, weight: Array(w.shape.dropFirst(2)), isPooling: false)
        let p: Conv2DParams
        if twoD {
            p = Conv2DParams(input: x.shape, outChannels: w.shape[0], geometry: g, groups: group).alongRows
        } else {
            p = Conv2DParams.conv1D(batch: x.shape[0], inChannels: x.shape[1], length: x.shape[2], outChannels: w.shape[0],
                                    kernel: g.kernel[0], stride: g.strides[0], padBegin: g.padsBegin[0],
                                    padEnd: g.padsEnd[0], dilation: g.dilations[0], groups: group)
        }
        let outShape = try ctx.outputShape(0)
        // The driver's GEMMs (beta 0) and epilogue write every output element, so a planned run
        // takes a recycled buffer instead of a zero-filled fresh one (a fresh 16 MB output per run
        // cost page faults and a memset on every batch-32 CNN run).
        guard p.outputCount > 0, p.inputCount > 0 else { return [Tensor(zeros: .float32, shape: outShape)] }
        var out = ctx.makeOutput(.float32, shape: outShape)
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            x.withUnsafeBufferPointer(as: Float.self) { px in
                w.withUnsafeBufferPointer(as: Float.self) { pw in
                    guard let y = po.baseAddress, let xp = px.baseAddress, let wp = pw.baseAddress else { return }
                    let packed = ctx.packed.flatMap { Convolution.directApplies(p) && Convolution.directPays(p) ? $0 : nil }
                    func run(_ b: UnsafePointer<Float>?) {
                        if residual == nil, Convolution.depthwise(p, input: xp, weight: wp, bias: b, output: y, activation: activation)
                            || Convolution.onePixel(p, input: xp, weight: wp, bias: b, output: y, activation: activation) {
                            return
                        }
                        let panels = ctx.packed?.first.flatMap { $0.arrangement == .panels ? $0 : nil }
                        func byPixels(_ r: UnsafePointer<Float>?) -> Bool {
                            Convolution.pointwiseByPixels(p, input: xp, weight: wp, packed: panels, bias: b, residual: r,
                                                          output: y, activation: activation)
                                || Convolution.smallPlaneByPixels(p, input: xp, panels: panels, bias: b, residual: r,
                                                                  output: y, activation: activation)
                        }
                        if residual.map({ $0.withUnsafeBufferPointer(as: Float.self) { byPixels($0.baseAddress) } }) ?? byPixels(nil) {
                            return
                        }
                        if let packed {
                            let done: Bool
                            if let residual {
                                done = residual.withUnsafeBufferPointer(as: Float.self) { pr in
                                    Convolution.conv2DDirect(p, input: xp, weights: packed, bias: b, residual: pr.baseAddress,
                                                             output: y, activation: activation, rawWeights: wp)
                                }
                            } else {
                                done = Convolution.conv2DDirect(p, input: xp, weights: packed, bias: b, residual: nil,
                                                                output: y, activation: activation, rawWeights: wp)
                            }
                            if done { return }
                        }
                        if let residual {
                            residual.withUnsafeBufferPointer(as: Float.self) { pr in
                                Convolution.conv2D(p, input: xp, weight: wp, bias: b, residual: pr.baseAddress,
                                                   output: y, activation: activation)
                            }
                        } else {
                            Convolution.conv2D(p, input: xp, weight: wp, bias: b, residual: nil, output: y, activation: activation)
                        }
                    }
                    if let bias {
                        bias.withUnsafeBufferPointer(as: Float.self) { pb in run(pb.baseAddress) }
                    } else {
                        run(nil)
                    }
                }
            }
        }
        return [out]
    }

    static func pool(max isMax: Bool) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            try ctx.requireFloat32(x)
            if isMax, ctx.node.outputs.count > 1, !ctx.node.outputs[1].isEmpty {
                throw .unsupported(node: ctx.node.displayName, reason: "the MaxPool Indices output is not supported yet")
            }
            let window = try ctx.window()
            let ceilMode = window.ceilMode, includePad = window.countIncludePad
            let (g, twoD) = try geometry(ctx, window, input: x.shape, weight: nil, isPooling: true)
            let p = twoD
                ? Pool2DParams(batch: x.shape[0], channels: x.shape[1], inH: x.shape[2], inW: x.shape[3],
                               kernelH: g.kernel[0], kernelW: g.kernel[1], strideH: g.strides[0], strideW: g.strides[1],
                               padTop: g.padsBegin[0], padLeft: g.padsBegin[1], padBottom: g.padsEnd[0], padRight: g.padsEnd[1],
                               dilationH: g.dilations[0], dilationW: g.dilations[1], ceilMode: ceilMode)
                : Pool2DParams(batch: x.shape[0], channels: x.shape[1], inH: 1, inW: x.shape[2],
                               kernelH: 1, kernelW: g.kernel[0], strideH: 1, strideW: g.strides[0],
                               padLeft: g.padsBegin[0], padRight: g.padsEnd[0], dilationW: g.dilations[0], ceilMode: ceilMode)
            // Every output of a pool is written: a recycled buffer will do (a fresh one per run
            // faulted its pages in: openWakeWord's 1 x 2 pool of 0.8 MB took 1 ms so).
            let shape = try ctx.outputShape(0)
            guard x.elementCount > 0 else { return [Tensor(zeros: .float32, shape: shape)] }
            var out = ctx.makeOutput(.float32, shape: shape)
            guard out.elementCount > 0 else { return [out] }
            x.withUnsafeBufferPointer(as: Float.self) { src in
                out.withUnsafeMutableBufferPointer(as: Float.self) { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    if isMax && Pooling.isPlain2x2(p) { Pooling.maxPool2x2(p, input: s, output: d) }
                    else if isMax { Pooling.maxPool2D(p, input: s, output: d) }
                    else { Pooling.averagePool2D(p, countIncludePad: includePad, input: s, output: d) }
                }
            }
            return [out]
        }
    }

    static let globalAveragePool: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        try ctx.requireFloat32(x)
        let outer = x.shape[0] * x.shape[1]
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        return [try x.floats { (src) throws(RuntimeError) in
            try Tensor.makeFloat(shape: try ctx.outputShape(0)) { dst in
                Pooling.globalAveragePool(input: src, output: dst, outer: outer, spatial: spatial)
            }
        }]
    }

    /// Inference form: y = scale·(x − mean)/√(var + ε) + B per channel.
    static let batchNorm: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let params = [try ctx.input(1), try ctx.input(2), try ctx.input(3), try ctx.input(4)]
        try ctx.requireFloat32(x)
        for t in params { try ctx.requireFloat32(t) }
        let node = ctx.node
        let (eps, training) = try ctx.attribute { () throws(GraphError) in
            (try node.float("epsilon", default: 1e-5), try node.int("training_mode", default: 0) != 0)
        }
        if training || node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw .unsupported(node: node.displayName, reason: "BatchNormalization in training mode is not supported yet")
        }
        let channels = x.shape[1]
        guard params.allSatisfy({ $0.elementCount == channels }) else {
            throw .invalidInput(node: node.displayName, reason: "scale, B, mean and var must each have \(channels) values")
        }
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        // Every element is written: a recycled buffer will do (a fresh zeroed one faulted in its
        // pages on every run: wakeword-emb's 3.6 MB batch norm took 2.5 ms).
        var out = ctx.makeOutput(.float32, shape: x.shape)
        guard out.elementCount > 0 else { return [out] }
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            x.withUnsafeBufferPointer(as: Float.self) { px in
                params[0].withUnsafeBufferPointer(as: Float.self) { s in
                    params[1].withUnsafeBufferPointer(as: Float.self) { b in
                        params[2].withUnsafeBufferPointer(as: Float.self) { m in
                            params[3].withUnsafeBufferPointer(as: Float.self) { v in
                                guard let y = po.baseAddress, let xp = px.baseAddress, let sp = s.baseAddress,
                                      let bp = b.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress else { return }
                                Normalization.batchNormInference(xp, y, batch: x.shape[0], channels: channels, spatial: spatial,
                                                                 scale: sp, bias: bp, mean: mp, variance: vp, epsilon: eps)
                            }
                        }
                    }
                }
            }
        }
        return [out]
    }
}

extension Conv2DParams {
    /// A 2-D convolution of x [N, C, H, W] (`input`) into `outChannels` channels over the window
    /// `g` (2-D: kernel, strides, pads and dilations of two sizes each).
    init(input x: [Int], outChannels: Int, geometry g: WindowGeometry, groups: Int) {
        self.init(batch: x[0], inChannels: x[1], inH: x[2], inW: x[3], outChannels: outChannels,
                  kernelH: g.kernel[0], kernelW: g.kernel[1], strideH: g.strides[0], strideW: g.strides[1],
                  padTop: g.padsBegin[0], padLeft: g.padsBegin[1], padBottom: g.padsEnd[0], padRight: g.padsEnd[1],
                  dilationH: g.dilations[0], dilationW: g.dilations[1], groups: groups)
    }
}
