import DLGraph
import DLSupport
import DLTensor

/// Layers that rearrange values: Flatten, Reshape, Permute, RepeatVector, padding, cropping,
/// upsampling.
extension GraphBuilder {
    /// Layers that move, pad, crop or resample values: Flatten, Reshape, Permute, RepeatVector,
    /// ZeroPadding, Cropping, UpSampling.
    mutating func reshapingLayer(_ s: LayerSpec, _ x: Value) throws(KerasError) -> [Value] {
        switch s.className {
        case "Flatten":
            let n = Self.product(x.shape.dropFirst())
            var src = x
            if !(try channelsLast(s)), x.rank > 2 {
                src = transpose(x, [0] + Array(2..<x.rank) + [1], name: s.name)
            }
            return [Value(name: op1("Flatten", [src.name], [Attribute(name: "axis", value: .int(1))], name: s.name), shape: [x.shape[0], n], dtype: x.dtype)]
        case "Reshape":
            guard let target = s.config["target_shape"]?.arrayValue?.map({ $0.intValue ?? -1 }) else { throw fail(s, "no target_shape") }
            let shp = ints("\(s.name)/shape", [0] + target)
            var outShape: [Int?] = [x.shape[0]] + target.map { $0 < 0 ? nil : $0 }
            guard target.allSatisfy({ $0 >= -1 && $0 <= Self.maxConfigInt }), target.filter({ $0 < 0 }).count <= 1 else {
                throw fail(s, "target_shape \(target) must be sizes with at most one -1")
            }
            if let total = Self.product(x.shape.dropFirst()), let rest = Self.product(target.filter { $0 >= 0 }), target.contains(-1) {
                outShape = [x.shape[0]] + target.map { $0 < 0 ? (rest > 0 ? total / rest : nil) : $0 }
            }
            return [Value(name: op1("Reshape", [x.name, shp], name: s.name), shape: outShape, dtype: x.dtype)]
        case "Permute":
            guard let dims = s.config["dims"]?.arrayValue?.compactMap(\.intValue), dims.sorted() == Array(1..<x.rank) else {
                throw fail(s, "dims must be a permutation of 1...\(x.rank - 1) for an input of rank \(x.rank)")
            }
            return [transpose(x, [0] + dims, name: s.name)]
        case "RepeatVector":
            let n = try count(s, "n")
            let ax = ints("\(s.name)/axis", [1])
            let u = op1("Unsqueeze", [x.name, ax], name: s.name)
            let reps = ints("\(s.name)/repeats", [1, n, 1])
            return [Value(name: op1("Tile", [u, reps], name: s.name), shape: [x.shape[0], n, x.shape.last ?? nil])]
        case "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D":
            let k = try spatialRank(s, x)
            let pads = try padPairs(s, "padding", k)
            // Padded channels-first, between convolutions and poolings whose transposes cancel.
            let last = try channelsLast(s)
            let all = [0, 0] + pads.map(\.0) + [0, 0] + pads.map(\.1)
            let p = ints("\(s.name)/pads", all)
            return [try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
                var shape = t.shape
                for i in 0..<k { shape[i + 2] = shape[i + 2].map { $0 + pads[i].0 + pads[i].1 } }
                return Value(name: g.op1("Pad", [t.name, p], name: s.name), shape: shape)
            }]
        case "Cropping1D", "Cropping2D":
            let k = try spatialRank(s, x)
            let crops = try padPairs(s, "cropping", k)
            let axes = Array(1...k)
            let starts = ints("\(s.name)/starts", crops.map(\.0))
            let ends = ints("\(s.name)/ends", crops.map { $0.1 > 0 ? -$0.1 : Int(Int64.max) })
            let ax = ints("\(s.name)/axes", axes)
            var shape = x.shape
            for i in 0..<k { shape[i + 1] = shape[i + 1].map { $0 - crops[i].0 - crops[i].1 } }
            return [Value(name: op1("Slice", [x.name, starts, ends, ax], name: s.name), shape: shape)]
        case "UpSampling1D", "UpSampling2D":
            let k = try spatialRank(s, x)
            let size = s.className == "UpSampling1D" ? [try count(s, "size", 2, max: Self.maxWindow)] : try window(s, "size", k)
            // A crafted config can pair UpSampling1D with a 4-D input (fuzz input c94f8610): the
            // factors must match the input's spatial rank before they are indexed.
            guard k >= 1, size.count == k else {
                throw fail(s, "\(size.count) size factor(s) for an input of rank \(x.rank)")
            }
            let interp = string(s, "interpolation", "nearest")
            guard interp == "nearest" || interp == "bilinear" else { throw fail(s, "interpolation '\(interp)' is not supported (nearest or bilinear)") }
            var shape = x.shape
            for i in 0..<k { shape[i + 1] = shape[i + 1].map { $0 * size[i] } }
            if interp == "bilinear" {
                // TensorFlow's resize samples at half-pixel centres (ONNX "half_pixel"), clamped at
                // the edges. Channels-first, so ONNX Runtime's linear mode takes it.
                guard try channelsLast(s) else { throw fail(s, "bilinear upsampling of channels_first data is not supported") }
                let cf = constant("\(s.name)/scales", Tensor(shape: [x.rank], scalars: [Float(1), Float(1)] + size.map(Float.init)))
                let out = try channelsFirst(x, last: true, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
                    let y = g.op1("Resize", [t.name, "", cf], [Attribute(name: "mode", value: .string("linear")),
                                                               Attribute(name: "coordinate_transformation_mode", value: .string("half_pixel"))], name: s.name)
                    return Value(name: y, shape: [t.shape[0], t.shape[1]] + (0..<k).map { shape[$0 + 1] })
                }
                return [out]
            }
            let scales = constant("\(s.name)/scales", Tensor(shape: [x.rank], scalars: [Float(1)] + size.map(Float.init) + [Float(1)]))
            let y = op1("Resize", [x.name, "", scales], [Attribute(name: "mode", value: .string("nearest")),
                                                          Attribute(name: "coordinate_transformation_mode", value: .string("asymmetric")),
                                                          Attribute(name: "nearest_mode", value: .string("floor"))], name: s.name)
            return [Value(name: y, shape: shape)]
        default:
            throw .unsupportedLayers(path: path, layers: ["\(s.className) '\(s.name)'"])
        }
    }
}
