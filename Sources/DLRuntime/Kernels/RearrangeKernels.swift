import DLGraph
import DLKernels
import DLTensor

/// Pure rearrangements of spatial data: DepthToSpace, SpaceToDepth and CenterCropPad. They move
/// elements of any dtype without arithmetic (DepthToSpace and SpaceToDepth as the blocked
/// transpose of a six-axis view, CenterCropPad by gathering flat indices).
enum RearrangeKernels {
    static var all: [KernelEntry] {
        [.init("DepthToSpace", depthToSpace), .init("SpaceToDepth", spaceToDepth), .init("CenterCropPad", centerCropPad)]
    }

    static func blocksize(_ ctx: KernelContext, _ x: Tensor) throws(RuntimeError) -> Int {
        guard x.shape.count == 4 else { throw ctx.fail("needs an input [N, C, H, W], got \(x.shape)") }
        let b = try ctx.int("blocksize", 0)
        guard b >= 1 else { throw ctx.fail("blocksize must be at least 1, got \(b)") }
        return b
    }

    /// DCR moves depth blocks first ([b, b, C'] order of the channel), CRD channels first.
    static let depthToSpace: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let b = try blocksize(ctx, x)
        let mode = try ctx.string("mode", "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw ctx.fail("mode '\(mode)' is not DCR or CRD") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard c % (b * b) == 0 else { throw ctx.fail("\(c) channels are not a multiple of blocksize² \(b * b)") }
        let oc = c / (b * b)
        // As the spec defines it: a reshape to six axes, a transpose, a reshape to four.
        let (split, perm) = mode == "DCR" ? ([n, b, b, oc, h, w], [0, 3, 4, 1, 5, 2]) : ([n, oc, b, b, h, w], [0, 1, 4, 2, 5, 3])
        return [rearranged(ctx, x, split: split, permutation: perm, shape: [n, oc, h * b, w * b])]
    }

    /// The inverse of DepthToSpace in the same mode (opset 28 added CRD).
    static let spaceToDepth: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let b = try blocksize(ctx, x)
        let mode = try ctx.string("mode", "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw ctx.fail("mode '\(mode)' is not DCR or CRD") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard h % b == 0, w % b == 0 else { throw ctx.fail("spatial size \(h)x\(w) is not a multiple of blocksize \(b)") }
        // DCR: channel (by·b + bx)·C + c; CRD: c·b² + by·b + bx.
        let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
        return [rearranged(ctx, x, split: [n, c, h / b, b, w / b, b], permutation: perm, shape: [n, c * b * b, h / b, w / b])]
    }

    /// `x` viewed as `split`, transposed by `permutation`, viewed as `shape`: the elements moved
    /// by the blocked transpose into a pooled buffer (strings by an index map).
    static func rearranged(_ ctx: KernelContext, _ x: Tensor, split: [Int], permutation: [Int], shape: [Int]) -> Tensor {
        guard x.dtype != .string else {
            let strides = IndexMath.strides(split)
            let map = IndexMath.strided(permutation.map { split[$0] }, strides: permutation.map { strides[$0] }, offset: 0)
            return x.gathered(map, shape: shape)
        }
        let out = ctx.makeOutput(x.dtype, shape: shape)
        guard out.elementCount > 0 else { return out }
        x.withUnsafeBytes { src in
            out.withUnsafeMutableBytesInPlace { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Layout.transpose(s, d, shape: split, permutation: permutation, elementWidth: x.dtype.byteWidth)
            }
        }
        return out
    }

    /// CenterCropPad: each listed axis is cropped or zero-padded to its target size around the
    /// centre (the odd element goes to the end).
    static let centerCropPad: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let target = try ctx.intList(1) else { throw ctx.fail("the shape input is required") }
        let rank = x.shape.count
        var axes = Array(0..<rank)
        if let a = try ctx.ints("axes") {
            axes = []
            for v in a { axes.append(try ctx.axis(v, rank: rank)) }
        }
        guard target.count == axes.count, target.allSatisfy({ $0 >= 0 }) else {
            throw ctx.fail("shape \(target) must list one non-negative size per axis \(axes)")
        }
        var shape = x.shape
        var offset = [Int](repeating: 0, count: rank)
        for (a, s) in zip(axes, target) {
            let d = x.shape[a]
            offset[a] = s <= d ? (d - s) / 2 : -((s - d) / 2)
            shape[a] = s
        }
        let total = shape.reduce(1, *)
        let inStrides = IndexMath.strides(x.shape)
        var out = x.emptyLike(shape: shape)
        var pairs: [(dst: Int, src: Int)] = []
        for o in 0..<total {
            let oi = IndexMath.unravel(o, shape)
            var flat = 0, inside = true
            for d in 0..<rank {
                let i = oi[d] + offset[d]
                if i < 0 || i >= x.shape[d] { inside = false; break }
                flat += i * inStrides[d]
            }
            if inside { pairs.append((o, flat)) }
        }
        out.assign(from: x, pairs: pairs)
        return [out]
    }
}
