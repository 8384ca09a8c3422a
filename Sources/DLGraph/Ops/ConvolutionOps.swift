import DLTensor

/// Conv and the poolings, for any number of spatial dims at the type level.
enum ConvolutionOps {
    static var schemas: [OpSchema] {
        [
            OpSchema("Conv", inputs: 2...3) { ctx throws(GraphError) in
                let x = try ctx.type(0), w = try ctx.type(1)
                let name = ctx.node.displayName
                guard x.dtype == w.dtype, x.dtype.isFloatingPoint else {
                    throw .typeMismatch(node: name, reason: "Conv needs floating-point X and W of one type, got \(x.dtype) and \(w.dtype)")
                }
                guard let dx = x.dims, let dw = w.dims else { return [TensorType(dtype: x.dtype, dims: nil)] }
                guard dx.count >= 3, dw.count == dx.count else {
                    throw .shapeMismatch(node: name, reason: "Conv needs X [N,C,spatial...] and W of the same rank, got \(x) and \(w)")
                }
                let window = try WindowAttributes(node: ctx.node)
                let group = window.group
                if let c = dx[1].value, let wc = dw[1].value, c != wc * group {
                    throw .shapeMismatch(node: name, reason: "X has \(c) channels but W \(w) with group \(group) expects \(wc * group)")
                }
                if let m = dw[0].value, m % group != 0 {
                    throw .shapeMismatch(node: name, reason: "W has \(m) output channels, not divisible by group \(group)")
                }
                if ctx.hasInput(2), let b = ctx.inputTypes[2], let db = b.dims {
                    guard db.count == 1, db[0].value == nil || dw[0].value == nil || db[0] == dw[0] else {
                        throw .shapeMismatch(node: name, reason: "bias \(b) does not match \(dw[0]) output channels")
                    }
                }
                let kernel = window.kernelShape ?? dw.dropFirst(2).compactMap(\.value)
                let spatial = try spatialOutput(window, dims: dx, kernel: kernel, isPooling: false)
                return [TensorType(dtype: x.dtype, dims: [dx[0], dw[0]] + spatial)]
            },
            // int32 sums [N, M, spatial...]; the element types are the kernel's to check.
            OpSchema("ConvInteger", inputs: 2...4) { ctx throws(GraphError) in
                let window = try WindowAttributes(node: ctx.node)
                let dims = try integerConvDims(window, x: ctx.inputTypes.first??.dims, w: ctx.inputTypes.count > 1 ? ctx.inputTypes[1]?.dims : nil)
                return [TensorType(dtype: .int32, dims: dims)]
            },
            pool("MaxPool", outputs: 1...2),
            pool("AveragePool", outputs: 1...1),
            OpSchema("GlobalAveragePool", inputs: 1...1) { ctx throws(GraphError) in
                let x = try ctx.type(0)
                guard let dx = x.dims else { return [x] }
                guard dx.count >= 3 else {
                    throw .shapeMismatch(node: ctx.node.displayName, reason: "GlobalAveragePool needs [N,C,spatial...], got \(x)")
                }
                return [TensorType(dtype: x.dtype, dims: Array(dx[0..<2]) + Array(repeating: .fixed(1), count: dx.count - 2))]
            },
        ]
    }

    static func pool(_ op: String, outputs: ClosedRange<Int>) -> OpSchema {
        OpSchema(op, inputs: 1...1, outputs: outputs) { ctx throws(GraphError) in
            let x = try ctx.type(0)
            let name = ctx.node.displayName
            guard x.dtype.isFloatingPoint || (op == "MaxPool" && (x.dtype == .int8 || x.dtype == .uint8)) else {
                throw .typeMismatch(node: name, reason: "\(op) needs a floating-point input, got \(x.dtype)")
            }
            let window = try WindowAttributes(node: ctx.node)
            let kernel = try window.kernel(weight: nil)
            guard let dx = x.dims else { return [TensorType(dtype: x.dtype, dims: nil), TensorType(dtype: .int64, dims: nil)] }
            guard dx.count == kernel.count + 2 else {
                throw .shapeMismatch(node: name, reason: "\(op) with a \(kernel.count)-D kernel needs rank \(kernel.count + 2) input, got \(x)")
            }
            let spatial = try spatialOutput(window, dims: dx, kernel: kernel, isPooling: true)
            let dims = Array(dx[0..<2]) + spatial
            return [TensorType(dtype: x.dtype, dims: dims), TensorType(dtype: .int64, dims: dims)]
        }
    }

    /// The output dims [N, M, spatial...] of an integer convolution of x [N, C, spatial...] by w
    /// [M, C/group, k...] (ConvInteger's window), or nil while x's rank or the kernel is unknown.
    static func integerConvDims(_ window: WindowAttributes, x: [Dim]?, w: [Dim]?) throws(GraphError) -> [Dim]? {
        guard let dx = x, let dw = w, dx.count >= 3, dw.count == dx.count else { return nil }
        guard let kernel = window.kernelShape ?? Array(dw.dropFirst(2)).concrete else { return nil }
        return [dx[0], dw[0]] + (try spatialOutput(window, dims: dx, kernel: kernel, isPooling: false))
    }

    /// Output spatial dims: computed when the input's spatial dims are fixed, unknown otherwise.
    static func spatialOutput(_ window: WindowAttributes, dims: [Dim], kernel: [Int], isPooling: Bool) throws(GraphError) -> [Dim] {
        let spatialDims = Array(dims.dropFirst(2))
        guard let sizes = spatialDims.concrete, kernel.count == sizes.count else {
            if kernel.count != spatialDims.count {
                throw .invalidAttribute(node: window.node, attribute: "kernel_shape", reason: "has \(kernel.count) sizes for \(spatialDims.count) spatial dims")
            }
            return Array(repeating: .unknown, count: spatialDims.count)
        }
        let g = try window.geometry(input: sizes, kernel: kernel, isPooling: isPooling)
        return g.output.map { .fixed($0) }
    }
}
