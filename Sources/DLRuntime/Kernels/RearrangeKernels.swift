import DLGraph
import DLTensor

/// Pure rearrangements of spatial data: DepthToSpace, SpaceToDepth and CenterCropPad. They move
/// elements of any dtype without arithmetic (by gathering flat indices).
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
        let shape = [n, oc, h * b, w * b]
        var idx = [Int](repeating: 0, count: shape.reduce(1, *))
        var i = 0
        for bn in 0..<n {
            for co in 0..<oc {
                for y in 0..<(h * b) {
                    for xx in 0..<(w * b) {
                        let (by, bx) = (y % b, xx % b)
                        let ci = mode == "DCR" ? (by * b + bx) * oc + co : co * b * b + by * b + bx
                        idx[i] = ((bn * c + ci) * h + y / b) * w + xx / b
                        i += 1
                    }
                }
            }
        }
        return [x.gathered(idx, shape: shape)]
    }

    /// The inverse of DepthToSpace in the same mode (opset 28 added CRD).
    static let spaceToDepth: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let b = try blocksize(ctx, x)
        let mode = try ctx.string("mode", "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw ctx.fail("mode '\(mode)' is not DCR or CRD") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard h % b == 0, w % b == 0 else { throw ctx.fail("spatial size \(h)x\(w) is not a multiple of blocksize \(b)") }
        let shape = [n, c * b * b, h / b, w / b]
        var idx = [Int](repeating: 0, count: shape.reduce(1, *))
        var i = 0
        for bn in 0..<n {
            for co in 0..<(c * b * b) {
                // DCR: channel (by·b + bx)·C + c; CRD: c·b² + by·b + bx.
                let (by, bx, ci) = mode == "DCR" ? (co / (b * c), (co / c) % b, co % c) : ((co / b) % b, co % b, co / (b * b))
                for y in 0..<(h / b) {
                    for xx in 0..<(w / b) {
                        idx[i] = ((bn * c + ci) * h + y * b + by) * w + xx * b + bx
                        i += 1
                    }
                }
            }
        }
        return [x.gathered(idx, shape: shape)]
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
