import DLGraph
import DLTensor
import Foundation

/// Random generators (RandomNormal/Uniform(Like), Bernoulli), the ai.onnx.ml ops the suite uses
/// (LabelEncoder, TreeEnsemble, ArrayFeatureExtractor, Binarizer) and the
/// ai.onnx.preview.training optimizers (Adagrad, Adam, Momentum). Ops of other domains are keyed
/// "domain:op" (see `OpKernels.key`).
enum MLKernels {
    static var all: [KernelEntry] {
        [.init("RandomNormal", { ctx throws(RuntimeError) in try random(ctx, normal: true, like: false) }),
         .init("RandomUniform", { ctx throws(RuntimeError) in try random(ctx, normal: false, like: false) }),
         .init("RandomNormalLike", { ctx throws(RuntimeError) in try random(ctx, normal: true, like: true) }),
         .init("RandomUniformLike", { ctx throws(RuntimeError) in try random(ctx, normal: false, like: true) }),
         .init("Bernoulli", bernoulli),
         .init("ai.onnx.ml:LabelEncoder", labelEncoder), .init("ai.onnx.ml:TreeEnsemble", treeEnsemble),
         .init("ai.onnx.ml:ArrayFeatureExtractor", arrayFeatureExtractor), .init("ai.onnx.ml:Binarizer", binarizer),
         .init("ai.onnx.preview.training:Adagrad", adagrad), .init("ai.onnx.preview.training:Adam", adam),
         .init("ai.onnx.preview.training:Momentum", momentum)]
    }

    // MARK: random

