import DLGraph
import DLTensor

/// CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV (and MediaPipe's custom Convolution2DTransposeBias),
/// the poolings and FULLY_CONNECTED / BATCH_MATMUL.
///
/// TFLite keeps activations NHWC and filters OHWI (depthwise: 1,H,W,C*M; transpose conv: O,H,W,I).
/// The IR's Conv is NCHW with OIHW filters: the input is transposed in, the result back, the
/// filter through a Transpose the plan folds. Options (schema.fbs field ids): Conv2DOptions
/// 0 padding (0 SAME, 1 VALID), 1 stride_w, 2 stride_h, 3 activation, 4 dilation_w, 5 dilation_h;
/// DepthwiseConv2DOptions 0 padding, 1 stride_w, 2 stride_h, 3 depth_multiplier, 4 activation,
/// 5 dilation_w, 6 dilation_h; Pool2DOptions 0 padding, 1 stride_w, 2 stride_h, 3 filter_width,
/// 4 filter_height, 5 activation; TransposeConvOptions 0 padding, 1 stride_w, 2 stride_h,
/// 3 activation; FullyConnectedOptions 0 activation, 1 weights_format, 2 keep_num_dims,
/// 3 asymmetric_quantize_inputs;
/// BatchMatMulOptions 0 adj_x, 1 adj_y.
extension TFLiteGraphBuilder {
    static let toNCHW = [0, 3, 1, 2], toNHWC = [0, 2, 3, 1]

