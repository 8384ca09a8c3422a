import DLGraph
import DLTensor

/// IR ops to TFLite builtins (codes and option field ids from schema.fbs; see `TFLiteOps` and the
/// translators' notes for the option tables).
extension TFLiteEmitter {
    static let unaryCodes: [String: Int32] = [
        "Relu": 19, "Sigmoid": 14, "Tanh": 28, "HardSwish": 117, "Exp": 47, "Log": 73, "Sqrt": 75, "Abs": 101,
        "Neg": 59, "Floor": 8, "Ceil": 104, "Sin": 66, "Cos": 108, "Elu": 111,
    ]
    /// Binary ops: code and options union type (0: none). Add/Sub/Mul/Div carry an activation of NONE.
    static let binaryCodes: [String: (Int32, UInt8)] = [
        "Add": (0, 11), "Sub": (41, 28), "Mul": (18, 21), "Div": (42, 29), "Max": (55, 0), "Min": (57, 0), "Pow": (78, 0),
    ]

    /// Every node, in order; unsupported ones are listed all at once before anything is built.
    mutating func emitAll() throws(TFLiteError) {
        var unsupported: [String: Int] = [:]
        for n in graph.nodes where !canWrite(n) { unsupported[n.opType, default: 0] += 1 }
        guard unsupported.isEmpty else {
            throw .write(path: path, reason: "no TFLite form yet for: " + unsupported.sorted { $0.key < $1.key }.map { $0.value > 1 ? "\($0.key) (x\($0.value))" : $0.key }.joined(separator: ", "))
        }
        for v in graph.inputs {
            guard let t = v.type, t.dtype == .float32 || t.dtype.isInteger || t.dtype == .bool else {
                throw .write(path: path, reason: "input '\(v.name)' must be a tensor of a known type")
            }
            _ = try tensor(v.name)
        }
        for n in graph.nodes { try emit(n) }
        for v in graph.outputs where tensorIndex[aliases[v.name] ?? v.name] == nil {
            // An output that is a constant or an input: TFLite needs an operator to produce it.
            _ = try tensor(v.name)
        }
    }

    static let writable: Set<String> = [
        "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm", "MatMul", "Softmax", "Reshape", "Flatten", "Transpose",
        "Concat", "ReduceMean", "Squeeze", "Unsqueeze", "Identity", "Clip", "Pad", "Dropout", "LeakyRelu", "Constant",
        "BatchNormalization", "Cast", "Tile", "Resize", "ConvTranspose",
    ]

    func canWrite(_ n: Node) -> Bool {
        OpSet.isDefaultDomain(n) && (Self.writable.contains(n.opType) || Self.unaryCodes[n.opType] != nil || Self.binaryCodes[n.opType] != nil)
    }

    func int(_ n: Node, _ a: String, _ d: Int) throws(TFLiteError) -> Int {
        do { return try n.int(a, default: d) } catch { throw .graph(path: path, error) }
    }

    func ints(_ n: Node, _ a: String) throws(TFLiteError) -> [Int]? {
        do { return try n.ints(a) } catch { throw .graph(path: path, error) }
    }

    func float(_ n: Node, _ a: String, _ d: Float) throws(TFLiteError) -> Float {
        do { return try n.float(a, default: d) } catch { throw .graph(path: path, error) }
    }

    func string(_ n: Node, _ a: String, _ d: String) throws(TFLiteError) -> String {
        do { return try n.string(a, default: d) } catch { throw .graph(path: path, error) }
    }

    func fail(_ n: Node, _ reason: String) -> TFLiteError {
        .write(path: path, reason: "node \(n.displayName): \(reason)")
    }

    func dims(_ v: String) throws(TFLiteError) -> [Dim] {
        guard let d = typeOf(aliases[v] ?? v)?.dims else { throw .write(path: path, reason: "value '\(v)' has no known shape") }
        return d
    }

    func constantInts(_ n: Node, _ k: Int) throws(TFLiteError) -> [Int] {
        var me = self
        guard let name = n.input(k), let c = try me.constant(name), c.dtype.isInteger else {
            throw fail(n, "input \(k) must be a constant integer tensor")
        }
        return c.doubles().map { Int($0) }
    }

    mutating func out(_ n: Node, _ k: Int = 0) throws(TFLiteError) -> Int { try tensor(n.outputs[k]) }

