import DLGraph
import DLTensor

/// The writer's translations that take more than one layer: Gemm, convolutions, pools, Resize,
/// LSTM and GRU.
extension IRBuilder {
    mutating func gemm(_ n: Node) throws(OpenVINOError) {
        let alpha = try float(n, "alpha", 1), beta = try float(n, "beta", 1)
        let data = [("transpose_a", try attr(n, "transA", 0) == 1 ? "true" : "false"),
                    ("transpose_b", try attr(n, "transB", 0) == 1 ? "true" : "false")]
        let hasC = n.input(2) != nil
        let outType = n.outputs.first.flatMap { types[$0] }
        let ab = [try input(n, 0), try input(n, 1)]
        guard alpha != 1 || hasC else {
            emit(n, "MatMul", "opset1", ab, data)
            return
        }
        var y = layer("MatMul", "opset1", ab, data, like: outType)[0]
        let broadcast = [("auto_broadcast", "numpy")]
        if alpha != 1 {
            let s = scalar(Double(alpha), like: n.inputs[0])
            guard hasC else {
                emit(n, "Multiply", "opset1", [y, s], broadcast)
                return
            }
            y = layer("Multiply", "opset1", [y, s], broadcast, like: outType)[0]
        }
        var c = try input(n, 2)
        if beta != 1 { c = layer("Multiply", "opset1", [c, scalar(Double(beta), like: n.inputs[2])], broadcast)[0] }
        emit(n, "Add", "opset1", [y, c], broadcast)
    }

    /// The node's window attributes, read and checked (`WindowAttributes`).
    func window(_ n: Node) throws(OpenVINOError) -> WindowAttributes {
        do { return try WindowAttributes(node: n) } catch { throw fail(n, "\(error)") }
    }

    /// strides, dilations, pads_begin/pads_end and auto_pad for `spatial` dims.
    func windowAttributes(_ n: Node, _ w: WindowAttributes, spatial: Int, dilations: Bool = true) throws(OpenVINOError) -> [(String, String)] {
        let strides: [Int], dilationList: [Int], pads: [Int]
        do {
            (strides, dilationList, pads) = (try w.strides(rank: spatial), try w.dilations(rank: spatial), try w.pads(rank: spatial))
        } catch { throw fail(n, "\(error)") }
        var d = [("strides", Self.list(strides))]
        if dilations { d.append(("dilations", Self.list(dilationList))) }
        d.append(("pads_begin", Self.list(Array(pads[..<spatial]))))
        d.append(("pads_end", Self.list(Array(pads[spatial...]))))
        let map: [AutoPad: String] = [.notSet: "explicit", .valid: "valid", .sameUpper: "same_upper", .sameLower: "same_lower"]
        d.append(("auto_pad", map[w.autoPad] ?? "explicit"))
        return d
    }

    mutating func convolution(_ n: Node) throws(OpenVINOError) {
        guard let wName = n.input(1), let wDims = types[wName]?.dims?.concrete, wDims.count >= 3 else {
            throw fail(n, "the weights need a known static shape")
        }
        let spatial = wDims.count - 2
        let transposed = n.opType == "ConvTranspose"
        let window = try window(n)
        let group = window.group
        guard wDims[0] % group == 0 else { throw fail(n, "group \(group) does not divide the weights' \(wDims[0])") }
        var data = try windowAttributes(n, window, spatial: spatial)
        var w = try input(n, 1)
        if group > 1 {
            // ONNX [O, I/G, k...] (ConvTranspose: [I, O/G, k...]) -> OpenVINO [G, O/G, I/G, k...].
            let shape = [group, wDims[0] / group] + wDims[1...]
            w = layer("Reshape", "opset1", [w, ints(shape)], [("special_zero", "false")],
                      like: TensorType(dtype: types[wName]?.dtype ?? .float32, shape: shape))[0]
        }
        var ins = [try input(n, 0), w]
        let type: String
        if transposed {
            type = group > 1 ? "GroupConvolutionBackpropData" : "ConvolutionBackpropData"
            if let op = window.outputPadding { data.append(("output_padding", Self.list(op))) }
            if let shape = window.outputShape {
                ins.append(ints(Array(shape.suffix(spatial))))
                // ONNX spreads the padding SAME_UPPER-style only when asked; otherwise the extra goes first.
                data.removeAll { $0.0 == "auto_pad" }
                data.append(("auto_pad", window.autoPad == .sameUpper ? "same_upper" : "same_lower"))
            }
        } else {
            type = group > 1 ? "GroupConvolution" : "Convolution"
        }
        let outType = n.outputs.first.flatMap { types[$0] }
        guard n.input(2) != nil else {
            emit(n, type, "opset1", ins, data)
            return
        }
        let y = layer(type, "opset1", ins, data, like: outType)[0]
        let bias = layer("Reshape", "opset1", [try input(n, 2), ints([1, -1] + Array(repeating: 1, count: spatial))], [("special_zero", "false")])[0]
        emit(n, "Add", "opset1", [y, bias], [("auto_broadcast", "numpy")])
    }

