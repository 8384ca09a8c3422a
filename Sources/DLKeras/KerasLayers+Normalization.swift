import DLGraph
import DLSupport
import DLTensor

/// Normalisation layers: BatchNormalization, LayerNormalization, GroupNormalization,
/// Normalization, Rescaling.
extension GraphBuilder {
    mutating func batchNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        var axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.first?.intValue ?? -1
        if axis < 0 { axis += x.rank }
        guard axis >= 1, axis < x.rank, let c = x.shape[axis] else { throw fail(s, "axis \(axis) with unknown size") }
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, 2 + (center ? 1 : 0) + (scale ? 1 : 0))
        var i = 0
        func next(_ n: String, _ r: inout KerasLayerRecord, _ g: inout GraphBuilder) throws(KerasError) -> String {
            defer { i += 1 }
            return try g.variable(s, ws, i, name: n, keras3Path: "vars/\(i)", legacy: "\(s.name)/\(n)", shape: [c], record: &r)
        }
        _ = try fillerCount(s, c)
        let gamma = scale ? try next("gamma", &rec, &self) : constant("\(s.name)/gamma", .filled(1, shape: [c]))
        let beta = center ? try next("beta", &rec, &self) : constant("\(s.name)/beta", .filled(0, shape: [c]))
        let mean = try next("moving_mean", &rec, &self)
        let variance = try next("moving_variance", &rec, &self)
        let eps = Float(double(s, "epsilon", 1e-3))
        let perm = axis == 1 ? Array(0..<x.rank) : [0, axis] + Array(1..<x.rank).filter { $0 != axis }
        let t = axis == 1 ? x : transpose(x, perm, name: s.name)
        let o = op1("BatchNormalization", [t.name, gamma, beta, mean, variance], [Attribute(name: "epsilon", value: .float(eps))], name: s.name)
        var y = Value(name: o, shape: t.shape)
        if axis != 1 {
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            y = transpose(y, inverse, name: s.name)
        }
        return y
    }

    mutating func layerNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        var axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.last?.intValue ?? -1
        if let a = s.config["axis"]?.arrayValue, a.count != 1 { throw fail(s, "normalising over several axes is not supported") }
        if axis < 0 { axis += x.rank }
        guard axis == x.rank - 1, let c = x.shape[axis] else { throw fail(s, "only the last axis is supported") }
        guard !bool(s, "rms_scaling", false) else { throw fail(s, "rms_scaling is not supported") }
        _ = try fillerCount(s, c)
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, (center ? 1 : 0) + (scale ? 1 : 0))
        // Filler constants only for the parts Keras leaves out (created first, they would take
        // the variables' names and stay unused).
        let gamma = scale ? try variable(s, ws, 0, name: "gamma", keras3Path: "vars/0", legacy: "\(s.name)/gamma", shape: [c], record: &rec)
            : constant("\(s.name)/gamma", .filled(1, shape: [c]))
        let i = scale ? 1 : 0
        let beta = center ? try variable(s, ws, i, name: "beta", keras3Path: "vars/\(i)", legacy: "\(s.name)/beta", shape: [c], record: &rec)
            : constant("\(s.name)/beta", .filled(0, shape: [c]))
        let o = op1("LayerNormalization", [x.name, gamma, beta], [Attribute(name: "axis", value: .int(-1)),
                                                                   Attribute(name: "epsilon", value: .float(Float(double(s, "epsilon", 1e-3))))], name: s.name)
        return Value(name: o, shape: x.shape)
    }

    /// GroupNormalization on the last axis: channels-first, groups as rows of a LayerNormalization
    /// without affine part, then Keras's per-channel gamma and beta.
    mutating func groupNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let axis = s.config["axis"]?.intValue ?? -1
        guard axis == -1 || axis == x.rank - 1, let c = x.shape.last ?? nil else { throw fail(s, "only the last axis with a known size is supported") }
        let groups = try count(s, "groups", 32)
        let spatial = x.shape.dropFirst().dropLast()
        guard c % groups == 0, let area = Self.product(spatial), case let (k, o) = (c / groups).multipliedReportingOverflow(by: area), !o else {
            throw fail(s, "groups \(groups) must divide \(c) channels, spatial sizes known")
        }
        _ = try fillerCount(s, k)
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, (center ? 1 : 0) + (scale ? 1 : 0))
        var i = 0
        var gamma: String? = nil, beta: String? = nil
        if scale { gamma = try variable(s, ws, i, name: "gamma", keras3Path: "vars/\(i)", legacy: "\(s.name)/gamma", shape: [c], record: &rec); i += 1 }
        if center { beta = try variable(s, ws, i, name: "beta", keras3Path: "vars/\(i)", legacy: "\(s.name)/beta", shape: [c], record: &rec) }
        let r = x.rank
        let t = transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: s.name)
        let rows = op1("Reshape", [t.name, ints("\(s.name)/rows", [0, groups, k])], name: s.name)
        let ones = constant("\(s.name)/unit_scale", .filled(1, shape: [k]))
        let zeros = constant("\(s.name)/unit_bias", .filled(0, shape: [k]))
        let n = op1("LayerNormalization", [rows, ones, zeros], [Attribute(name: "axis", value: .int(-1)),
                                                                Attribute(name: "epsilon", value: .float(Float(double(s, "epsilon", 1e-3))))], name: s.name)
        let back = op1("Reshape", [n, ints("\(s.name)/back", [0, c] + spatial.map { $0 ?? 0 })], name: s.name)
        var y = transpose(Value(name: back, shape: t.shape), [0] + Array(2..<r) + [1], name: s.name)
        if let gamma { y = Value(name: op1("Mul", [y.name, gamma], name: s.name), shape: x.shape) }
        if let beta { y = Value(name: op1("Add", [y.name, beta], name: s.name), shape: x.shape) }
        return y
    }

    /// Normalization: (x - mean) / max(sqrt(variance), 1e-7) on the last axis, from the config's
    /// mean and variance or the adapted statistics stored as weights (mean, variance, count).
    mutating func normalization(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        if let a = s.config["axis"]?.arrayValue, a.count != 1 || !(a[0].intValue == -1 || a[0].intValue == x.rank - 1) {
            throw fail(s, "only normalising over the last axis is supported")
        }
        guard !bool(s, "invert", false) else { throw fail(s, "invert is not supported") }
        guard let c = x.shape.last ?? nil else { throw fail(s, "the last dimension is unknown") }
        _ = try fillerCount(s, c)
        let mean: String, variance: String
        func values(_ key: String) -> [Float]? {
            if let v = s.config[key]?.doubleValue { return [Float](repeating: Float(v), count: c) }
            return s.config[key]?.arrayValue?.compactMap { $0.doubleValue.map { Float($0) } }
        }
        if let m = values("mean"), let v = values("variance") {
            guard m.count == c, v.count == c else { throw fail(s, "mean/variance must have \(c) values") }
            mean = constant("\(s.name)/mean", Tensor(shape: [c], scalars: m))
            variance = constant("\(s.name)/variance", Tensor(shape: [c], scalars: v))
        } else {
            let ws = try weightsFor(s)
            try expectCount(s, ws, 3)
            mean = try variable(s, ws, 0, name: "mean", keras3Path: "vars/0", legacy: "\(s.name)/mean", shape: ws[0].shape, record: &rec)
            variance = try variable(s, ws, 1, name: "variance", keras3Path: "vars/1", legacy: "\(s.name)/variance", shape: ws[1].shape, record: &rec)
            _ = try variable(s, ws, 2, name: "count", keras3Path: "vars/2", legacy: "\(s.name)/count", shape: ws[2].shape, record: &rec)
            guard ws[0].elementCount == c, ws[1].elementCount == c else { throw fail(s, "stored mean/variance do not have \(c) values") }
        }
        let shp = ints("\(s.name)/stat_shape", [c])
        let m = op1("Reshape", [mean, shp], name: s.name), v = op1("Reshape", [variance, shp], name: s.name)
        let sd = op1("Sqrt", [v], name: s.name)
        let eps = constant("\(s.name)/epsilon", Tensor(scalar: Float(1e-7)))
        let den = op1("Max", [sd, eps], name: s.name)
        let num = op1("Sub", [x.name, m], name: s.name)
        return Value(name: op1("Div", [num, den], name: s.name), shape: x.shape)
    }

    /// Rescaling (`x * scale + offset`).
    mutating func rescaling(_ s: LayerSpec, _ x: Value) throws(KerasError) -> [Value] {
        let sc = constant("\(s.name)/scale", Tensor(scalar: Float(double(s, "scale", 1))))
        let of = constant("\(s.name)/offset", Tensor(scalar: Float(double(s, "offset", 0))))
        let m = op1("Mul", [x.name, sc], name: s.name)
        return [Value(name: op1("Add", [m, of], name: s.name), shape: x.shape)]
    }
}
