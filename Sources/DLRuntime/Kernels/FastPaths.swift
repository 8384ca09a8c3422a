import DLGraph
import DLKernels
import DLTensor

/// Kernels of the fused ops the graph passes introduce: each runs its float32 inputs in one
/// kernel and anything else through the general kernels of the ops it fused.
enum FastPaths {
    /// Kernels of the ops the graph passes introduce (`FusedOps`), keyed "domain:op".
    static var fused: [KernelEntry] {
        [.init("\(FusedOps.domain):FusedConv", fusedConv), .init("\(FusedOps.domain):FusedGemm", fusedGemm),
         .init("\(FusedOps.domain):FusedMatMul", fusedMatMul),
         .init("\(FusedOps.domain):FusedAttention", FusedAttentionKernel.kernel),
         .init("\(FusedOps.domain):FusedConvAdd", ConvolutionKernels.fusedConvAdd),
         .init("\(FusedOps.domain):FusedConvPool", ConvolutionKernels.fusedConvPool),
         .init("\(FusedOps.domain):QuantizeDequantize", quantizeDequantize),
         .init("\(FusedOps.domain):LookupTable", lookupTable),
         .init("\(FusedOps.domain):OneHotMatMul", OneHotKernel.kernel)]
    }

    /// The activation a fused node carries. PRelu (a slope per output channel) only where the
    /// kernel takes one per channel: the convolutions, which give their output `channels`.
    static func activation(_ ctx: KernelContext, channels: Int? = nil) throws(RuntimeError) -> Activation {
        switch try ctx.string("activation", "") {
        case "": return .none
        case "Relu": return .relu
        case "LeakyRelu": return .leakyRelu(alpha: try ctx.float("activation_alpha", 0.01), floor: try ctx.float("activation_beta", -.infinity))
        case "Clip": return .clip(lower: try ctx.float("activation_alpha", -.greatestFiniteMagnitude),
                                  upper: try ctx.float("activation_beta", .greatestFiniteMagnitude))
        case "Sigmoid": return .sigmoid
        case "Silu": return .silu
        case "HardSigmoid": return .hardSigmoid(alpha: try ctx.float("activation_alpha", 0.2), beta: try ctx.float("activation_beta", 0.5))
        case "HardSwish": return .hardSwish
        case "Gelu": return .gelu
        case "PRelu" where channels != nil:
            // The kernels read a slope for every output channel.
            guard let slopes = ctx.floats("activation_slopes"), slopes.count == channels else {
                throw ctx.fail("a fused PRelu needs one slope per output channel (\(channels ?? 0)) in activation_slopes")
            }
            return .prelu(ChannelSlopes(slopes))
        case let other: throw ctx.fail("unknown fused activation '\(other)'")
        }
    }

    /// Attributes a fused node carries for its activation, dropped for the base op's kernel.
    static let activationAttributeNames: Set<String> = ["activation", "activation_alpha", "activation_beta", "activation_slopes"]

    /// The node as its base op (the fused attributes dropped), for the general kernels.
    static func baseContext(_ ctx: KernelContext, opType: String) -> KernelContext {
        let n = ctx.node
        let base = Node(name: n.name, opType: opType, inputs: n.inputs, outputs: n.outputs,
                        attributes: n.attributes.filter { !activationAttributeNames.contains($0.name) })
        var c = KernelContext(node: base, inputs: ctx.inputs, outputTypes: ctx.outputTypes)
        c.values = ctx.values
        c.opset = ctx.opset
        c.pool = ctx.pool
        c.packed = ctx.packed
        return c
    }

    /// Runs the base op with its general kernel, then the activation's kernel on the result.
    static func unfused(_ ctx: KernelContext, opType: String) throws(RuntimeError) -> [Tensor] {
        let base = baseContext(ctx, opType: opType)
        guard let k = OpKernels.table[opType]?.run else { throw ctx.unsupported("no kernel for \(opType)") }
        guard let first = try k(base).first else { throw ctx.fail("\(opType) gave no output") }
        return [try ctx.applyingFusedActivation(first)]
    }