    mutating func emit(_ n: Node) throws(TFLiteError) {
        if try constant(n.outputs[0]) != nil, !graph.outputs.contains(where: { $0.name == n.outputs[0] }) { return }  // folded weights
        let x = { (me: inout TFLiteEmitter, k: Int) throws(TFLiteError) -> Int in
            guard let name = n.input(k) else { throw me.fail(n, "input \(k) is missing") }
            return try me.tensor(name)
        }
        if let code = Self.unaryCodes[n.opType] {
            if try elementwiseOnSource(n, code, nil) { return }
            op(code, [try x(&self, 0)], [try out(n)])
            return
        }
        if let (code, options) = Self.binaryCodes[n.opType] {
            if try elementwiseOnSource(n, code, options == 0 ? nil : (options, FlatObject([(0, .int8(0))]))) { return }
            op(code, [try x(&self, 0), try x(&self, 1)], [try out(n)], options == 0 ? nil : (options, FlatObject([(0, .int8(0))])))
            return
        }
        switch n.opType {
        case "Identity", "Dropout":
            aliases[n.outputs[0]] = aliases[n.inputs[0]] ?? n.inputs[0]
            if graph.outputs.contains(where: { $0.name == n.outputs[0] }) {
                // A graph output keeps its own name: a RESHAPE to its own shape copies it.
                aliases[n.outputs[0]] = nil
                let d = try dims(n.outputs[0])
                op(22, [try x(&self, 0), try int32s(d.map { $0.value ?? -1 }, base: n.outputs[0] + "/shape")], [try out(n)])
            }
        case "Constant": _ = try tensor(n.outputs[0])
        case "BatchNormalization": try batchNorm(n)
        case "Conv": try conv(n)
        case "MaxPool", "AveragePool": try pool(n)
        case "GlobalAveragePool":
            let r = try dims(n.inputs[0]).count
            op(40, [try x(&self, 0), try int32s(Array(2..<r), base: n.outputs[0] + "/axes")], [try out(n)], (27, FlatObject([(0, .uint8(1))])))
        case "Gemm": try gemm(n)
        case "MatMul":
            op(126, [try x(&self, 0), try x(&self, 1)], [try out(n)], (101, FlatObject([])))
        case "Softmax":
            let r = try dims(n.inputs[0]).count
            let axis = try int(n, "axis", -1)
            guard axis == -1 || axis == r - 1 else { throw fail(n, "softmax over axis \(axis) of rank \(r) (TFLite's is the last axis)") }
            op(25, [try x(&self, 0)], [try out(n)], (9, FlatObject([(0, .float(1))])))
        case "Reshape", "Flatten":
            let d = try dims(n.outputs[0])
            let target = d.map { $0.value ?? -1 }
            guard target.filter({ $0 == -1 }).count <= 1 else { throw fail(n, "output shape \(d) has more than one unknown dim") }
            op(22, [try x(&self, 0), try int32s(target, base: n.outputs[0] + "/shape")], [try out(n)])
        case "Transpose":
            let r = try dims(n.inputs[0]).count
            let perm = try ints(n, "perm") ?? Array((0..<r).reversed())
            let t = try transposed(n.inputs[0], perm)
            aliases[n.outputs[0]] = t
            if graph.outputs.contains(where: { $0.name == n.outputs[0] }) || tensorIndex[t] == nil {
                aliases[n.outputs[0]] = nil
                op(39, [try x(&self, 0), try int32s(perm, base: n.outputs[0] + "/perm")], [try out(n)])
            }
        case "Concat":
            let r = try dims(n.outputs[0]).count
            var axis = try int(n, "axis", 0)
            if axis < 0 { axis += r }
            var ins: [Int] = []
            for k in 0..<n.inputs.count { ins.append(try x(&self, k)) }
            op(2, ins, [try out(n)], (10, FlatObject([(0, .int32(Int32(axis))), (1, .int8(0))])))
        case "ReduceMean":
            let keep = try int(n, "keepdims", 1) != 0
            let r = try dims(n.inputs[0]).count
            let axes = n.input(1) != nil ? try constantInts(n, 1) : Array(0..<r)
            op(40, [try x(&self, 0), try int32s(axes, base: n.outputs[0] + "/axes")], [try out(n)], (27, FlatObject([(0, .uint8(keep ? 1 : 0))])))
        case "Squeeze", "Unsqueeze":
            // Both are a reshape to the inferred output shape.
            let d = try dims(n.outputs[0])
            guard d.filter({ $0.value == nil }).count <= 1 else { throw fail(n, "output shape \(d) has more than one unknown dim") }
            op(22, [try x(&self, 0), try int32s(d.map { $0.value ?? -1 }, base: n.outputs[0] + "/shape")], [try out(n)])
        case "Clip":
            var me = self
            let lo = try n.input(1).flatMap { (v: String) throws(TFLiteError) -> Tensor? in try me.constant(v) }?.doubles().first ?? -.infinity
            let hi = try n.input(2).flatMap { (v: String) throws(TFLiteError) -> Tensor? in try me.constant(v) }?.doubles().first ?? .infinity
            let relu: Int32? = lo == 0 && hi == 6 ? 21 : lo == -1 && hi == 1 ? 20 : lo == 0 && hi == .infinity ? 19 : nil
            if let relu {
                if try elementwiseOnSource(n, relu, nil, inputs: [n.inputs[0]]) { return }
                op(relu, [try x(&self, 0)], [try out(n)])
            } else {
                let m = fresh(n.outputs[0] + "/min")
                let t = try newTensor(m, dtype: .float32, dims: try dims(n.outputs[0]))
                op(57, [try x(&self, 0), try constant(Tensor(shape: [], scalars: [Float(hi)]), base: m + "/max")], [t])
                op(55, [t, try constant(Tensor(shape: [], scalars: [Float(lo)]), base: m + "/lo")], [try out(n)])
            }
        case "Cast":
            // A cast of a constant (float16 weights read from a .tflite) is folded above.
            op(53, [try x(&self, 0)], [try out(n)])
        case "Tile":
            op(69, [try x(&self, 0), try int32s(try constantInts(n, 1), base: n.outputs[0] + "/multiples")], [try out(n)])
        case "Resize": try resize(n)
        case "ConvTranspose": try convTranspose(n)
        case "LeakyRelu":
            op(98, [try x(&self, 0)], [try out(n)], (75, FlatObject([(0, .float(try float(n, "alpha", 0.01)))])))
        case "Pad":
            let mode = try string(n, "mode", "constant")
            let pads = try constantInts(n, 1)
            guard mode == "constant", n.input(2) == nil, n.input(3) == nil, pads.count % 2 == 0 else { throw fail(n, "only zero constant padding of every axis is written") }
            let r = pads.count / 2
            let p = (0..<r).flatMap { [pads[$0], pads[r + $0]] }
            op(34, [try x(&self, 0), try constant(Tensor(shape: [r, 2], scalars: p.map { Int32($0) }), base: n.outputs[0] + "/paddings")], [try out(n)])
        default:
            throw fail(n, "no TFLite form yet")
        }
    }