    mutating func pool(_ n: Node) throws(OpenVINOError) {
        let window = try window(n)
        guard let kernel = window.kernelShape else { throw fail(n, "has no kernel_shape") }
        let maxPool = n.opType == "MaxPool"
        if maxPool, n.outputs.count > 1, !n.outputs[1].isEmpty { throw fail(n, "the indices output is not translated") }
        var data = try windowAttributes(n, window, spatial: kernel.count, dilations: maxPool)
        data.append(("kernel", Self.list(kernel)))
        // ONNX ceil mode drops a last window that would start in the end padding: ceil_torch.
        data.append(("rounding_type", window.ceilMode ? "ceil_torch" : "floor"))
        if maxPool {
            data += [("index_element_type", "i64"), ("axis", "0")]
            emit(n, "MaxPool", "opset14", [try input(n, 0)], data, outputs: 2)
        } else {
            data.append(("exclude-pad", window.countIncludePad ? "false" : "true"))
            emit(n, "AvgPool", "opset14", [try input(n, 0)], data)
        }
    }

    mutating func resize(_ n: Node) throws(OpenVINOError) {
        let mode = try string(n, "mode", "nearest")
        let modes = ["nearest": "nearest", "linear": "linear_onnx", "cubic": "cubic"]
        guard let m = modes[mode] else { throw fail(n, "mode '\(mode)' is not translated") }
        let ctm = try string(n, "coordinate_transformation_mode", "half_pixel")
        guard ctm != "tf_crop_and_resize" else { throw fail(n, "tf_crop_and_resize is not translated") }
        guard try attr(n, "exclude_outside", 0) == 0, try string(n, "keep_aspect_ratio_policy", "stretch") == "stretch" else {
            throw fail(n, "exclude_outside and keep_aspect_ratio_policy are not translated")
        }
        var data = [("mode", m), ("coordinate_transformation_mode", ctm), ("nearest_mode", try string(n, "nearest_mode", "round_prefer_floor")),
                    ("antialias", try attr(n, "antialias", 0) == 1 ? "true" : "false"), ("cube_coeff", String(try float(n, "cubic_coeff_a", -0.75)))]
        let bySizes = n.input(3) != nil
        guard bySizes || n.input(2) != nil else { throw fail(n, "has neither scales nor sizes") }
        data.append(("shape_calculation_mode", bySizes ? "sizes" : "scales"))
        var ins = [try input(n, 0), try input(n, bySizes ? 3 : 2)]
        // Without axes Interpolate-11 resizes every axis, as Resize does.
        if let axes = try ints(n, "axes") { ins.append(ints(axes)) }
        emit(n, "Interpolate", "opset11", ins, data)
    }