    /// `ai.dlkit.QuantizeDequantize` (see `FuseQuantizeDequantize`): float32 in one pass, other
    /// types through QuantizeLinear and DequantizeLinear.
    static let quantizeDequantize: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), scale = try ctx.input(1), zero = try ctx.input(2)
        guard x.dtype == .float32, scale.dtype == .float32, scale.elementCount == 1, zero.elementCount == 1,
              let s = scale.scalars(as: Float.self).first, s != 0, s.isFinite,
              let z = zero.doubles().first else {
            return [try ctx.runOp("DequantizeLinear", [try ctx.runOp("QuantizeLinear", [x, scale, zero]), scale, zero])]
        }
        let (lo, hi): (Float, Float) = zero.dtype == .int8 ? (-128, 127) : (0, 255)
        let out = ctx.inPlaceOutput(.float32, shape: x.shape) ?? ctx.makeOutput(.float32, shape: x.shape)
        guard x.elementCount > 0 else { return [out] }
        x.withUnsafeBufferPointer(as: Float.self) { src in
            out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                Elementwise.quantizeDequantize(src.baseAddress!, dst.baseAddress!, count: x.elementCount,
                                               scale: s, zero: Float(z), qmin: lo, qmax: hi)
            }
        }
        return [out]
    }

    /// `ai.dlkit.LookupTable` (see `FuseQuantizedLookup`): each byte of x replaced by the table's
    /// entry at its bits.
    static let lookupTable: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), table = try ctx.input(1)
        guard x.dtype == .uint8 || x.dtype == .int8, table.dtype == .uint8 || table.dtype == .int8, table.elementCount == 256 else {
            throw ctx.fail("LookupTable takes int8 or uint8 bytes and a table of 256 int8 or uint8 values, got \(x.dtype) and \(table.elementCount) \(table.dtype)")
        }
        let out = ctx.inPlaceOutput(table.dtype, shape: x.shape) ?? ctx.makeOutput(table.dtype, shape: x.shape)
        guard x.elementCount > 0 else { return [out] }
        x.withUnsafeBytes { src in
            table.withUnsafeBytes { t in
                out.withUnsafeMutableBytesInPlace { dst in
                    ByteLookup.apply(src.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                     dst.baseAddress!.assumingMemoryBound(to: UInt8.self), count: x.elementCount,
                                     table: t.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return [out]
    }

    static let fusedConv: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        if x.dtype == .float32, w.dtype == .float32, ctx.optionalInput(2).map({ $0.dtype == .float32 }) ?? true,
           x.rank == 3 || x.rank == 4 {
            // Conv's kernel reads only Conv's attributes: no base node to build on every run.
            return try ConvolutionKernels.conv(ctx, activation: try activation(ctx, channels: w.shape.first))
        }
        return try unfused(ctx, opType: "Conv")
    }

    static let fusedGemm: Kernel = { ctx throws(RuntimeError) in
        for t in ctx.inputs where t != nil && t?.dtype != .float32 { return try unfused(ctx, opType: "Gemm") }
        // Gemm's kernel reads only Gemm's attributes, so the fused node goes in as it is.
        return try LinearKernels.gemm(ctx, activation: try activation(ctx))
    }

    /// `MatMul(A, W) + bias` then the optional activation: every row of A (its leading dims
    /// flattened) is one row of a single GEMM whose output is first filled with the bias.
    static let fusedMatMul: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), w = try ctx.input(1), bias = try ctx.input(2)
        let act = try activation(ctx)
        let outShape = try ctx.outputShape(0)
        guard a.dtype == .float32, w.dtype == .float32, bias.dtype == .float32, a.rank >= 1, w.rank == 2,
              bias.elementCount == w.shape[1], bias.shape.last == w.shape[1], a.shape[a.rank - 1] == w.shape[0] else {
            return try unfusedMatMul(ctx)
        }
        let k = w.shape[0], n = w.shape[1]
        let m = k == 0 ? outShape.reduce(1, *) / max(n, 1) : a.elementCount / k
        // Every element is written: the bias rows first, then the GEMM adds to them.
        var out = ctx.makeOutput(.float32, shape: outShape)
        guard out.elementCount == m * n else { throw ctx.fail("output shape \(outShape) is not \(m) rows of \(n)") }
        var done = false
        if k > 0, m > 0, let packed = LinearKernels.panels(ctx, m: m, k: k, n: n) {
            out.withUnsafeMutableBufferPointer(as: Float.self) { po in
                a.withUnsafeBufferPointer(as: Float.self) { pa in
                    bias.withUnsafeBufferPointer(as: Float.self) { pb in
                        guard let y = po.baseAddress, let ap = pa.baseAddress, let b = pb.baseAddress else { return }
                        done = packed.multiply(m: m, a: ap, lda: k, transA: false, c: y, ldc: n,
                                               epilogue: GEMMEpilogue(columnBias: b, activation: act))
                    }
                }
            }
        }
        if done { return [out] }
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            guard let y = po.baseAddress, m > 0, n > 0 else { return }
            bias.withUnsafeBufferPointer(as: Float.self) { pb in
                guard let b = pb.baseAddress else { return }
                for i in 0..<m { (y + i * n).update(from: b, count: n) }
            }
            if k > 0 {
                a.withUnsafeBufferPointer(as: Float.self) { pa in
                    w.withUnsafeBufferPointer(as: Float.self) { pw in
                        guard let ap = pa.baseAddress, let wp = pw.baseAddress else { return }
                        GEMM.sgemmSplittingColumns(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                                                   a: ap, lda: k, b: wp, ldb: n, beta: 1, c: y, ldc: n)
                    }
                }
            }
            act.apply(y, count: m * n)
        }
        return [out]
    }

    /// FusedMatMul through the general MatMul, Add and activation kernels (other dtypes).
    static func unfusedMatMul(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let y = try ctx.runOp("Add", [try ctx.runOp("MatMul", [try ctx.input(0), try ctx.input(1)]), try ctx.input(2)])
        return [try ctx.applyingFusedActivation(y)]
    }
}

