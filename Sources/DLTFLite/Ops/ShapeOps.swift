import DLGraph
import DLTensor

/// Ops that move, select or reduce elements. Shape-like inputs (new shapes, axes, paddings,
/// permutations, slice bounds) must be constants, as the converter writes them; they become int64
/// initializers or attributes of the IR op. Options (schema.fbs field ids): ReshapeOptions
/// 0 new_shape; ConcatenationOptions 0 axis, 1 activation; ReducerOptions 0 keep_dims;
/// SqueezeOptions 0 squeeze_dims; StridedSliceOptions 0 begin_mask, 1 end_mask, 2 ellipsis_mask,
/// 3 new_axis_mask, 4 shrink_axis_mask, 5 offset; GatherOptions 0 axis, 1 batch_dims;
/// SplitOptions/SplitVOptions 0 num_splits; PackOptions 0 values_count, 1 axis; UnpackOptions
/// 0 num, 1 axis; DepthToSpace/SpaceToDepthOptions 0 block_size; MirrorPadOptions 0 mode
/// (0 REFLECT, 1 SYMMETRIC); ResizeBilinearOptions 2 align_corners, 3 half_pixel_centers;
/// ResizeNearestNeighborOptions 0 align_corners, 1 half_pixel_centers; ArgMaxOptions 0 output_type.
extension TFLiteGraphBuilder {
    static var shapeOps: [(String, TFLiteImporter.Translator)] {
        var ops: [(String, TFLiteImporter.Translator)] = [
            ("RESHAPE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.reshape(op) }),
            ("CONCATENATION", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let (axis, act) = try b.options(op) { t throws(FlatBufferError) in (Int(try t.scalar(0, Int32(0))), try t.scalar(1, Int8(0))) } ?? (0, 0)
                var xs: [String] = []
                for k in 0..<op.op.inputs.count { xs.append(try b.input(op, k)) }
                let y = b.emit("Concat", xs, [Attribute(name: "axis", value: .int(axis))], base: b.base(op) + "/concat")
                try b.bind(op, 0, b.activation(op, y, code: act))
            }),
            ("PAD", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.pad(op, mode: "constant") }),
            ("PADV2", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.pad(op, mode: "constant") }),
            ("MIRROR_PAD", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let mode = try b.options(op) { t throws(FlatBufferError) in try t.scalar(0, Int8(0)) } ?? 0
                guard mode == 0 else { throw b.fail(op, "SYMMETRIC mirror padding has no IR form yet (REFLECT has)") }
                try b.pad(op, mode: "reflect")
            }),
            ("TRANSPOSE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let perm = try b.constantInts(op, 1)
                try b.bind(op, 0, b.transpose(try b.input(op, 0), perm, base: b.base(op)))
            }),
            ("SQUEEZE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let dims = try b.options(op) { t throws(FlatBufferError) in try t.ints(0, as: Int32.self, "squeeze_dims") } ?? nil
                let x = try b.input(op, 0), n = b.base(op)
                var ins = [x]
                if let dims, !dims.isEmpty { ins.append(b.int64s(dims.map(Int.init), base: n + "/axes")) }
                try b.bind(op, 0, b.emit("Squeeze", ins, base: n))
            }),
            ("EXPAND_DIMS", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let axis = try b.constantInts(op, 1), n = b.base(op)
                try b.bind(op, 0, b.emit("Unsqueeze", [try b.input(op, 0), b.int64s(axis, base: n + "/axes")], base: n))
            }),
            ("STRIDED_SLICE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.stridedSlice(op) }),
            ("SLICE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let begin = try b.constantInts(op, 1), size = try b.constantInts(op, 2), n = b.base(op)
                guard begin.count == size.count else { throw b.fail(op, "begin \(begin) and size \(size) differ in length") }
                let end = zip(begin, size).map { $1 < 0 ? Int(Int64.max) : $0 + $1 }
                try b.bind(op, 0, b.emit("Slice", [try b.input(op, 0), b.int64s(begin, base: n + "/starts"), b.int64s(end, base: n + "/ends")], base: n))
            }),
            ("GATHER", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let (axis, batchDims) = try b.options(op) { t throws(FlatBufferError) in (Int(try t.scalar(0, Int32(0))), Int(try t.scalar(1, Int32(0)))) } ?? (0, 0)
                guard batchDims == 0 else { throw b.fail(op, "batch_dims \(batchDims) is not supported") }
                try b.bind(op, 0, b.emit("Gather", [try b.input(op, 0), try b.raw(op, 1)], [Attribute(name: "axis", value: .int(axis))], base: b.base(op)))
            }),
            ("SHAPE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // ShapeOptions 0 out_type; the output tensor's type says the same.
                let n = b.base(op)
                var y = b.emit("Shape", [try b.raw(op, 0)], base: n + "/shape")
                let to = try b.type(of: try b.output(op, 0)).dtype
                if to != .int64 { y = b.emit("Cast", [y], [Attribute(name: "to", value: .int(Int(to.onnxCode)))], base: n) }
                try b.bind(op, 0, y)
            }),
            ("CAST", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let to = try b.type(of: try b.output(op, 0)).dtype
                try b.bind(op, 0, b.emit("Cast", [try b.raw(op, 0)], [Attribute(name: "to", value: .int(Int(to.onnxCode)))], base: b.base(op)))
            }),
            ("ARG_MAX", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.argExtreme(op, "ArgMax") }),
            ("ARG_MIN", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.argExtreme(op, "ArgMin") }),
            ("SPLIT", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // Inputs: 0 axis, 1 x.
                let axis = try b.constantInts(op, 0)
                let xShape = b.shape(try b.tensor(op, 1))
                let k = op.op.outputs.count
                guard axis.count == 1, let a = Axes.normalise(axis[0], rank: xShape.count), k > 0, xShape[a] % k == 0 else {
                    throw b.fail(op, "cannot split \(xShape) along \(axis) into \(k) equal parts")
                }
                try b.split(op, try b.input(op, 1), axis: a, sizes: [Int](repeating: xShape[a] / k, count: k))
            }),
            ("SPLIT_V", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // Inputs: 0 x, 1 size_splits, 2 axis.
                let axis = try b.constantInts(op, 2), xShape = b.shape(try b.tensor(op, 0))
                var sizes = try b.constantInts(op, 1)
                guard axis.count == 1, let a = Axes.normalise(axis[0], rank: xShape.count), sizes.count == op.op.outputs.count else {
                    throw b.fail(op, "cannot split \(xShape) along \(axis) into \(sizes)")
                }
                if let u = sizes.firstIndex(of: -1) { sizes[u] = xShape[a] - sizes.filter { $0 >= 0 }.reduce(0, +) }
                try b.split(op, try b.input(op, 0), axis: a, sizes: sizes)
            }),
            ("PACK", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let axis = try b.options(op) { t throws(FlatBufferError) in Int(try t.scalar(1, Int32(0))) } ?? 0
                let n = b.base(op)
                let axes = b.int64s([axis], base: n + "/axes")
                var parts: [String] = []
                for k in 0..<op.op.inputs.count { parts.append(b.emit("Unsqueeze", [try b.input(op, k), axes], base: n + "/part")) }
                try b.bind(op, 0, b.emit("Concat", parts, [Attribute(name: "axis", value: .int(axis))], base: n))
            }),
            ("UNPACK", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let axis = try b.options(op) { t throws(FlatBufferError) in Int(try t.scalar(1, Int32(0))) } ?? 0
                let xShape = b.shape(try b.tensor(op, 0))
                guard let a = Axes.normalise(axis, rank: xShape.count), xShape[a] == op.op.outputs.count else {
                    throw b.fail(op, "cannot unpack \(xShape) along \(axis) into \(op.op.outputs.count)")
                }
                try b.split(op, try b.input(op, 0), axis: a, sizes: [Int](repeating: 1, count: xShape[a]), squeeze: true)
            }),
            ("DEPTH_TO_SPACE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.blockRearrange(op, "DepthToSpace") }),
            ("SPACE_TO_DEPTH", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.blockRearrange(op, "SpaceToDepth") }),
            ("RESIZE_BILINEAR", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let (align, half) = try b.options(op) { t throws(FlatBufferError) in (try t.bool(2), try t.bool(3)) } ?? (false, false)
                try b.resize(op, mode: "linear", coordinates: align ? "align_corners" : half ? "half_pixel" : "asymmetric", nearest: nil)
            }),
            ("RESIZE_NEAREST_NEIGHBOR", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let (align, half) = try b.options(op) { t throws(FlatBufferError) in (try t.bool(0), try t.bool(1)) } ?? (false, false)
                if align {
                    try b.resize(op, mode: "nearest", coordinates: "align_corners", nearest: "round_prefer_ceil")
                } else if half {
                    try b.resize(op, mode: "nearest", coordinates: "tf_half_pixel_for_nn", nearest: "floor")
                } else {
                    try b.resize(op, mode: "nearest", coordinates: "asymmetric", nearest: "floor")
                }
            }),
            ("TILE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let reps = try b.constantInts(op, 1), n = b.base(op)
                try b.bind(op, 0, b.emit("Tile", [try b.input(op, 0), b.int64s(reps, base: n + "/repeats")], base: n))
            }),
            // REVERSE_V2: input 1 the axes to reverse (Keras' Bidirectional runs its backward
            // LSTM between two of them); each a Slice from the end with step -1.
            ("REVERSE_V2", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let rank = b.shape(try b.tensor(op, 0)).count, n = b.base(op)
                let axes = try b.constantInts(op, 1)
                guard axes.allSatisfy({ $0 >= -rank && $0 < rank }), Set(axes.map { $0 < 0 ? $0 + rank : $0 }).count == axes.count else {
                    throw b.fail(op, "axes \(axes) are not distinct axes of a rank-\(rank) input")
                }
                let k = axes.count
                let inputs = [try b.input(op, 0), b.int64s(Array(repeating: -1, count: k), base: n + "/starts"),
                              b.int64s(Array(repeating: Int(Int64.min), count: k), base: n + "/ends"), b.int64s(axes, base: n + "/axes"),
                              b.int64s(Array(repeating: -1, count: k), base: n + "/steps")]
                try b.bind(op, 0, b.emit("Slice", inputs, base: n))
            }),
            ("BROADCAST_TO", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let s = try b.constantInts(op, 1), n = b.base(op)
                try b.bind(op, 0, b.emit("Expand", [try b.input(op, 0), b.int64s(s, base: n + "/shape")], base: n))
            }),
            // QUANTIZE: float -> integer, or integer -> integer with new parameters; DEQUANTIZE:
            // integer or float16 -> float32. `input` dequantizes and `bind` quantizes as the
            // tensors' parameters say, so both are the identity on real values.
            // DENSIFY: its input is a sparse constant, which `input` reads densified.
            ("DENSIFY", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.bind(op, 0, try b.input(op, 0)) }),
            ("QUANTIZE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                // 8-bit to 8-bit: TFLite requantizes (x - x_zero_point) by x_scale / y_scale in
                // fixed point; from float it is QuantizeLinear (`bind`).
                if let (x, xs) = try b.centred8(op, 0), let ys = try b.outputScale8(op) {
                    try b.bind(op, 0, try b.requantized(op, x, multipliers: [Double(xs) / Double(ys)], base: b.base(op)))
                    return
                }
                try b.bind(op, 0, try b.input(op, 0))
            }),
            ("DEQUANTIZE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let i = try b.tensor(op, 0)
                var x = try b.input(op, 0)
                if b.sub.tensors[i].type == 1 {
                    x = b.emit("Cast", [x], [Attribute(name: "to", value: .int(Int(DType.float32.onnxCode)))], base: b.base(op))
                }
                try b.bind(op, 0, x)
            }),
        ]
        for (name, ir) in [("MEAN", "ReduceMean"), ("SUM", "ReduceSum"), ("REDUCE_MAX", "ReduceMax"),
                           ("REDUCE_MIN", "ReduceMin"), ("REDUCE_PROD", "ReduceProd")] {
            ops.append((name, { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in
                let keep = try b.options(op) { t throws(FlatBufferError) in try t.bool(0) } ?? false
                let axes = try b.constantInts(op, 1), n = b.base(op)
                if name == "MEAN", let y = try b.integerMean(op, axes: axes, keepDims: keep) {
                    try b.bind(op, 0, y)
                    return
                }
                try b.bind(op, 0, b.emit(ir, [try b.input(op, 0), b.int64s(axes, base: n + "/axes")],
                                         [Attribute(name: "keepdims", value: .int(keep ? 1 : 0))], base: n))
            }))
        }
        return ops
    }

    mutating func reshape(_ op: TFLiteOp) throws(TFLiteError) {
        let n = base(op)
        if hasInput(op, 1), try constant(try tensor(op, 1)) == nil, values[try tensor(op, 1)] != nil {
            // A shape computed at run time (SHAPE, slices of it, PACK): cast to int64 and read as
            // it is; TFLite's 0 is a size of zero, not "copy the input's", hence allowzero.
            let s = emit("Cast", [try raw(op, 1)], [Attribute(name: "to", value: .int(Int(DType.int64.onnxCode)))], base: n + "/shape")
            try bind(op, 0, emit("Reshape", [try input(op, 0), s], [Attribute(name: "allowzero", value: .int(1))], base: n))
            return
        }
        var target: [Int]
        if hasInput(op, 1), let c = try constant(try tensor(op, 1)), c.rank <= 1 {
            target = try constantInts(op, 1)
        } else if let s = try options(op, { t throws(FlatBufferError) in try t.ints(0, as: Int32.self, "new_shape") }) ?? nil {
            target = s.map(Int.init)
        } else {
            // The converter's own answer: the output tensor's shape (its signature marks run-time dims).
            target = shape(try output(op, 0))
        }
        // A run-time batch: the output's first dim is -1 in the signature and the target is fixed.
        if let sig = sub.tensors[try output(op, 0)].shapeSignature, sig.count == target.count, sig.first == -1, !target.contains(-1) {
            target[0] = -1
        }
        try bind(op, 0, emit("Reshape", [try input(op, 0), int64s(target, base: n + "/shape")], base: n))
    }

    /// Inputs: 0 x, 1 paddings [rank, 2], 2 constant value (PADV2).
    mutating func pad(_ op: TFLiteOp, mode: String) throws(TFLiteError) {
        let p = try constantInts(op, 1), n = base(op)
        guard p.count % 2 == 0 else { throw fail(op, "paddings \(p) are not [rank, 2]") }
        let r = p.count / 2
        let pads = (0..<r).map { p[2 * $0] } + (0..<r).map { p[2 * $0 + 1] }
        var ins = [try input(op, 0), int64s(pads, base: n + "/pads")]
        if op.name == "PADV2", hasInput(op, 2) { ins.append(try input(op, 2)) }
        try bind(op, 0, emit("Pad", ins, [Attribute(name: "mode", value: .string(mode))], base: n))
    }

    /// TensorFlow's strided slice as Slice over every input axis, Squeeze for the shrunk axes and
    /// Unsqueeze for the new ones.
    ///
    /// The spec (begin, end, strides: one entry each) is sparse: an entry in `ellipsis_mask` stands
    /// for as many full input axes as the other entries leave (at most one ellipsis; none means one
    /// at the end), an entry in `new_axis_mask` adds an output axis of size 1 and reads no input
    /// axis, an entry in `shrink_axis_mask` takes the one element at `begin` and drops the axis.
    /// `begin_mask`/`end_mask` bits make that entry's bound the whole axis; `offset` makes end
    /// relative to begin.
    mutating func stridedSlice(_ op: TFLiteOp) throws(TFLiteError) {
        let begin = try constantInts(op, 1), end = try constantInts(op, 2)
        let strides = hasInput(op, 3) ? try constantInts(op, 3) : [Int](repeating: 1, count: begin.count)
        let (bm, em, ellipsis, newAxis, shrink, offset) = try options(op) { t throws(FlatBufferError) in
            (Int(try t.scalar(0, Int32(0))), Int(try t.scalar(1, Int32(0))), Int(try t.scalar(2, Int32(0))),
             Int(try t.scalar(3, Int32(0))), Int(try t.scalar(4, Int32(0))), try t.bool(5))
        } ?? (0, 0, 0, 0, 0, false)
        let k = begin.count
        guard end.count == k, strides.count == k, k <= 32, !strides.contains(0) else {
            throw fail(op, "begin \(begin), end \(end) and strides \(strides) do not fit")
        }
        let bit = { (mask: Int, i: Int) in mask & (1 << i) != 0 }
        let ellipses = (0..<k).filter { bit(ellipsis, $0) }
        guard ellipses.count <= 1 else { throw fail(op, "ellipsis_mask \(ellipsis) marks more than one ellipsis") }
        let rank = shape(try tensor(op, 0)).count
        // Input axes the non-ellipsis, non-new-axis entries read; the ellipsis covers the rest.
        let reading = (0..<k).filter { !bit(ellipsis, $0) && !bit(newAxis, $0) }.count
        guard reading <= rank else { throw fail(op, "\(reading) sliced axes for an input of rank \(rank)") }
        let big = Int(Int64.max), small = Int(Int64.min)
        var starts: [Int] = [], ends: [Int] = [], steps: [Int] = [], squeeze: [Int] = [], newAxes: [Int] = []
        var outRank = 0  // output axes so far (kept input axes and new axes)
        func full(_ count: Int) {
            for _ in 0..<count { starts.append(0); ends.append(big); steps.append(1); outRank += 1 }
        }
        for i in 0..<k {
            if bit(ellipsis, i) { full(rank - reading); continue }
            if bit(newAxis, i) { newAxes.append(outRank); outRank += 1; continue }
            let axis = starts.count
            if bit(shrink, i) {
                let b0 = begin[i]
                starts.append(b0); ends.append(b0 == -1 ? big : b0 + 1); steps.append(1)
                squeeze.append(axis)
                continue
            }
            let st = strides[i]
            var b0 = begin[i], e0 = offset ? begin[i] + end[i] : end[i]
            if bit(bm, i) { b0 = st > 0 ? 0 : big }
            if bit(em, i) { e0 = st > 0 ? big : small }
            starts.append(b0); ends.append(e0); steps.append(st)
            outRank += 1
        }
        if ellipses.isEmpty { full(rank - starts.count) }
        let n = base(op)
        var y = try input(op, 0)
        if !starts.isEmpty {
            y = emit("Slice", [y, int64s(starts, base: n + "/starts"), int64s(ends, base: n + "/ends"),
                               int64s(Array(0..<starts.count), base: n + "/axes"), int64s(steps, base: n + "/steps")], base: n + "/slice")
        }
        if !squeeze.isEmpty { y = emit("Squeeze", [y, int64s(squeeze, base: n + "/squeeze_axes")], base: n + "/squeezed") }
        if !newAxes.isEmpty { y = emit("Unsqueeze", [y, int64s(newAxes, base: n + "/new_axes")], base: n + "/unsqueezed") }
        try bind(op, 0, y)
    }

    mutating func argExtreme(_ op: TFLiteOp, _ ir: String) throws(TFLiteError) {
        let axis = try constantInts(op, 1), n = base(op)
        guard axis.count == 1 else { throw fail(op, "axis must be one value, got \(axis)") }
        var y = emit(ir, [try input(op, 0)], [Attribute(name: "axis", value: .int(axis[0])), Attribute(name: "keepdims", value: .int(0))], base: n)
        let out = try type(of: try output(op, 0)).dtype
        if out != .int64 { y = emit("Cast", [y], [Attribute(name: "to", value: .int(Int(out.onnxCode)))], base: n + "/cast") }
        try bind(op, 0, y)
    }

    /// Split `x` along `axis` into parts of `sizes`, bound to the outputs in order (squeezed for UNPACK).
    mutating func split(_ op: TFLiteOp, _ x: String, axis: Int, sizes: [Int], squeeze: Bool = false) throws(TFLiteError) {
        guard sizes.count == op.op.outputs.count, sizes.allSatisfy({ $0 >= 0 }) else { throw fail(op, "split sizes \(sizes) do not fit") }
        let n = base(op)
        var outs: [String] = []
        for _ in sizes { outs.append(uniqueName(n + "/part")) }
        nodes.append(Node(name: uniqueName(n + "/split"), opType: "Split", inputs: [x, int64s(sizes, base: n + "/sizes")], outputs: outs,
                          attributes: [Attribute(name: "axis", value: .int(axis))]))
        let axes = squeeze ? int64s([axis], base: n + "/axes") : ""
        for (k, o) in outs.enumerated() {
            try bind(op, k, squeeze ? emit("Squeeze", [o, axes], base: n + "/squeezed") : o)
        }
    }

    /// DEPTH_TO_SPACE / SPACE_TO_DEPTH on NHWC: TensorFlow's channel order is the IR's DCR mode.
    mutating func blockRearrange(_ op: TFLiteOp, _ ir: String) throws(TFLiteError) {
        let block = try options(op) { t throws(FlatBufferError) in Int(try t.scalar(0, Int32(0))) } ?? 0
        guard block >= 1 else { throw fail(op, "block size \(block) must be at least 1") }
        let n = base(op)
        var attrs = [Attribute(name: "blocksize", value: .int(block))]
        if ir == "DepthToSpace" { attrs.append(Attribute(name: "mode", value: .string("DCR"))) }
        let y = emit(ir, [transpose(try input(op, 0), Self.toNCHW, base: n + "/nchw")], attrs, base: n + "/rearranged")
        try bind(op, 0, transpose(y, Self.toNHWC, base: n))
    }

    /// RESIZE_*: input 1 is the new [height, width]; only axes 1 and 2 of the NHWC input change.
    /// RESIZE_*: the size of H and W, the other axes kept. With a static input shape the IR's
    /// Resize gets all four sizes; only a run-time batch or channel count needs `axes` [1, 2]:
    /// ONNX Runtime 1.31's layout optimizer breaks a Resize with `axes` between transposes
    /// ("Number of elements of input 'sizes' (0) does not match the number of axes"), so an
    /// exported model would not load there.
    mutating func resize(_ op: TFLiteOp, mode: String, coordinates: String, nearest: String?) throws(TFLiteError) {
        let size = try constantInts(op, 1), n = base(op), xi = try tensor(op, 0), xShape = shape(xi)
        guard size.count == 2, xShape.count == 4 else { throw fail(op, "needs a 4-D input and a [height, width] size") }
        var attrs = [Attribute(name: "mode", value: .string(mode)), Attribute(name: "coordinate_transformation_mode", value: .string(coordinates))]
        var sizes = size
        if xShape.allSatisfy({ $0 > 0 }), (sub.tensors[xi].shapeSignature ?? xShape).allSatisfy({ $0 > 0 }) {
            sizes = [xShape[0], size[0], size[1], xShape[3]]
        } else {
            attrs.append(Attribute(name: "axes", value: .ints([1, 2])))
        }
        if let nearest { attrs.append(Attribute(name: "nearest_mode", value: .string(nearest))) }
        try bind(op, 0, emit("Resize", [try input(op, 0), "", "", int64s(sizes, base: n + "/sizes")], attrs, base: n))
    }
}
