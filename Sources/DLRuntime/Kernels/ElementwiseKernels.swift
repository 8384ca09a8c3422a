import DLGraph
import DLKernels
import DLTensor

/// Float32 unary activations and broadcasting arithmetic on the vectorised DLKernels loops.
enum ElementwiseKernels {
    /// Fast variants (see ``KernelRegistry``) of ops whose general kernels are in `MathKernels`:
    /// the vectorised DLKernels loops, taken when every input present is float32.
    static var fast: [FastEntry] {
        func entry(_ op: String, _ kernel: @escaping FastKernel) -> FastEntry {
            FastEntry(op, "every input float32", { ctx throws(RuntimeError) in
                for t in ctx.inputs where t != nil && t?.dtype != .float32 { return nil }
                return try kernel(ctx)
            })
        }
        return [
            entry("Relu", activation { _ in .relu }),
            entry("Sigmoid", activation { _ in .sigmoid }),
            entry("HardSwish", activation { _ in .hardSwish }),
            entry("HardSigmoid", activation { ctx throws(RuntimeError) in
                .hardSigmoid(alpha: try ctx.float("alpha", 0.2), beta: try ctx.float("beta", 0.5)) }),
            entry("LeakyRelu", activation { ctx throws(RuntimeError) in .leakyRelu(alpha: try ctx.float("alpha", 0.01)) }),
            entry("Clip", activation { ctx throws(RuntimeError) in
                // Bounds are scalar inputs; other shapes go the general way.
                func bound(_ k: Int, _ d: Float) -> Float? {
                    guard let t = ctx.optionalInput(k) else { return d }
                    return t.elementCount == 1 ? t.scalars(as: Float.self).first : nil
                }
                guard let lo = bound(1, -.infinity), let hi = bound(2, .infinity), lo <= hi else { return nil }
                return .clip(lower: lo, upper: hi) }),
            entry("Tanh", always(unary { Elementwise.tanh($0, $1, count: $2) })),
            // Exact in float32: the same bits as the general kernel's Double-then-round (sqrt and
            // 1/x are correctly rounded either way, a double rounding of them innocuous).
            entry("Abs", always(unary { Elementwise.abs($0, $1, count: $2) })),
            entry("Neg", always(unary { Elementwise.neg($0, $1, count: $2) })),
            entry("Floor", always(unary { x, y, n in for i in 0..<n { y[i] = x[i].rounded(.down) } })),
            entry("Ceil", always(unary { x, y, n in for i in 0..<n { y[i] = x[i].rounded(.up) } })),
            entry("Round", always(unary { x, y, n in for i in 0..<n { y[i] = x[i].rounded(.toNearestOrEven) } })),
            entry("Sqrt", always(unary { Elementwise.sqrt($0, $1, count: $2) })),
            entry("Reciprocal", always(unary { x, y, n in for i in 0..<n { y[i] = 1 / x[i] } })),
            entry("Erf", always(unary { Elementwise.erf($0, $1, count: $2) })),
            entry("Add", always(binary(.add))), entry("Sub", always(binary(.sub))), entry("Mul", always(binary(.mul))),
            entry("Div", always(binary(.div))),
            // Max and Min take any number of inputs; two is the common case.
            entry("Max", { ctx throws(RuntimeError) in try maxOrMin(ctx, .max) }),
            entry("Min", { ctx throws(RuntimeError) in try maxOrMin(ctx, .min) }),
        ]
    }