    /// TFLite padding for a window op: SAME when the pads are TensorFlow's SAME, VALID when zero.
    func padding(_ n: Node, input: [Int], kernel: [Int], isPooling: Bool) throws(TFLiteError) -> (Int8, [Int], [Int], WindowGeometry)? {
        let g: WindowGeometry, same: WindowGeometry
        do {
            var window = try WindowAttributes(node: n)
            g = try window.geometry(input: input, kernel: kernel, isPooling: isPooling)
            window.autoPad = .sameUpper
            same = try window.geometry(input: input, kernel: kernel, isPooling: isPooling)
        } catch { throw .graph(path: path, error) }
        if g.padsBegin.allSatisfy({ $0 == 0 }) && g.padsEnd.allSatisfy({ $0 == 0 }) { return (1, g.padsBegin, g.padsEnd, g) }
        return g == same ? (0, g.padsBegin, g.padsEnd, g) : nil
    }

    mutating func conv(_ n: Node) throws(TFLiteError) {
        guard let wName = n.input(1), let w = try constant(wName), w.dtype == .float32, w.rank == 4 else {
            throw fail(n, "needs a constant float32 4-D filter (2-D convolution)")
        }
        let xd = try dims(n.inputs[0])
        guard xd.count == 4, let c = xd[1].value, let h = xd[2].value, let wd = xd[3].value else {
            throw fail(n, "needs an NCHW input with known channels and spatial size")
        }
        let group = try int(n, "group", 1)
        let kernel = [w.shape[2], w.shape[3]]
        var x = try transposed(n.inputs[0], [0, 2, 3, 1])
        var pad: Int8 = 1
        let g: WindowGeometry
        if let p = try padding(n, input: [h, wd], kernel: kernel, isPooling: false) {
            pad = p.0
            g = p.3
        } else {
            // Other pads: an explicit zero PAD (NHWC), then a VALID convolution.
            do { g = try WindowAttributes(node: n).geometry(input: [h, wd], kernel: kernel, isPooling: false) } catch { throw .graph(path: path, error) }
            let padded = fresh(x + "/padded")
            let pt = try newTensor(padded, dtype: .float32, dims: [xd[0], .fixed(h + g.padsBegin[0] + g.padsEnd[0]), .fixed(wd + g.padsBegin[1] + g.padsEnd[1]), .fixed(c)])
            let p = [0, 0, g.padsBegin[0], g.padsEnd[0], g.padsBegin[1], g.padsEnd[1], 0, 0].map { Int32($0) }
            op(34, [try tensor(x), try constant(Tensor(shape: [4, 2], scalars: p), base: padded + "/paddings")], [pt])
            x = padded
        }
        let yd = try dims(n.outputs[0])
        let y = fresh(n.outputs[0] + "/nhwc")
        let yt = try newTensor(y, dtype: .float32, dims: [yd[0], yd[2], yd[3], yd[1]])
        let o = w.shape[0]
        // TFLite's depthwise kernel requires a bias: zeros when the graph has none.
        let bias: Int
        if let b = n.input(2) { bias = try tensor(b) } else { bias = try constant(Tensor(zeros: .float32, shape: [o]), base: n.outputs[0] + "/zero_bias") }
        if group == 1 {
            let filter = try weight(try permute(w, [0, 2, 3, 1], name: wName), base: wName + "/ohwi", axis: 0)
            op(3, [try tensor(x), filter, bias], [yt], (1, FlatObject([(0, .int8(pad)), (1, .int32(Int32(g.strides[1]))), (2, .int32(Int32(g.strides[0]))),
                                                                    (3, .int8(0)), (4, .int32(Int32(g.dilations[1]))), (5, .int32(Int32(g.dilations[0])))])))
        } else if group == c, w.shape[1] == 1, o % c == 0 {
            // [C*M, 1, KH, KW] -> [1, KH, KW, C*M]
            let filter = try weight(try permute(w, [1, 2, 3, 0], name: wName), base: wName + "/1hwc", axis: 3)
            op(4, [try tensor(x), filter, bias], [yt], (2, FlatObject([(0, .int8(pad)), (1, .int32(Int32(g.strides[1]))), (2, .int32(Int32(g.strides[0]))),
                                                                    (3, .int32(Int32(o / c))), (4, .int8(0)), (5, .int32(Int32(g.dilations[1]))), (6, .int32(Int32(g.dilations[0])))])))
        } else {
            throw fail(n, "grouped convolution with \(group) groups is not written yet")
        }
        pending[n.outputs[0]] = (y, [0, 3, 1, 2])
    }

