import DLGraph
import DLKernels
import DLTensor

/// Ops that relabel or move elements. Reshape-like ops share the input's storage.
enum ShapeKernels {
    static var all: [KernelEntry] {
        [.init("Flatten", relabel), .init("Reshape", relabel), .init("Transpose", transpose), .init("Concat", concat), .init("Constant", constant)]
    }

    /// Same elements, the inferred shape; no copy.
    static let relabel: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        do { return [try x.reshaped(to: try ctx.outputShape(0))] } catch let e as RuntimeError { throw e } catch {
            throw .invalidInput(node: ctx.node.displayName, reason: "\(error)")
        }
    }

    static let transpose: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype != .string else {
            throw .unsupported(node: ctx.node.displayName, reason: "Transpose of strings is not supported yet")
        }
        let perm = try ctx.attribute { () throws(GraphError) in try TransposeOp.permutation(node: ctx.node, rank: x.rank) }
        let outShape = try ctx.outputShape(0)
        guard x.elementCount > 0 else { return [Tensor(zeros: x.dtype, shape: outShape)] }
        // Only size-1 axes move (a batch_first model's [1, S, E] -> [S, 1, E]): the elements keep
        // their order, so share the input's storage as Reshape does.
        let moved = perm.filter { x.shape[$0] != 1 }
        if moved == moved.sorted(), outShape.reduce(1, *) == x.elementCount, let same = try? x.reshaped(to: outShape) {
            return [same]
        }
        var out = ctx.makeOutput(x.dtype, shape: outShape)
        out.withUnsafeMutableBytes { dst in
            x.withUnsafeBytes { src in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Layout.transpose(s, d, shape: x.shape, permutation: perm, elementWidth: x.dtype.byteWidth)
            }
        }
        return [out]
    }

    static let concat: Kernel = { ctx throws(RuntimeError) in
        let parts = try (0..<ctx.inputs.count).map { (i) throws(RuntimeError) in try ctx.input(i) }
        let dtype = parts[0].dtype
        guard dtype != .string else {
            throw .unsupported(node: ctx.node.displayName, reason: "Concat of strings is not supported yet")
        }
        let axisAttr = try ctx.attribute { () throws(GraphError) in try ctx.node.int("axis", default: 0) }
        let shape = try ctx.outputShape(0)
        guard let axis = Axes.normalise(axisAttr, rank: shape.count) else {
            throw .invalidInput(node: ctx.node.displayName, reason: "axis \(axisAttr) is outside rank \(shape.count)")
        }
        // Every output element comes from one part: a recycled buffer will do.
        let out = ctx.makeOutput(dtype, shape: shape)
        guard out.elementCount > 0 else { return [out] }
        // Empty parts contribute nothing; the kernel gets only the others.
        let used = parts.filter { $0.elementCount > 0 }
        out.withUnsafeMutableBytesInPlace { dst in
            guard let d = dst.baseAddress else { return }
            var pointers: [UnsafeRawPointer] = []
            func collect(_ i: Int) {
                if i == used.count {
                    Layout.concat(pointers, shapes: used.map(\.shape), axis: axis, into: d, elementWidth: dtype.byteWidth)
                    return
                }
                used[i].withUnsafeBytes { b in
                    if let p = b.baseAddress { pointers.append(p) }
                    collect(i + 1)
                }
            }
            collect(0)
        }
        return [out]
    }

    static let constant: Kernel = { ctx throws(RuntimeError) in
        [try ctx.attribute { () throws(GraphError) in try ConstantOp.value(of: ctx.node) }]
    }
}