    /// SplitMix64: seeded from the `seed` attribute's bits when given, else from the system.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        init(seed: Float?) {
            if let seed { state = UInt64(seed.bitPattern) &* 0x9E37_79B9_7F4A_7C15 &+ 1 } else {
                var sys = SystemRandomNumberGenerator()
                state = sys.next()
            }
        }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
        mutating func normal() -> Double {
            // Box-Muller.
            let u1 = max(uniform(), 0x1.0p-60), u2 = uniform()
            return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        }
    }

    static func seed(_ ctx: KernelContext) throws(RuntimeError) -> Float? {
        ctx.node.attribute("seed") == nil ? nil : try ctx.float("seed", 0)
    }

    static func dtypeAttribute(_ ctx: KernelContext, default d: DType) throws(RuntimeError) -> DType {
        guard ctx.node.attribute("dtype") != nil else { return d }
        let code = try ctx.int("dtype", 1)
        guard let t = DType(onnxCode: Int32(truncatingIfNeeded: code)) else { throw ctx.unsupported("unsupported dtype code \(code)") }
        return t
    }

    static func random(_ ctx: KernelContext, normal: Bool, like: Bool) throws(RuntimeError) -> [Tensor] {
        let shape: [Int]
        let dtype: DType
        if like {
            let x = try ctx.input(0)
            shape = x.shape
            dtype = try dtypeAttribute(ctx, default: x.dtype)
        } else {
            guard let s = try ctx.ints("shape") else { throw ctx.fail("the shape attribute is missing") }
            guard s.allSatisfy({ $0 >= 0 }) else { throw ctx.fail("shape \(s) has a negative dim") }
            shape = s
            dtype = try dtypeAttribute(ctx, default: .float32)
        }
        guard dtype.isFloatingPoint else { throw ctx.fail("random values must be a float dtype, got \(dtype)") }
        var g = Generator(seed: try seed(ctx))
        let n = shape.reduce(1, *)
        var v = [Double](repeating: 0, count: n)
        if normal {
            let mean = Double(try ctx.float("mean", 0)), scale = Double(try ctx.float("scale", 1))
            for i in 0..<n { v[i] = mean + scale * g.normal() }
        } else {
            let low = Double(try ctx.float("low", 0)), high = Double(try ctx.float("high", 1))
            for i in 0..<n { v[i] = low + (high - low) * g.uniform() }
        }
        return [Tensor.fromDoubles(v, dtype: dtype, shape: shape)]
    }

    static func bernoulli(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint else { throw ctx.fail("the probabilities must be floats, got \(x.dtype)") }
        let dtype = try dtypeAttribute(ctx, default: x.dtype)
        var g = Generator(seed: try seed(ctx))
        let p = x.doubles()
        guard p.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw ctx.fail("probabilities must be in [0, 1]") }
        return [Tensor.fromDoubles(p.map { g.uniform() < $0 ? 1 : 0 }, dtype: dtype, shape: x.shape)]
    }

    // MARK: ai.onnx.ml

    /// A key that compares strings as strings and numbers by value.
    static func keys(of t: Tensor) -> [String] {
        t.dtype == .string ? t.strings.map { "s" + $0 } : t.doubles().map { "n\($0 == 0 ? 0 : $0)" }
    }

    static func labelEncoder(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        func list(_ prefix: String) throws(RuntimeError) -> Tensor? {
            switch ctx.node.attribute(prefix + "_tensor") {
            case .tensor(let t)?: return t
            case nil: break
            case let o?: throw ctx.fail("\(prefix)_tensor must be a tensor, got \(o.kindName)")
            }
            if case .strings(let s)? = ctx.node.attribute(prefix + "_strings") { return Tensor(shape: [s.count], strings: s) }
            if case .ints(let v)? = ctx.node.attribute(prefix + "_int64s") { return Tensor(shape: [v.count], scalars: v.map { Int64($0) }) }
            if case .floats(let v)? = ctx.node.attribute(prefix + "_floats") { return Tensor(shape: [v.count], scalars: v) }
            return nil
        }
        guard let k = try list("keys"), let v = try list("values") else { throw ctx.fail("keys and values are required") }
        guard k.elementCount == v.elementCount else { throw ctx.fail("\(k.elementCount) keys for \(v.elementCount) values") }
        var map: [String: Int] = [:]
        for (i, key) in keys(of: k).enumerated() where map[key] == nil { map[key] = i }
        let fallback: Tensor
        if case .tensor(let t)? = ctx.node.attribute("default_tensor") {
            guard t.dtype == v.dtype, t.elementCount >= 1 else { throw ctx.fail("default_tensor must hold one \(v.dtype)") }
            fallback = t
        } else if v.dtype == .string {
            fallback = Tensor(shape: [1], strings: [try ctx.string("default_string", "_Unused")])
        } else if v.dtype == .float32 {
            fallback = Tensor(shape: [1], scalars: [try ctx.float("default_float", -0.0)])
        } else {
            fallback = Tensor.fromInt64s([Int64(try ctx.int("default_int64", -1))], dtype: v.dtype, shape: [1])
        }
        // Gather from values ++ [default].
        let table = v.dtype == .string ? Tensor(shape: [v.elementCount + 1], strings: v.strings + [fallback.strings[0]])
            : Tensor.concatenate([try reshaped(ctx, v, [v.elementCount]), fallback.slice(axis: 0, start: 0, length: 1)], axis: 0)
        guard let table else { throw ctx.fail("cannot build the value table") }
        let idx = keys(of: x).map { map[$0] ?? v.elementCount }
        return [table.gathered(idx, shape: x.shape)]
    }

    static func reshaped(_ ctx: KernelContext, _ t: Tensor, _ s: [Int]) throws(RuntimeError) -> Tensor {
        do { return try t.reshaped(to: s) } catch { throw ctx.fail("\(error)") }
    }

    static func tensorAttribute(_ ctx: KernelContext, _ name: String) throws(RuntimeError) -> [Double]? {
        switch ctx.node.attribute(name) {
        case nil: return nil
        case .tensor(let t)?: return t.dtype == .string ? nil : t.doubles()
        case .floats(let f)?: return f.map(Double.init)
        case .ints(let i)?: return i.map(Double.init)
        case let o?: throw ctx.fail("attribute '\(name)' must be a tensor, got \(o.kindName)")
        }
    }

    static func treeEnsemble(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint, x.rank == 2 else { throw ctx.fail("X must be a [N, F] float tensor, got \(x.dtype)\(x.shape)") }
        let rows = x.shape[0], features = x.shape[1]
        let xs = x.doubles()
        let nTargets = try ctx.int("n_targets", 1)
        guard nTargets >= 1 else { throw ctx.fail("n_targets must be positive") }
        let roots = try ctx.ints("tree_roots") ?? []
        let featureIds = try ctx.ints("nodes_featureids") ?? []
        let n = featureIds.count
        let modes = try tensorAttribute(ctx, "nodes_modes")?.map { Int($0) } ?? Array(repeating: 0, count: n)
        let splits = try tensorAttribute(ctx, "nodes_splits") ?? Array(repeating: 0, count: n)
        let trueIds = try ctx.ints("nodes_truenodeids") ?? [], falseIds = try ctx.ints("nodes_falsenodeids") ?? []
        let trueLeaf = try ctx.ints("nodes_trueleafs") ?? [], falseLeaf = try ctx.ints("nodes_falseleafs") ?? []
        let missingTrue = try ctx.ints("nodes_missing_value_tracks_true") ?? Array(repeating: 0, count: n)
        let leafTargets = try ctx.ints("leaf_targetids") ?? []
        let leafWeights = try tensorAttribute(ctx, "leaf_weights") ?? []
        guard [modes.count, splits.count, trueIds.count, falseIds.count, trueLeaf.count, falseLeaf.count, missingTrue.count].allSatisfy({ $0 == n }),
              leafTargets.count == leafWeights.count else { throw ctx.fail("the nodes_* / leaf_* attributes differ in length") }
        guard featureIds.allSatisfy({ $0 >= 0 && $0 < features }) else { throw ctx.fail("a feature id is outside 0..<\(features)") }
        guard leafTargets.allSatisfy({ $0 >= 0 && $0 < nTargets }) else { throw ctx.fail("a leaf target is outside 0..<\(nTargets)") }
        // Membership sets, NaN-delimited, in order of the BRANCH_MEMBER nodes.
        var sets: [Int: Set<Double>] = [:]
        if let members = try tensorAttribute(ctx, "membership_values") {
            var groups: [Set<Double>] = [[]]
            for m in members { if m.isNaN { groups.append([]) } else { groups[groups.count - 1].insert(m) } }
            var g = 0
            for k in 0..<n where modes[k] == 6 {
                sets[k] = g < groups.count ? groups[g] : []
                g += 1
            }
        }
        let aggregate = try ctx.int("aggregate_function", 1)
        var out = [Double](repeating: 0, count: rows * nTargets)
        for r in 0..<rows {
            var acc = [Double?](repeating: nil, count: nTargets)
            for root in roots {
                guard root >= 0 && root < n else { throw ctx.fail("tree root \(root) is outside the nodes") }
                var k = root, steps = 0
                var leaf = -1
                while leaf < 0 {
                    steps += 1
                    guard steps <= n + 1 else { throw ctx.fail("a tree has a cycle") }
                    let v = xs[r * features + featureIds[k]], s = splits[k]
                    let go: Bool
                    if v.isNaN { go = missingTrue[k] != 0 } else {
                        switch modes[k] {
                        case 0: go = v <= s
                        case 1: go = v < s
                        case 2: go = v >= s
                        case 3: go = v > s
                        case 4: go = v == s
                        case 5: go = v != s
                        case 6: go = sets[k]?.contains(v) ?? false
                        default: throw ctx.fail("unknown node mode \(modes[k])")
                        }
                    }
                    let next = go ? trueIds[k] : falseIds[k]
                    if (go ? trueLeaf[k] : falseLeaf[k]) != 0 {
                        guard next >= 0 && next < leafWeights.count else { throw ctx.fail("leaf \(next) is outside the leaves") }
                        leaf = next
                    } else {
                        guard next >= 0 && next < n else { throw ctx.fail("node \(next) is outside the nodes") }
                        k = next
                    }
                }
                let t = leafTargets[leaf], w = leafWeights[leaf]
                switch aggregate {
                case 2: acc[t] = min(acc[t] ?? w, w)
                case 3: acc[t] = max(acc[t] ?? w, w)
                default: acc[t] = (acc[t] ?? 0) + w
                }
            }
            for t in 0..<nTargets {
                var v = acc[t] ?? 0
                if aggregate == 0 && !roots.isEmpty { v /= Double(roots.count) }
                out[r * nTargets + t] = v
            }
        }
        switch try ctx.int("post_transform", 0) {
        case 0: break
        case 2: out = out.map { 1 / (1 + exp(-$0)) }
        case 1:
            for r in 0..<rows {
                let row = out[(r * nTargets)..<((r + 1) * nTargets)]
                let m = row.max() ?? 0
                let e = row.map { exp($0 - m) }
                let s = e.reduce(0, +)
                for (t, v) in e.enumerated() { out[r * nTargets + t] = v / s }
            }
        case let p: throw ctx.unsupported("post_transform \(p) is not supported")
        }
        return [Tensor.fromDoubles(out, dtype: x.dtype, shape: [rows, nTargets])]
    }

    static func arrayFeatureExtractor(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        guard let idx = try ctx.intList(1) else { throw ctx.fail("the indices are missing") }
        guard x.rank >= 1 else { throw ctx.fail("X must have rank 1 or more") }
        let last = x.shape[x.rank - 1]
        guard idx.allSatisfy({ $0 >= 0 && $0 < last }) else { throw ctx.fail("an index is outside 0..<\(last)") }
        let outer = x.elementCount / max(last, 1)
        var flat: [Int] = []
        for o in 0..<outer { for i in idx { flat.append(o * last + i) } }
        let shape = x.rank == 1 ? [1, idx.count] : Array(x.shape.dropLast()) + [idx.count]
        return [x.gathered(flat, shape: shape)]
    }

    static func binarizer(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        let threshold = Double(try ctx.float("threshold", 0))
        return [Tensor.fromDoubles(x.doubles().map { $0 > threshold ? 1 : 0 }, dtype: x.dtype, shape: x.shape)]
    }

    // MARK: ai.onnx.preview.training

    /// R, T and the per-tensor groups (X..., G..., and `states` more groups).
    static func optimizerInputs(_ ctx: KernelContext, groups: Int) throws(RuntimeError) -> (r: Double, t: Double, [[Tensor]]) {
        let r = try ctx.input(0), t = try ctx.input(1)
        guard r.elementCount == 1, t.elementCount == 1 else { throw ctx.fail("R and T must be scalars") }
        let rest = ctx.inputCount - 2
        guard rest > 0, rest % groups == 0 else { throw ctx.fail("\(rest) tensor inputs do not split into \(groups) groups") }
        let n = rest / groups
        var out: [[Tensor]] = []
        for g in 0..<groups {
            var list: [Tensor] = []
            for i in 0..<n {
                let v = try ctx.input(2 + g * n + i)
                if g > 0, v.shape != out[0][i].shape { throw ctx.fail("input \(2 + g * n + i) has shape \(v.shape), expected \(out[0][i].shape)") }
                list.append(v)
            }
            out.append(list)
        }
        return (r.doubles()[0], t.doubles()[0], out)
    }

    static func adagrad(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let (r, t, g) = try optimizerInputs(ctx, groups: 3)
        let decay = Double(try ctx.float("decay_factor", 0)), eps = Double(try ctx.float("epsilon", 0))
        let norm = Double(try ctx.float("norm_coefficient", 0))
        let rate = r / (1 + t * decay)
        var xs: [Tensor] = [], hs: [Tensor] = []
        for i in g[0].indices {
            let x = g[0][i].doubles(), grad = g[1][i].doubles(), h = g[2][i].doubles()
            var xn = x, hn = h
            for k in x.indices {
                let gr = norm * x[k] + grad[k]
                hn[k] = h[k] + gr * gr
                xn[k] = x[k] - rate * gr / (hn[k].squareRoot() + eps)
            }
            xs.append(Tensor.fromDoubles(xn, dtype: g[0][i].dtype, shape: g[0][i].shape))
            hs.append(Tensor.fromDoubles(hn, dtype: g[2][i].dtype, shape: g[2][i].shape))
        }
        return xs + hs
    }

    static func momentum(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let (r, t, g) = try optimizerInputs(ctx, groups: 3)
        let alpha = Double(try ctx.float("alpha", 0)), beta = Double(try ctx.float("beta", 0))
        let norm = Double(try ctx.float("norm_coefficient", 0))
        let mode = try ctx.string("mode", "standard")
        guard mode == "standard" || mode == "nesterov" else { throw ctx.fail("unknown mode '\(mode)'") }
        let b = t > 0 ? beta : 1
        var xs: [Tensor] = [], vs: [Tensor] = []
        for i in g[0].indices {
            let x = g[0][i].doubles(), grad = g[1][i].doubles(), v = g[2][i].doubles()
            var xn = x, vn = v
            for k in x.indices {
                let gr = norm * x[k] + grad[k]
                vn[k] = alpha * v[k] + b * gr
                xn[k] = mode == "standard" ? x[k] - r * vn[k] : x[k] - r * (gr + alpha * vn[k])
            }
            xs.append(Tensor.fromDoubles(xn, dtype: g[0][i].dtype, shape: g[0][i].shape))
            vs.append(Tensor.fromDoubles(vn, dtype: g[2][i].dtype, shape: g[2][i].shape))
        }
        return xs + vs
    }

    static func adam(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let (r, t, g) = try optimizerInputs(ctx, groups: 4)
        let alpha = Double(try ctx.float("alpha", 0.9)), beta = Double(try ctx.float("beta", 0.999))
        let eps = Double(try ctx.float("epsilon", 1e-6))
        let norm = Double(try ctx.float("norm_coefficient", 0)), post = Double(try ctx.float("norm_coefficient_post", 0))
        let rate = t > 0 ? r * (1 - pow(beta, t)).squareRoot() / (1 - pow(alpha, t)) : r
        var xs: [Tensor] = [], vs: [Tensor] = [], hs: [Tensor] = []
        for i in g[0].indices {
            let x = g[0][i].doubles(), grad = g[1][i].doubles(), v = g[2][i].doubles(), h = g[3][i].doubles()
            var xn = x, vn = v, hn = h
            for k in x.indices {
                let gr = norm * x[k] + grad[k]
                vn[k] = alpha * v[k] + (1 - alpha) * gr
                hn[k] = beta * h[k] + (1 - beta) * gr * gr
                xn[k] = (1 - post) * (x[k] - rate * vn[k] / (hn[k].squareRoot() + eps))
            }
            xs.append(Tensor.fromDoubles(xn, dtype: g[0][i].dtype, shape: g[0][i].shape))
            vs.append(Tensor.fromDoubles(vn, dtype: g[2][i].dtype, shape: g[2][i].shape))
            hs.append(Tensor.fromDoubles(hn, dtype: g[3][i].dtype, shape: g[3][i].shape))
        }
        return xs + vs + hs
    }
}