    /// ONNX LSTM / GRU (sequence first, gates i,o,f,c / z,r,h, bias = input half + recurrent
    /// half) as LSTMSequence / GRUSequence (batch first, gates f,i,c,o / z,r,h, one bias).
    mutating func recurrent(_ n: Node) throws(OpenVINOError) {
        let lstm = n.opType == "LSTM"
        let hidden = try attr(n, "hidden_size", 0)
        guard hidden > 0 else { throw fail(n, "has no hidden_size") }
        let direction = try string(n, "direction", "forward")
        let dirs = direction == "bidirectional" ? 2 : 1
        let batchFirst = try attr(n, "layout", 0) == 1
        if lstm, try attr(n, "input_forget", 0) != 0 || n.input(7) != nil { throw fail(n, "input_forget and peepholes are not translated") }
        if n.attribute("activation_alpha") != nil || n.attribute("activation_beta") != nil {
            throw fail(n, "activation_alpha/beta are not translated")
        }
        let gates = lstm ? 4 : 3
        let swap = ints([1, 0, 2])
        var x = try input(n, 0)
        if !batchFirst { x = layer("Transpose", "opset1", [x, swap])[0] }
        let xShape = layer("ShapeOf", "opset3", [x], [("output_type", "i64")])[0]
        let gather = { (b: inout IRBuilder, i: Int) -> OVPort in
            b.layer("Gather", "opset8", [xShape, b.ints([i]), b.ints([0], scalar: true)], [("batch_dims", "0")])[0]
        }
        let batch = gather(&self, 0)
        // Initial states: given ([dirs, batch, hidden] unless batch first) or zeros.
        func state(_ i: Int) throws(OpenVINOError) -> OVPort {
            if n.input(i) != nil {
                let s = try input(n, i)
                return batchFirst ? s : layer("Transpose", "opset1", [s, swap])[0]
            }
            let shape = layer("Concat", "opset1", [batch, ints([dirs, hidden])], [("axis", "0")])[0]
            return layer("Broadcast", "opset3", [scalar(0, like: n.inputs[0]), shape], [("mode", "numpy")])[0]
        }
        let h0 = try state(5)
        let c0 = lstm ? try state(6) : nil
        let lens: OVPort
        if n.input(4) != nil {
            lens = try input(n, 4)
        } else {
            lens = layer("Broadcast", "opset3", [gather(&self, 1), batch], [("mode", "numpy")])[0]
        }
        func regroup(_ p: OVPort, parts: Int, order: [Int]) -> OVPort {
            let pieces = layer("Split", "opset1", [p, ints([1], scalar: true)], [("num_splits", String(parts))], outputs: parts)
            return layer("Concat", "opset1", order.map { pieces[$0] }, [("axis", "1")])[0]
        }
        let lstmOrder = [2, 0, 3, 1]  // i,o,f,c -> f,i,c,o
        var w = try input(n, 1), r = try input(n, 2)
        if lstm {
            w = regroup(w, parts: 4, order: lstmOrder)
            r = regroup(r, parts: 4, order: lstmOrder)
        }
        let lbrAttr = try attr(n, "linear_before_reset", 0)
        let lbr = !lstm && lbrAttr == 1
        var b: OVPort
        if n.input(3) != nil {
            let halves = layer("Split", "opset1", [try input(n, 3), ints([1], scalar: true)], [("num_splits", "2")], outputs: 2)
            if lbr {
                // [Wz+Rz, Wr+Rr, Wh, Rh]
                let wp = layer("Split", "opset1", [halves[0], ints([1], scalar: true)], [("num_splits", "3")], outputs: 3)
                let rp = layer("Split", "opset1", [halves[1], ints([1], scalar: true)], [("num_splits", "3")], outputs: 3)
                let z = layer("Add", "opset1", [wp[0], rp[0]], [("auto_broadcast", "numpy")])[0]
                let rr = layer("Add", "opset1", [wp[1], rp[1]], [("auto_broadcast", "numpy")])[0]
                b = layer("Concat", "opset1", [z, rr, wp[2], rp[2]], [("axis", "1")])[0]
            } else {
                b = layer("Add", "opset1", [halves[0], halves[1]], [("auto_broadcast", "numpy")])[0]
                if lstm { b = regroup(b, parts: 4, order: lstmOrder) }
            }
        } else {
            let t = types[n.inputs[0]]?.dtype ?? .float32
            b = appendConst(Tensor(zeros: t, shape: [dirs, (lbr ? 4 : gates) * hidden]), element: IRElement.name(t) ?? "f32", name: "")
        }
        var data = [("direction", direction), ("hidden_size", String(hidden))]
        // OpenVINO needs the list spelled out (ONNX's defaults when the node has none).
        let per = lstm ? 3 : 2
        var activations = lstm ? ["sigmoid", "tanh", "tanh"] : ["sigmoid", "tanh"]
        if let acts = n.attribute("activations"), case .strings(let list) = acts {
            guard list.count == per * dirs, dirs == 1 || Array(list[..<per]) == Array(list[per...]) else {
                throw fail(n, "activations \(list) differ per direction")
            }
            activations = list.prefix(per).map { $0.lowercased() }
        }
        data.append(("activations", activations.joined(separator: ",")))
        let clip = try float(n, "clip", 0)
        if clip > 0 { data.append(("clip", String(clip))) }
        if lbr { data.append(("linear_before_reset", "true")) }
        let ins = lstm ? [x, h0, c0 ?? h0, lens, w, r, b] : [x, h0, lens, w, r, b]
        let outs = layer(lstm ? "LSTMSequence" : "GRUSequence", "opset5", ins, data, outputs: lstm ? 3 : 2)
        // Y: [batch, dirs, seq, hidden] -> ONNX [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]).
        let names = n.outputs + Array(repeating: "", count: max(0, 3 - n.outputs.count))
        let yPerm = batchFirst ? [0, 2, 1, 3] : [2, 1, 0, 3]
        for (k, o) in names.prefix(outs.count).enumerated() where !o.isEmpty {
            let perm = k == 0 ? ints(yPerm) : swap
            let p: OVPort
            if k > 0 && batchFirst {
                p = outs[k]
            } else {
                p = add("Transpose", "opset1", name: o, [outs[k], perm], outputs: [types[o]], names: [[o]])[0]
            }
            produced[o] = p
            name(p, o)
        }
    }
}