    /// ConvTranspose as TRANSPOSE_CONV (output shape, OHWI filter, NHWC input, bias). TensorFlow's
    /// SAME (output in·s, pads max(0, k - s) / 2 at the start) is written as it is; any other
    /// output is the VALID one (every position an input reaches, at least in·s) cut to the
    /// graph's window by a SLICE: TFLite's optimized and XNNPACK kernels give other numbers than its
    /// reference kernel, or refuse, for outputs of other sizes.
    mutating func convTranspose(_ n: Node) throws(TFLiteError) {
        guard let wName = n.input(1), let w = try constant(wName), w.dtype == .float32, w.rank == 4 else {
            throw fail(n, "needs a constant float32 4-D filter (2-D transposed convolution)")
        }
        let xd = try dims(n.inputs[0])
        guard xd.count == 4, let batch = xd[0].value, let c = xd[1].value, let h = xd[2].value, let wd = xd[3].value, c == w.shape[0] else {
            throw fail(n, "needs an NCHW input with known batch, channels and spatial size")
        }
        guard try int(n, "group", 1) == 1 else { throw fail(n, "grouped transposed convolution has no TFLite form") }
        let kernel = [w.shape[2], w.shape[3]], input = [h, wd]
        let g: WindowGeometry
        do { g = try WindowAttributes(node: n).transposedGeometry(input: input, kernel: kernel) } catch { throw .graph(path: path, error) }
        guard g.dilations.allSatisfy({ $0 == 1 }) else { throw fail(n, "dilated transposed convolution has no TFLite form") }
        let s = g.strides
        let tfSame = (0..<2).allSatisfy { g.output[$0] == input[$0] * s[$0] && g.padsBegin[$0] == max(0, kernel[$0] - s[$0]) / 2 }
        let natural = tfSame ? g.output : (0..<2).map { max((input[$0] - 1) * s[$0] + kernel[$0], input[$0] * s[$0]) }
        let start = tfSame ? [0, 0] : g.padsBegin
        guard (0..<2).allSatisfy({ start[$0] >= 0 && start[$0] + g.output[$0] <= natural[$0] }) else {
            throw fail(n, "an output of \(g.output) from \(g.padsBegin) lies outside the \(natural) an input reaches")
        }
        let o = w.shape[1]
        let filter = try weight(try permute(w, [1, 2, 3, 0], name: wName), base: wName + "/ohwi", axis: 0)
        let shape = try int32s([batch, natural[0], natural[1], o], base: n.outputs[0] + "/output_shape")
        let x = try transposed(n.inputs[0], [0, 2, 3, 1])
        let yd = try dims(n.outputs[0])
        var y = fresh(n.outputs[0] + "/nhwc")
        var yt = try newTensor(y, dtype: .float32, dims: [yd[0], .fixed(natural[0]), .fixed(natural[1]), yd[1]])
        var inputs = [shape, filter, try tensor(x)]
        if let b = n.input(2) { inputs.append(try tensor(b)) }
        op(67, inputs, [yt], (49, FlatObject([(0, .int8(tfSame ? 0 : 1)), (1, .int32(Int32(s[1]))), (2, .int32(Int32(s[0]))), (3, .int8(0))])))
        if natural != g.output {
            let cut = fresh(n.outputs[0] + "/window")
            let ct = try newTensor(cut, dtype: .float32, dims: [yd[0], yd[2], yd[3], yd[1]])
            op(65, [yt, try int32s([0, start[0], start[1], 0], base: cut + "/begin"), try int32s([batch, g.output[0], g.output[1], o], base: cut + "/size")], [ct])
            (y, yt) = (cut, ct)
        }
        pending[n.outputs[0]] = (y, [0, 3, 1, 2])
    }