extension KernelContext {
    /// Runs `op`'s general kernel on `inputs` as a step of this (fused) node, under its name and
    /// output types: the fallback path of fused kernels for inputs their fast path does not take.
    func runOp(_ op: String, _ inputs: [Tensor], _ attributes: [Attribute] = []) throws(RuntimeError) -> Tensor {
        guard let k = OpKernels.table[op]?.run else { throw unsupported("no kernel for \(op)") }
        let node = Node(name: self.node.name, opType: op, inputs: inputs.indices.map { "x\($0)" },
                        outputs: self.node.outputs, attributes: attributes)
        var c = KernelContext(node: node, inputs: inputs, outputTypes: outputTypes)
        c.values = inputs.map { .tensor($0) }
        c.opset = opset
        guard let y = try k(c).first else { throw fail("\(op) gave no output") }
        return y
    }

    /// Applies the fused node's `activation` attribute (with its parameters), if any, through the
    /// general kernels of the ops it stands for.
    func applyingFusedActivation(_ y: Tensor) throws(RuntimeError) -> Tensor {
        let act = try string("activation", "")
        func param(_ name: String, _ d: Float) throws(RuntimeError) -> AttributeValue { .float(try float(name, d)) }
        switch act {
        case "": return y
        case "Silu": return try runOp("Mul", [y, try runOp("Sigmoid", [y])])
        case "LeakyRelu":
            let leaky = try runOp(act, [y], [Attribute(name: "alpha", value: try param("activation_alpha", 0.01))])
            // A floor (a Max with a constant fused after it) as that Max.
            guard node.attribute("activation_beta") != nil else { return leaky }
            return try runOp("Max", [leaky, Tensor(scalar: try float("activation_beta", 0)).converted(to: y.dtype)])
        case "HardSigmoid":
            return try runOp(act, [y], [Attribute(name: "alpha", value: try param("activation_alpha", 0.2)),
                                        Attribute(name: "beta", value: try param("activation_beta", 0.5))])
        case "Clip":
            // The bounds as scalar inputs of y's type (the IR's form of Clip).
            let lo = Tensor(scalar: try float("activation_alpha", -.greatestFiniteMagnitude)).converted(to: y.dtype)
            let hi = Tensor(scalar: try float("activation_beta", .greatestFiniteMagnitude)).converted(to: y.dtype)
            return try runOp(act, [y, lo, hi])
        case "PRelu":
            // The slopes along the channels (axis 1) of y.
            guard let slopes = floats("activation_slopes"), y.rank >= 2, slopes.count == y.shape[1] || slopes.count == 1 else {
                throw fail("a fused PRelu needs one slope per channel of \(y.shape)")
            }
            let shape = [slopes.count] + [Int](repeating: 1, count: y.rank - 2)
            return try runOp(act, [y, Tensor(shape: shape, scalars: slopes).converted(to: y.dtype)])
        default: return try runOp(act, [y])
        }
    }
}
