import DLGraph
import DLSupport
import DLTensor

/// Convolution and pooling layers: Conv, DepthwiseConv, SeparableConv, Conv2DTranspose, pooling,
/// global pooling; computed channels-first between transposes.
extension GraphBuilder {
    /// Pads for one spatial dimension, TensorFlow style.
    func pads(_ padding: String, input: Int?, kernel: Int, stride: Int, dilation: Int) -> (Int, Int, Int?)? {
        let eff = (kernel - 1) * dilation + 1
        switch padding {
        case "valid":
            return (0, 0, input.map { ($0 - eff) / stride + 1 })
        case "same":
            guard let n = input else { return nil }
            let out = (n + stride - 1) / stride
            let total = max((out - 1) * stride + eff - n, 0)
            return (total / 2, total - total / 2, out)
        case "causal":
            return (eff - 1, 0, input.map { ($0 + eff - 1 - eff) / stride + 1 })
        default: return nil
        }
    }

    /// Runs an op made for channels-first data on a channels-last value.
    mutating func channelsFirst(_ x: Value, last: Bool, name: String, _ body: (inout GraphBuilder, Value) throws(KerasError) -> Value) throws(KerasError) -> Value {
        guard last else { return try body(&self, x) }
        let r = x.rank
        let t = transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: name)
        let y = try body(&self, t)
        return transpose(y, [0] + Array(2..<r) + [1], name: name)
    }

    /// Conv window attributes and output spatial shape for `x` (channels-first inside).
    func convGeometry(_ s: LayerSpec, spatial: [Int?], kernel: [Int]) throws(KerasError) -> (WindowAttributes, [Int?]) {
        let k = kernel.count
        let strides = try window(s, "strides", k, [Int](repeating: 1, count: k))
        let dil = try window(s, "dilation_rate", k, [Int](repeating: 1, count: k))
        let padding = string(s, "padding", "valid")
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        var auto = false
        for i in 0..<k {
            guard let p = pads(padding, input: spatial[i], kernel: kernel[i], stride: strides[i], dilation: dil[i]) else {
                if padding == "same" { auto = true; out.append(nil); begin.append(0); end.append(0); continue }
                throw fail(s, "padding '\(padding)' is not supported")
            }
            begin.append(p.0); end.append(p.1); out.append(p.2)
        }
        let window = WindowAttributes(node: s.name, kernelShape: kernel, strides: strides, dilations: dil,
                                      pads: auto ? nil : begin + end, autoPad: auto ? .sameUpper : .notSet)
        return (window, out)
    }

    mutating func conv(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        guard k >= 1, k <= 3 else { throw fail(s, "input of rank \(x.rank)") }
        let last = try channelsLast(s)
        let filters = try count(s, "filters")
        let kernel = try window(s, "kernel_size", k)
        let groups = try count(s, "groups", 1)
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        guard groups >= 1, inC % groups == 0 else { throw fail(s, "groups \(groups) does not divide \(inC) channels") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let perm = [k + 1, k] + Array(0..<k)
        let w = try variable(s, ws, 0, name: "kernel", keras3Path: "vars/0", legacy: "\(s.name)/kernel", shape: kernel + [inC / groups, filters],
                             layout: WeightLayout(perm: perm), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        return try convolve(s, x, last: last, kernel: kernel, weights: w, bias: b, group: groups, outChannels: filters)
    }

    /// A Conv of `x` (channels-first inside) with `group` groups, then the layer's activation.
    mutating func convolve(_ s: LayerSpec, _ x: Value, last: Bool, kernel: [Int], weights w: String, bias b: String?,
                           group: Int, outChannels: Int) throws(KerasError) -> Value {
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var (window, outSpatial) = try convGeometry(s, spatial: spatial, kernel: kernel)
        window.group = group
        let attrs = window.attributes
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1("Conv", [t.name, w] + (b.map { [$0] } ?? []), attrs, name: s.name)
            return Value(name: o, shape: [t.shape[0], outChannels] + outSpatial)
        }
        return try activation(s, y)
    }

    mutating func depthwise(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let kernel = try window(s, "kernel_size", k)
        let mult = try count(s, "depth_multiplier", 1)
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let w = try variable(s, ws, 0, name: "depthwise_kernel", keras3Path: "vars/0", legacy: "\(s.name)/depthwise_kernel",
                             shape: kernel + [inC, mult], layout: WeightLayout(perm: [k, k + 1] + Array(0..<k), irShape: [inC * mult, 1] + kernel), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [inC * mult], record: &rec) : nil
        return try convolve(s, x, last: last, kernel: kernel, weights: w, bias: b, group: inC, outChannels: inC * mult)
    }

    mutating func separable(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let kernel = try window(s, "kernel_size", k)
        let mult = try count(s, "depth_multiplier", 1)
        let filters = try count(s, "filters")
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 3 : 2)
        let dw = try variable(s, ws, 0, name: "depthwise_kernel", keras3Path: "vars/0", legacy: "\(s.name)/depthwise_kernel",
                              shape: kernel + [inC, mult], layout: WeightLayout(perm: [k, k + 1] + Array(0..<k), irShape: [inC * mult, 1] + kernel), record: &rec)
        let ones = [Int](repeating: 1, count: k)
        let pw = try variable(s, ws, 1, name: "pointwise_kernel", keras3Path: "vars/1", legacy: "\(s.name)/pointwise_kernel",
                              shape: ones + [inC * mult, filters], layout: WeightLayout(perm: [k + 1, k] + Array(0..<k)), record: &rec)
        let b = useBias ? try variable(s, ws, 2, name: "bias", keras3Path: "vars/2", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var (window, outSpatial) = try convGeometry(s, spatial: spatial, kernel: kernel)
        window.group = inC
        let depthwise = window.attributes
        let pointwise = WindowAttributes(node: s.name, kernelShape: ones).attributes
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let d = g.op1("Conv", [t.name, dw], depthwise, name: s.name)
            let o = g.op1("Conv", [d, pw] + (b.map { [$0] } ?? []), pointwise, name: s.name)
            return Value(name: o, shape: [t.shape[0], filters] + outSpatial)
        }
        return try activation(s, y)
    }

    mutating func convTranspose(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let filters = try count(s, "filters")
        let kernel = try window(s, "kernel_size", k)
        let strides = try window(s, "strides", k, [Int](repeating: 1, count: k))
        let dil = try window(s, "dilation_rate", k, [Int](repeating: 1, count: k))
        guard dil.allSatisfy({ $0 == 1 }), s.config["output_padding"]?.isNull ?? true else { throw fail(s, "dilation or output_padding is not supported") }
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let w = try variable(s, ws, 0, name: "kernel", keras3Path: "vars/0", legacy: "\(s.name)/kernel", shape: kernel + [filters, inC],
                             layout: WeightLayout(perm: [k + 1, k] + Array(0..<k)), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        let padding = string(s, "padding", "valid")
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        for i in 0..<k {
            if padding == "valid" {
                let extra = max(kernel[i] - strides[i], 0)
                _ = extra
                begin.append(0); end.append(0)
                out.append(spatial[i].map { ($0 - 1) * strides[i] + kernel[i] + max(strides[i] - kernel[i], 0) })
            } else if padding == "same" {
                let total = max(kernel[i] - strides[i], 0)
                begin.append(total / 2); end.append(total - total / 2)
                out.append(spatial[i].map { $0 * strides[i] })
            } else { throw fail(s, "padding '\(padding)'") }
        }
        // Keras's valid output is max(k, s) + (n-1)s: ONNX gives (n-1)s + k; the difference is output_padding.
        let outPad = (0..<k).map { padding == "valid" ? max(strides[$0] - kernel[$0], 0) : 0 }
        let attrs = WindowAttributes(node: s.name, kernelShape: kernel, strides: strides, pads: begin + end, outputPadding: outPad).attributes
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1("ConvTranspose", [t.name, w] + (b.map { [$0] } ?? []), attrs, name: s.name)
            return Value(name: o, shape: [t.shape[0], filters] + out)
        }
        return try activation(s, y)
    }

    mutating func pool(_ s: LayerSpec, _ x: Value) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let size = try window(s, "pool_size", k, [Int](repeating: 2, count: k))
        var strides = size
        if let st = s.config["strides"], !st.isNull { strides = try window(s, "strides", k) }
        let padding = string(s, "padding", "valid")
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        for i in 0..<k {
            guard let p = pads(padding, input: spatial[i], kernel: size[i], stride: strides[i], dilation: 1) else {
                throw fail(s, "padding '\(padding)' needs known spatial sizes")
            }
            begin.append(p.0); end.append(p.1); out.append(p.2)
        }
        let isMax = s.className.hasPrefix("Max")
        let channels = last ? x.shape.last ?? nil : x.shape[1]
        return try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1(isMax ? "MaxPool" : "AveragePool", [t.name],
                          WindowAttributes(node: s.name, kernelShape: size, strides: strides, pads: begin + end).attributes, name: s.name)
            return Value(name: o, shape: [t.shape[0], channels] + out)
        }
    }

    /// Global average and max pooling.
    mutating func globalPooling(_ s: LayerSpec, _ x: Value) throws(KerasError) -> [Value] {
        // GlobalAveragePool/GlobalMaxPool on channels-first data (the transpose in front
        // usually cancels against the one after a convolution).
        let last = try channelsLast(s)
        let keep = bool(s, "keepdims", false)
        let r = x.rank
        let opName = s.className.contains("Average") ? "GlobalAveragePool" : "GlobalMaxPool"
        let channels = last ? x.shape[r - 1] : x.shape[1]
        let ones = [Int?](repeating: 1, count: r - 2)
        let t = last ? transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: s.name) : x
        let pooled = Value(name: op1(opName, [t.name], name: s.name), shape: [x.shape[0], channels] + ones)
        if !keep {
            return [Value(name: op1("Flatten", [pooled.name], [Attribute(name: "axis", value: .int(1))], name: s.name), shape: [x.shape[0], channels])]
        }
        return [last ? transpose(pooled, [0] + Array(2..<r) + [1], name: s.name) : pooled]
    }
}