    /// Two-input Max or Min. Against one (non-NaN) number it is a Clip with one open bound, on
    /// the AVX-512 activation loop (TensorFlow exports LeakyRelu and ReLU this way); otherwise the
    /// broadcasting loops.
    static func maxOrMin(_ ctx: KernelContext, _ op: BinaryOperation) throws(RuntimeError) -> [Tensor]? {
        guard ctx.inputCount == 2 else { return nil }
        let a = try ctx.input(0), b = try ctx.input(1)
        for (x, c) in [(a, b), (b, a)] where c.elementCount == 1 && x.shape.count >= c.shape.count {
            guard let v = c.scalars(as: Float.self).first, !v.isNaN, x.elementCount > 0 else { break }
            let act: Activation = op == .max ? .clip(lower: v, upper: .infinity) : .clip(lower: -.infinity, upper: v)
            // The output has x's shape (c's rank is no larger, all ones).
            let out = ctx.makeOutput(.float32, shape: x.shape)
            x.withUnsafeBufferPointer(as: Float.self) { src in
                out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                    act.apply(src.baseAddress!, dst.baseAddress!, count: x.elementCount)
                }
            }
            return [out]
        }
        return try binary(op)(ctx)
    }

    /// A kernel that always takes the node (once its inputs are float32).
    static func always(_ kernel: @escaping Kernel) -> FastKernel {
        { ctx throws(RuntimeError) in try kernel(ctx) }
    }

    /// An activation of DLKernels over a float32 tensor, its parameters read per run; `make`
    /// returns nil to leave the node to its general kernel.
    static func activation(_ make: @escaping @Sendable (KernelContext) throws(RuntimeError) -> Activation?) -> FastKernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            try ctx.requireFloat32(x)
            guard let act = try make(ctx) else { return nil }
            let out = ctx.inPlaceOutput(.float32, shape: x.shape) ?? ctx.makeOutput(.float32, shape: x.shape)
            guard x.elementCount > 0 else { return [out] }
            x.withUnsafeBufferPointer(as: Float.self) { src in
                out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                    Elementwise.splitting(src.baseAddress!, dst.baseAddress!, count: x.elementCount) { act.apply($0, $1, count: $2) }
                }
            }
            return [out]
        }
    }

    static func unary(_ f: @escaping @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            try ctx.requireFloat32(x)
            // Over the input itself when the plan says it dies here, else into a recycled buffer.
            let out = ctx.inPlaceOutput(.float32, shape: x.shape) ?? ctx.makeOutput(.float32, shape: x.shape)
            guard x.elementCount > 0 else { return [out] }
            x.withUnsafeBufferPointer(as: Float.self) { src in
                out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                    Elementwise.splitting(src.baseAddress!, dst.baseAddress!, count: x.elementCount, f)
                }
            }
            return [out]
        }
    }

    static func binary(_ op: BinaryOperation) -> Kernel {
        broadcasting(float: { Elementwise.binary(op, $0, $1, $2, plan: $3) },
                     int64: { Elementwise.binary(op, $0, $1, $2, plan: $3) },
                     int32: { Elementwise.binary(op, $0, $1, $2, plan: $3) })
    }

    /// Pow on float32 tensors (other types take MathKernels' general path).
    static let pow: Kernel = broadcasting(float: { Elementwise.power($0, $1, $2, plan: $3) }, int64: nil, int32: nil)

    /// A binary kernel over same-typed operands with numpy broadcasting, from its typed loops (nil:
    /// that type is not supported).
    private static func broadcasting(
        float: @escaping @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, BroadcastPlan) -> Void,
        int64: (@Sendable (UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafeMutablePointer<Int64>, BroadcastPlan) -> Void)?,
        int32: (@Sendable (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafeMutablePointer<Int32>, BroadcastPlan) -> Void)?
    ) -> Kernel {
        { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            // Max and Min leave their output shape to the run: broadcast here.
            let plan: BroadcastPlan
            let shape: [Int]
            do throws(Broadcast.Mismatch) {
                if let planned = try? ctx.outputShape(0) { shape = planned } else { shape = try Broadcast.shape(a.shape, b.shape) }
                plan = try BroadcastPlan(outShape: shape, operands: [a.shape, b.shape])
            } catch {
                throw ctx.fail(error.description)
            }
            // Over an input that dies here when the plan allows it (same shape as the output: the
            // loops read each element before writing it), else into a recycled buffer.
            let out = ctx.inPlaceOutput(a.dtype, shape: shape) ?? ctx.makeOutput(a.dtype, shape: shape)
            /// Runs the typed kernel of `T` over the three buffers.
            func apply<T: TensorScalar>(
                _: T.Type, _ kernel: (UnsafePointer<T>, UnsafePointer<T>, UnsafeMutablePointer<T>) -> Void
            ) {
                a.withUnsafeBufferPointer(as: T.self) { pa in
                    b.withUnsafeBufferPointer(as: T.self) { pb in
                        out.withUnsafeMutableBufferPointerInPlace(as: T.self) { po in
                            guard let x = pa.baseAddress, let y = pb.baseAddress, let z = po.baseAddress else { return }
                            kernel(x, y, z)
                        }
                    }
                }
            }
            switch a.dtype {
            case .float32: apply(Float.self) { float($0, $1, $2, plan) }
            case .int64 where int64 != nil: apply(Int64.self) { int64?($0, $1, $2, plan) }
            case .int32 where int32 != nil: apply(Int32.self) { int32?($0, $1, $2, plan) }
            default:
                throw .unsupported(node: ctx.node.displayName, reason: "\(ctx.node.opType) on \(a.dtype) is not supported yet (float32, int32, int64)")
            }
            return [out]
        }
    }
}