    /// Resize as RESIZE_BILINEAR or RESIZE_NEAREST_NEIGHBOR (NHWC, a [height, width] size) for the
    /// modes TFLite's two flags give (the inverse of the reader's mapping). Only two axes may
    /// change size: 1 and 2 run as they are, 2 and 3 (NCHW) between transposes; an axis that keeps
    /// its size is the identity in every one of these modes.
    mutating func resize(_ n: Node) throws(TFLiteError) {
        let mode = try string(n, "mode", "nearest"), coords = try string(n, "coordinate_transformation_mode", "half_pixel")
        let nearest = try string(n, "nearest_mode", "round_prefer_floor")
        let flags: (half: Bool, align: Bool)?
        switch (mode, coords, mode == "nearest" ? nearest : "") {
        case ("linear", "half_pixel", _): flags = (true, false)
        case ("linear", "align_corners", _): flags = (false, true)
        case ("linear", "asymmetric", _): flags = (false, false)
        case ("nearest", "asymmetric", "floor"): flags = (false, false)
        case ("nearest", "tf_half_pixel_for_nn", "floor"): flags = (true, false)
        case ("nearest", "align_corners", "round_prefer_ceil"): flags = (false, true)
        default: flags = nil
        }
        guard let flags, try int(n, "antialias", 0) == 0, try string(n, "keep_aspect_ratio_policy", "stretch") == "stretch" else {
            throw fail(n, "mode \(mode) with \(coords)\(mode == "nearest" ? " and \(nearest)" : "") has no TFLite resize form")
        }
        let xd = try dims(n.inputs[0]).map(\.value), yd = try dims(n.outputs[0]).map(\.value)
        guard xd.count == 4, yd.count == 4, !yd.contains(nil) else { throw fail(n, "needs a 4-D input and a known output size") }
        let changed = Set((0..<4).filter { xd[$0] != yd[$0] })
        let code: Int32 = mode == "linear" ? 23 : 97
        let options = mode == "linear"
            ? (UInt8(15), FlatObject([(2, .uint8(flags.align ? 1 : 0)), (3, .uint8(flags.half ? 1 : 0))]))
            : (UInt8(74), FlatObject([(0, .uint8(flags.align ? 1 : 0)), (1, .uint8(flags.half ? 1 : 0))]))
        if changed.isSubset(of: [1, 2]) {
            let size = try int32s([yd[1] ?? 1, yd[2] ?? 1], base: n.outputs[0] + "/size")
            op(code, [try tensor(n.inputs[0]), size], [try out(n)], options)
        } else if changed.isSubset(of: [2, 3]) {
            let x = try transposed(n.inputs[0], [0, 2, 3, 1])
            let size = try int32s([yd[2] ?? 1, yd[3] ?? 1], base: n.outputs[0] + "/size")
            let out = try dims(n.outputs[0])
            let y = fresh(n.outputs[0] + "/nhwc")
            op(code, [try tensor(x), size], [try newTensor(y, dtype: .float32, dims: [out[0], out[2], out[3], out[1]])], options)
            pending[n.outputs[0]] = (y, [0, 3, 1, 2])
        } else {
            throw fail(n, "resizes axes \(changed.sorted()); TFLite resizes two spatial axes")
        }
    }

