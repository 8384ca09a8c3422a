import DLGraph
import DLKernels
import DLTensor

/// Float32 unary activations and broadcasting arithmetic on the vectorised DLKernels loops.
enum ElementwiseKernels {
    /// Fast variants (see ``KernelRegistry``) of ops whose general kernels are in `MathKernels`:
    /// the vectorised DLKernels loops, taken when every input present is float32.
    static var fast: [(String, String, FastKernel)] {
        let kernels: [(String, Kernel)] = [
            ("Relu", unary { Elementwise.relu($0, $1, count: $2) }),
            ("Sigmoid", unary { Elementwise.sigmoid($0, $1, count: $2) }),
            ("Tanh", unary { Elementwise.tanh($0, $1, count: $2) }),
            ("Erf", unary { Elementwise.erf($0, $1, count: $2) }),
            ("Add", binary(.add)), ("Sub", binary(.sub)), ("Mul", binary(.mul)), ("Div", binary(.div)),
        ]
        return kernels.map { op, kernel in
            (op, "every input float32", { ctx throws(RuntimeError) in
                for t in ctx.inputs where t != nil && t?.dtype != .float32 { return nil }
                return try kernel(ctx)
            })
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
                    f(src.baseAddress!, dst.baseAddress!, x.elementCount)
                }
            }
            return [out]
        }
    }

    static func binary(_ op: BinaryOperation) -> Kernel {
        { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            let shape = try ctx.outputShape(0)
            // Over an input that dies here when the plan allows it (same shape as the output: the
            // loops read each element before writing it), else into a recycled buffer.
            let out = ctx.inPlaceOutput(a.dtype, shape: shape) ?? ctx.makeOutput(a.dtype, shape: shape)
            /// Runs the typed kernel of `T` over the three buffers.
            func apply<T: TensorScalar>(
                _: T.Type,
                _ kernel: (UnsafePointer<T>, [Int], UnsafePointer<T>, [Int], UnsafeMutablePointer<T>, [Int]) -> Void
            ) {
                a.withUnsafeBufferPointer(as: T.self) { pa in
                    b.withUnsafeBufferPointer(as: T.self) { pb in
                        out.withUnsafeMutableBufferPointerInPlace(as: T.self) { po in
                            guard let x = pa.baseAddress, let y = pb.baseAddress, let z = po.baseAddress else { return }
                            kernel(x, a.shape, y, b.shape, z, shape)
                        }
                    }
                }
            }
            switch a.dtype {
            case .float32: apply(Float.self) { Elementwise.binary(op, $0, shape: $1, $2, shape: $3, $4, shape: $5) }
            case .int64: apply(Int64.self) { Elementwise.binary(op, $0, shape: $1, $2, shape: $3, $4, shape: $5) }
            case .int32: apply(Int32.self) { Elementwise.binary(op, $0, shape: $1, $2, shape: $3, $4, shape: $5) }
            default:
                throw .unsupported(node: ctx.node.displayName, reason: "\(ctx.node.opType) on \(a.dtype) is not supported yet (float32, int32, int64)")
            }
            return [out]
        }
    }
}