    static var convolutionOps: [(String, TFLiteImporter.Translator)] {
        [
            ("CONV_2D", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.conv(op, depthwise: false) }),
            ("DEPTHWISE_CONV_2D", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.conv(op, depthwise: true) }),
            ("AVERAGE_POOL_2D", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.pool(op, "AveragePool") }),
            ("MAX_POOL_2D", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.pool(op, "MaxPool") }),
            ("TRANSPOSE_CONV", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.transposeConv(op) }),
            ("CUSTOM 'Convolution2DTransposeBias'", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.transposeConvBias(op) }),
            ("FULLY_CONNECTED", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.fullyConnected(op) }),
            ("BATCH_MATMUL", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.batchMatMul(op) }),
        ]
    }

    /// The IR op's window attributes for a TFLite window of `kernel` and `strides` (H, W) and
    /// TFLite's padding enum (SAME: the extra pixel at the end).
    func window(_ op: TFLiteOp, kernel: [Int], strides: [Int], dilations: [Int]? = nil, group: Int = 1,
                padding code: Int8) throws(TFLiteError) -> [Attribute] {
        let autoPad: AutoPad
        switch code {
        case 0: autoPad = .sameUpper
        case 1: autoPad = .valid
        default: throw fail(op, "padding \(code) is neither SAME (0) nor VALID (1)")
        }
        return WindowAttributes(node: base(op), kernelShape: kernel, strides: strides, dilations: dilations,
                                autoPad: autoPad, group: group).attributes
    }

    mutating func conv(_ op: TFLiteOp, depthwise: Bool) throws(TFLiteError) {
        let wIndex = try tensor(op, 1)
        let xShape = shape(try tensor(op, 0)), wShape = shape(wIndex)
        guard xShape.count == 4, wShape.count == 4 else {
            throw fail(op, "needs a 4-D input and filter, got \(xShape) and \(wShape)")
        }
        let o = try options(op) { t throws(FlatBufferError) in
            depthwise
                ? (try t.scalar(0, Int8(0)), Int(try t.scalar(1, Int32(1))), Int(try t.scalar(2, Int32(1))), Int(try t.scalar(5, Int32(1))), Int(try t.scalar(6, Int32(1))), try t.scalar(4, Int8(0)))
                : (try t.scalar(0, Int8(0)), Int(try t.scalar(1, Int32(1))), Int(try t.scalar(2, Int32(1))), Int(try t.scalar(4, Int32(1))), Int(try t.scalar(5, Int32(1))), try t.scalar(3, Int8(0)))
        } ?? (0, 1, 1, 1, 1, 0)
        let (pad, sw, sh, dw, dh, act) = o
        guard sw >= 1, sh >= 1, dw >= 1, dh >= 1 else { throw fail(op, "strides \(sh)x\(sw) and dilations \(dh)x\(dw) must be at least 1") }
        let inC = xShape[3]
        let group: Int
        let n = base(op)
        if depthwise {
            guard wShape[0] == 1, inC > 0, wShape[3] % inC == 0 else {
                throw fail(op, "depthwise filter \(wShape) does not fit \(inC) input channels")
            }
            group = inC
        } else {
            guard wShape[3] > 0, inC % wShape[3] == 0 else {
                throw fail(op, "filter \(wShape) has \(wShape[3]) input channels, which do not divide the input's \(inC)")
            }
            group = inC / wShape[3]
        }
        // TFLite's filters are OHWI (depthwise 1,H,W,C*M); the IR's OIHW.
        let filterPerm = depthwise ? [3, 0, 1, 2] : Self.toNCHW
        let attrs = try window(op, kernel: [wShape[1], wShape[2]], strides: [sh, sw], dilations: [dh, dw], group: group, padding: pad)
        if try isInteger8(op) {
            // TFLite's integer conv: int32 sums of (x - x_zero_point) * w, the int32 bias,
            // requantized with TFLite's rounding (`requantizedSums`).
            let xq = try raw(op, 0), wq = try raw(op, 1)
            let filter = transpose(wq, filterPerm, base: n + "/filter")
            let (_, xZero, _) = try quantParams(try tensor(op, 0), try quantization8(op, 0))
            let acc = emit("ConvInteger", [transpose(xq, Self.toNCHW, base: n + "/nchw"), filter, xZero], attrs, base: n + "/conv")
            let real = try requantizedSums(op, transpose(acc, Self.toNHWC, base: n + "/nhwc"), perChannelProduct: true, base: n)
            try bind(op, 0, try activation(op, real, code: act))
            return
        }
        // TFLite's hybrid conv quantizes its input asymmetrically with per-channel weights (a
        // conv with one weight scale takes the symmetric path: computed in float here).
        if (depthwise || (quantization(wIndex)?.scale.count ?? 0) > 1), let (xq, xScale, xZero) = try hybridInput(op) {
            // The input quantized on the fly, integer sums, float result.
            let filter = transpose(try raw(op, 1), filterPerm, base: n + "/filter")
            let acc = emit("ConvInteger", [transpose(xq, Self.toNCHW, base: n + "/nchw"), filter, xZero], attrs, base: n + "/conv")
            let y = try hybridResult(op, transpose(acc, Self.toNHWC, base: n + "/nhwc"), inputScale: xScale, base: n)
            try bind(op, 0, try activation(op, y, code: act))
            return
        }
        let xt = transpose(try input(op, 0), Self.toNCHW, base: n + "/nchw")
        let filter = transpose(try input(op, 1), filterPerm, base: n + "/filter")
        let bias = hasInput(op, 2) ? [try input(op, 2)] : []
        var y = emit("Conv", [xt, filter] + bias, attrs, base: n + "/conv")
        y = try activation(op, y, code: act)
        try bind(op, 0, transpose(y, Self.toNHWC, base: n))
    }

    mutating func pool(_ op: TFLiteOp, _ irOp: String) throws(TFLiteError) {
        let x = try input(op, 0)
        guard shape(try tensor(op, 0)).count == 4 else { throw fail(op, "needs a 4-D NHWC input") }
        let (pad, sw, sh, fw, fh, act) = try options(op) { t throws(FlatBufferError) in
            (try t.scalar(0, Int8(0)), Int(try t.scalar(1, Int32(1))), Int(try t.scalar(2, Int32(1))),
             Int(try t.scalar(3, Int32(1))), Int(try t.scalar(4, Int32(1))), try t.scalar(5, Int8(0)))
        } ?? (0, 1, 1, 1, 1, 0)
        guard sw >= 1, sh >= 1, fw >= 1, fh >= 1 else { throw fail(op, "filter \(fh)x\(fw) and strides \(sh)x\(sw) must be at least 1") }
        let n = base(op)
        let xi = try tensor(op, 0), yi = try output(op, 0)
        if irOp == "AveragePool", act == 0, let qx = quantization(xi), let qy = quantization(yi), [3, 9].contains(sub.tensors[xi].type),
           sub.tensors[yi].type == sub.tensors[xi].type, qx.scale == qy.scale, qx.zeroPoint == qy.zeroPoint {
            // TFLite's integer average pool: the mean of the stored integers (input and output share
            // scale and zero point), rounded half away from zero.
            let f32 = Attribute(name: "to", value: .int(Int(DType.float32.onnxCode)))
            let xt = transpose(emit("Cast", [try raw(op, 0)], [f32], base: n + "/wide"), Self.toNCHW, base: n + "/nchw")
            let mean = emit(irOp, [xt], try window(op, kernel: [fh, fw], strides: [sh, sw], padding: pad), base: n + "/pool")
            let rounded = roundHalfAway(mean, .float32, base: n + "/mean")
            let to = Attribute(name: "to", value: .int(Int((TFLiteImporter.dtype(sub.tensors[yi].type) ?? .int8).onnxCode)))
            values[yi] = transpose(emit("Cast", [rounded], [to], base: n + "/narrow"), Self.toNHWC, base: n)
            return
        }
        let xt = transpose(x, Self.toNCHW, base: n + "/nchw")
        // TFLite's average pool divides by the pixels inside the image: count_include_pad 0 (the default).
        var y = emit(irOp, [xt], try window(op, kernel: [fh, fw], strides: [sh, sw], padding: pad), base: n + "/pool")
        y = try activation(op, y, code: act)
        try bind(op, 0, transpose(y, Self.toNHWC, base: n))
    }

    /// Inputs: 0 output_shape (int32 NHWC), 1 filter [O,H,W,I], 2 input, 3 bias (optional).
    mutating func transposeConv(_ op: TFLiteOp) throws(TFLiteError) {
        let outShape = try constantInts(op, 0)
        let wShape = shape(try tensor(op, 1)), xShape = shape(try tensor(op, 2))
        guard outShape.count == 4, wShape.count == 4, xShape.count == 4 else {
            throw fail(op, "needs 4-D output shape, filter and input, got \(outShape), \(wShape), \(xShape)")
        }
        let (pad, sw, sh, act) = try options(op) { t throws(FlatBufferError) in
            (try t.scalar(0, Int8(0)), Int(try t.scalar(1, Int32(1))), Int(try t.scalar(2, Int32(1))), try t.scalar(3, Int8(0)))
        } ?? (0, 1, 1, 0)
        guard sw >= 1, sh >= 1 else { throw fail(op, "strides \(sh)x\(sw) must be at least 1") }
        let n = base(op)
        let x = transpose(try input(op, 2), Self.toNCHW, base: n + "/nchw")
        let w = transpose(try input(op, 1), [3, 0, 1, 2], base: n + "/filter")
        let bias = hasInput(op, 3) ? [try input(op, 3)] : []
        var window = WindowAttributes(node: n, kernelShape: [wShape[1], wShape[2]], strides: [sh, sw])
        let full = [(xShape[1] - 1) * sh + wShape[1], (xShape[2] - 1) * sw + wShape[2]]
        if pad == 0 {
            // SAME: the output size is given; the padding (extra at the end) follows from it.
            window.outputShape = [outShape[1], outShape[2]]
            window.autoPad = .sameUpper
        } else {
            let extra = [outShape[1] - full[0], outShape[2] - full[1]]
            guard extra.allSatisfy({ $0 >= 0 }) else { throw fail(op, "VALID output shape \(outShape) is smaller than \(full)") }
            window.outputPadding = extra
        }
        var y = emit("ConvTranspose", [x, w] + bias, window.attributes, base: n + "/conv")
        y = try activation(op, y, code: act)
        try bind(op, 0, transpose(y, Self.toNHWC, base: n))
    }

    /// MediaPipe's custom `Convolution2DTransposeBias` (its segmentation models; MediaPipe's graph
    /// runner and TFLite's XNNPACK delegate know it, TFLite's kernels do not): inputs 0 x (NHWC),
    /// 1 filter (OHWI), 2 bias [O], float32. Its custom options are TfLiteTransposeConvParams as
    /// stored in memory: three little-endian int32s, padding (1 SAME, 2 VALID), stride_w,
    /// stride_h. The output size follows from the input: SAME pads P = max(0, k - (in - 1) mod s
    /// - 1) in all, the extra pixel at the end, and out = s(in - 1) + k - P (VALID: P = 0).
    mutating func transposeConvBias(_ op: TFLiteOp) throws(TFLiteError) {
        let xShape = shape(try tensor(op, 0)), wShape = shape(try tensor(op, 1)), bShape = shape(try tensor(op, 2))
        guard xShape.count == 4, wShape.count == 4, bShape == [wShape[0]], wShape[3] == xShape[3] else {
            throw fail(op, "needs a 4-D input, an OHWI filter of its channels and a bias per output channel, got \(xShape), \(wShape), \(bShape)")
        }
        let o = op.op.customOptions
        guard o.count >= 12 else { throw fail(op, "custom options hold \(o.count) bytes, not the 12 of padding and strides") }
        func int32(_ at: Int) -> Int {
            Int(Int32(bitPattern: UInt32(o[at]) | UInt32(o[at + 1]) << 8 | UInt32(o[at + 2]) << 16 | UInt32(o[at + 3]) << 24))
        }
        let (pad, sw, sh) = (int32(0), int32(4), int32(8))
        guard pad == 1 || pad == 2 else { throw fail(op, "padding \(pad) is neither SAME (1) nor VALID (2)") }
        guard sw >= 1, sh >= 1 else { throw fail(op, "strides \(sh)x\(sw) must be at least 1") }
        guard xShape[1] >= 1, xShape[2] >= 1 else { throw fail(op, "needs a known input height and width, got \(xShape)") }
        let kernel = [wShape[1], wShape[2]], strides = [sh, sw], size = [xShape[1], xShape[2]]
        let n = base(op)
        var window = WindowAttributes(node: n, kernelShape: kernel, strides: strides)
        window.outputShape = (0..<2).map { i in
            strides[i] * (size[i] - 1) + kernel[i] - (pad == 1 ? max(0, kernel[i] - (size[i] - 1) % strides[i] - 1) : 0)
        }
        window.autoPad = .sameUpper
        let x = transpose(try input(op, 0), Self.toNCHW, base: n + "/nchw")
        let w = transpose(try input(op, 1), [3, 0, 1, 2], base: n + "/filter")
        let y = emit("ConvTranspose", [x, w, try input(op, 2)], window.attributes, base: n + "/conv")
        try bind(op, 0, transpose(y, Self.toNHWC, base: n))
    }

    /// Inputs: 0 x [..., K], 1 weights [O, K], 2 bias [O] (optional). Without keep_num_dims the
    /// input is flattened to [-1, K] and the output is 2-D.
    mutating func fullyConnected(_ op: TFLiteOp) throws(TFLiteError) {
        let xIndex = try tensor(op, 0), wShape = shape(try tensor(op, 1))
        guard wShape.count == 2 else { throw fail(op, "weights must be 2-D [out, in], got \(wShape)") }
        let (act, format, keep) = try options(op) { t throws(FlatBufferError) in
            (try t.scalar(0, Int8(0)), try t.scalar(1, Int8(0)), try t.bool(2))
        } ?? (0, 0, false)
        guard format == 0 else { throw fail(op, "weights format \(format) (shuffled) is not supported") }
        let n = base(op)
        if try isInteger8(op), !keep || shape(xIndex).count == 2 {
            // TFLite's integer fully-connected: int32 sums of (x - x_zero_point) * w, the int32
            // bias, requantized with TFLite's rounding (`requantizedSums`).
            var xq = try raw(op, 0)
            if shape(xIndex).count != 2 { xq = emit("Reshape", [xq, int64s([-1, wShape[1]], base: n + "/flat_shape")], base: n + "/flat") }
            let (_, xZero, _) = try quantParams(xIndex, try quantization8(op, 0))
            let (_, wZero, _) = try quantParams(try tensor(op, 1), try quantization8(op, 1))
            let acc = emit("MatMulInteger", [xq, transpose(try raw(op, 1), [1, 0], base: n + "/weights_t"), xZero, wZero], base: n + "/matmul")
            try bind(op, 0, try activation(op, try requantizedSums(op, acc, perChannelProduct: false, base: n), code: act))
            return
        }
        let asymmetric = try options(op) { t throws(FlatBufferError) in try t.bool(3) } ?? false
        if asymmetric, shape(xIndex).count == 2, let (xq, xScale, xZero) = try hybridInput(op) {
            // TFLite's hybrid fully-connected with asymmetric_quantize_inputs: the input row
            // quantized on the fly, integer sums, float result.
            let acc = emit("MatMulInteger", [xq, transpose(try raw(op, 1), [1, 0], base: n + "/weights_t"), xZero], base: n + "/matmul")
            try bind(op, 0, try activation(op, try hybridResult(op, acc, inputScale: xScale, base: n), code: act))
            return
        }
        var x = try input(op, 0)
        let w = try input(op, 1)
        let bias = hasInput(op, 2) ? [try input(op, 2)] : []
        var y: String
        if keep && shape(xIndex).count != 2 {
            y = emit("MatMul", [x, transpose(w, [1, 0], base: n + "/weights_t")], base: n + "/matmul")
            if let b = bias.first { y = emit("Add", [y, b], base: n + "/bias") }
        } else {
            if shape(xIndex).count != 2 { x = emit("Reshape", [x, int64s([-1, wShape[1]], base: n + "/flat_shape")], base: n + "/flat") }
            y = emit("Gemm", [x, w] + bias, [Attribute(name: "transB", value: .int(1))], base: n + "/gemm")
        }
        y = try activation(op, y, code: act)
        try bind(op, 0, y)
    }

    mutating func batchMatMul(_ op: TFLiteOp) throws(TFLiteError) {
        let (adjX, adjY) = try options(op) { t throws(FlatBufferError) in (try t.bool(0), try t.bool(1)) } ?? (false, false)
        let n = base(op)
        var operands: [String] = []
        for (k, adj) in [(0, adjX), (1, adjY)] {
            let v = try input(op, k), r = shape(try tensor(op, k)).count
            guard r >= 2 else { throw fail(op, "input \(k) must have rank 2 or more") }
            operands.append(adj ? transpose(v, Array(0..<(r - 2)) + [r - 1, r - 2], base: n + "/adj\(k)") : v)
        }
        try bind(op, 0, emit("MatMul", operands, base: n))
    }
}