    mutating func pool(_ n: Node) throws(TFLiteError) {
        let xd = try dims(n.inputs[0])
        guard xd.count == 4, let h = xd[2].value, let wd = xd[3].value, let k = try ints(n, "kernel_shape"), k.count == 2 else {
            throw fail(n, "needs an NCHW input with known spatial size and a 2-D kernel")
        }
        if n.opType == "AveragePool", try int(n, "count_include_pad", 0) != 0 { throw fail(n, "count_include_pad=1 has no TFLite form") }
        guard try int(n, "ceil_mode", 0) == 0 else { throw fail(n, "ceil_mode has no TFLite form") }
        guard let (pad, _, _, g) = try padding(n, input: [h, wd], kernel: k, isPooling: true), g.dilations.allSatisfy({ $0 == 1 }) else {
            throw fail(n, "pads that are neither SAME nor VALID have no TFLite pooling form")
        }
        let x = try transposed(n.inputs[0], [0, 2, 3, 1])
        let yd = try dims(n.outputs[0])
        let y = fresh(n.outputs[0] + "/nhwc")
        let yt = try newTensor(y, dtype: .float32, dims: [yd[0], yd[2], yd[3], yd[1]])
        op(n.opType == "MaxPool" ? 17 : 1, [try tensor(x)], [yt],
           (5, FlatObject([(0, .int8(pad)), (1, .int32(Int32(g.strides[1]))), (2, .int32(Int32(g.strides[0]))),
                           (3, .int32(Int32(k[1]))), (4, .int32(Int32(k[0]))), (5, .int8(0))])))
        pending[n.outputs[0]] = (y, [0, 3, 1, 2])
    }

    /// An elementwise op whose inputs are pending transposes by one permutation (or one-element
    /// constants) runs on the sources, and its result is pending too: activations and residual
    /// additions between convolutions stay channels-last. - Returns: false when it does not apply.
    mutating func elementwiseOnSource(_ n: Node, _ code: Int32, _ options: (UInt8, FlatObject)?, inputs: [String]? = nil) throws(TFLiteError) -> Bool {
        var perm: [Int]?
        var first: String?
        var ins: [Int] = []
        for name in inputs ?? n.inputs {
            let v = aliases[name] ?? name
            if let (src, p) = pending[v], perm == nil || perm == p {
                perm = p
                first = first ?? src
                ins.append(try tensor(src))
            } else if let c = try constant(v), c.elementCount == 1 {
                ins.append(try tensor(v))
            } else {
                return false
            }
        }
        guard let perm, let src = first, let t = typeOf(src), let dims = t.dims, let outType = typeOf(n.outputs[0]), outType.dims?.count == dims.count else { return false }
        let y = fresh(n.outputs[0] + "/nhwc")
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        let yt = try newTensor(y, dtype: outType.dtype, dims: inverse.map { (outType.dims ?? [])[$0] })
        op(code, ins, [yt], options)
        pending[n.outputs[0]] = (y, perm)
        return true
    }

    /// Inference BatchNormalization (constant scale, bias, mean, variance) as MUL and ADD by
    /// per-channel constants a = scale / sqrt(var + eps), b = bias - mean * a (TFLite has no
    /// batch-norm op). On a channels-last source the constants are [C], otherwise [C, 1, ...].
    mutating func batchNorm(_ n: Node) throws(TFLiteError) {
        var ps: [[Double]] = []
        for k in 1...4 {
            guard let name = n.input(k), let c = try constant(name) else { throw fail(n, "input \(k) must be a constant") }
            ps.append(c.doubles())
        }
        let eps = Double(try float(n, "epsilon", 1e-5))
        let ch = ps[0].count
        guard ps.allSatisfy({ $0.count == ch }), n.outputs.count == 1 || n.outputs[1...].allSatisfy(\.isEmpty) else {
            throw fail(n, "needs one value per channel in scale, bias, mean and variance (inference form)")
        }
        let a = (0..<ch).map { ps[0][$0] / (ps[3][$0] + eps).squareRoot() }
        let b = (0..<ch).map { ps[1][$0] - ps[2][$0] * a[$0] }
        let r = try dims(n.inputs[0]).count
        let v = aliases[n.inputs[0]] ?? n.inputs[0]
        let onSource = pending[v].map { $0.1 == [0, r - 1] + Array(1..<(r - 1)) } ?? false
        let shape = onSource ? [ch] : [ch] + [Int](repeating: 1, count: max(r - 2, 0))
        let x = onSource ? try tensor(pending[v]?.0 ?? v) : try tensor(v)
        let aT = try constant(Tensor(shape: shape, scalars: a.map { Float($0) }), base: n.outputs[0] + "/scale")
        let bT = try constant(Tensor(shape: shape, scalars: b.map { Float($0) }), base: n.outputs[0] + "/shift")
        guard let t = typeOf(n.outputs[0]), let od = t.dims else { throw fail(n, "output shape unknown") }
        let srcDims = onSource ? [od[0]] + Array(od[2...]) + [od[1]] : od
        let m = fresh(n.outputs[0] + "/scaled")
        let mt = try newTensor(m, dtype: .float32, dims: srcDims)
        op(18, [x, aT], [mt], (21, FlatObject([(0, .int8(0))])))
        if onSource, let (_, perm) = pending[v] {
            let y = fresh(n.outputs[0] + "/nhwc")
            op(0, [mt, bT], [try newTensor(y, dtype: .float32, dims: srcDims)], (11, FlatObject([(0, .int8(0))])))
            pending[n.outputs[0]] = (y, perm)
        } else {
            op(0, [mt, bT], [try out(n)], (11, FlatObject([(0, .int8(0))])))
        }
    }

    /// Gemm with a constant B becomes FULLY_CONNECTED (weights [out, in]); alpha/beta must be 1.
    mutating func gemm(_ n: Node) throws(TFLiteError) {
        guard try float(n, "alpha", 1) == 1, try float(n, "beta", 1) == 1, try int(n, "transA", 0) == 0 else {
            throw fail(n, "alpha, beta or transA other than the defaults")
        }
        guard let bName = n.input(1), let b = try constant(bName), b.rank == 2, b.dtype == .float32 else { throw fail(n, "needs a constant float32 2-D B") }
        let weights = try weight(try int(n, "transB", 0) != 0 ? b : try permute(b, [1, 0], name: bName), base: bName + "/weights", axis: nil)
        var bias = -1
        if let c = n.input(2) {
            guard let ct = try constant(c), ct.elementCount == b.shape[try int(n, "transB", 0) != 0 ? 0 : 1] else {
                throw fail(n, "C must be a constant of one value per output")
            }
            let flat: Tensor
            do { flat = try ct.reshaped(to: [ct.elementCount]) } catch { throw fail(n, "\(error)") }
            bias = try constant(flat, base: c + "/bias")
        }
        op(9, [try tensor(n.inputs[0]), weights, bias], [try out(n)], (8, FlatObject([(0, .int8(0))])))
    }
}
