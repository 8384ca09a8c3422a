import DLGraph
import DLSupport
import DLTensor

/// Keras activations: by name (`activation="relu"`) and as layers (ReLU, PReLU, ...).
extension GraphBuilder {
    static func activationName(_ j: JSON?) -> String? {
        if j == nil || j?.isNull == true { return "linear" }
        if let s = j?.stringValue { return s }
        if let c = j?["config"]?.stringValue { return c }
        if let c = j?["config"]?["name"]?.stringValue { return c }
        if let c = j?["class_name"]?.stringValue { return snakeCase(c) }
        return nil
    }

    static let knownActivations: Set<String> = [
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign", "exponential",
        "hard_sigmoid", "swish", "silu", "gelu", "relu6", "leaky_relu", "log_softmax", "mish", "hard_silu", "hard_swish",
    ]

    static func lambdaActivation(_ cfg: JSON) -> String? {
        let f = cfg["function"]
        var name: String? = f?.stringValue
        if name == nil, f?["class_name"]?.stringValue == "function" { name = f?["config"]?.stringValue }
        if let n = name?.split(separator: ".").last.map(String.init), knownActivations.contains(n) { return n }
        return nil
    }

    mutating func activate(_ x: Value, _ act: String, name: String, layer: LayerSpec) throws(KerasError) -> Value {
        func un(_ op: String, _ attrs: [Attribute] = []) -> Value {
            Value(name: op1(op, [x.name], attrs, name: name), shape: x.shape, dtype: x.dtype)
        }
        switch act {
        case "linear": return x
        case "relu": return un("Relu")
        case "sigmoid": return un("Sigmoid")
        case "tanh": return un("Tanh")
        case "softmax": return un("Softmax", [Attribute(name: "axis", value: .int(-1))])
        case "log_softmax": return un("LogSoftmax", [Attribute(name: "axis", value: .int(-1))])
        case "elu": return un("Elu", [Attribute(name: "alpha", value: .float(1))])
        case "selu": return un("Selu", [Attribute(name: "alpha", value: .float(1.67326324)), Attribute(name: "gamma", value: .float(1.05070098))])
        case "softplus": return un("Softplus")
        case "softsign": return un("Softsign")
        case "exponential": return un("Exp")
        case "mish": return un("Mish")
        case "gelu": return un("Gelu", [Attribute(name: "approximate", value: .string(keras3 ? "none" : "none"))])
        case "hard_sigmoid":
            return un("HardSigmoid", [Attribute(name: "alpha", value: .float(keras3 ? Float(1.0 / 6.0) : 0.2)), Attribute(name: "beta", value: .float(0.5))])
        case "hard_silu", "hard_swish": return un("HardSwish")
        case "leaky_relu": return un("LeakyRelu", [Attribute(name: "alpha", value: .float(0.2))])
        case "relu6":
            let lo = constant("\(name)/min", Tensor(scalar: Float(0))), hi = constant("\(name)/max", Tensor(scalar: Float(6)))
            return Value(name: op1("Clip", [x.name, lo, hi], name: name), shape: x.shape, dtype: x.dtype)
        case "swish", "silu":
            let sg = op1("Sigmoid", [x.name], name: name)
            return Value(name: op1("Mul", [x.name, sg], name: name), shape: x.shape, dtype: x.dtype)
        default: throw fail(layer, "activation '\(act)' is not supported")
        }
    }

    mutating func activation(_ s: LayerSpec, _ x: Value) throws(KerasError) -> Value {
        guard let a = Self.activationName(s.config["activation"]) else { throw fail(s, "unreadable activation") }
        return try activate(x, a, name: s.name, layer: s)
    }

    /// Activation layers (ReLU, LeakyReLU, ELU, Softmax, PReLU, a Lambda that names an activation).
    mutating func activationLayer(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> [Value] {
        switch s.className {
        case "Lambda":
            guard let a = Self.lambdaActivation(s.config) else { throw fail(s, "unsupported Lambda") }
            return [try activate(x, a, name: s.name, layer: s)]
        case "ReLU":
            let maxV = s.config["max_value"]?.doubleValue
            let slope = double(s, "negative_slope", 0), thr = double(s, "threshold", 0)
            guard thr == 0 else { throw fail(s, "threshold \(thr) is not supported") }
            var y = slope == 0 ? Value(name: op1("Relu", [x.name], name: s.name), shape: x.shape)
                : Value(name: op1("LeakyRelu", [x.name], [Attribute(name: "alpha", value: .float(Float(slope)))], name: s.name), shape: x.shape)
            if let m = maxV {
                let hi = constant("\(s.name)/max_value", Tensor(scalar: Float(m)))
                y = Value(name: op1("Min", [y.name, hi], name: s.name), shape: x.shape)
            }
            return [y]
        case "LeakyReLU":
            let a = s.config["negative_slope"]?.doubleValue ?? s.config["alpha"]?.doubleValue ?? 0.3
            return [Value(name: op1("LeakyRelu", [x.name], [Attribute(name: "alpha", value: .float(Float(a)))], name: s.name), shape: x.shape)]
        case "ELU":
            return [Value(name: op1("Elu", [x.name], [Attribute(name: "alpha", value: .float(Float(double(s, "alpha", 1))))], name: s.name), shape: x.shape)]
        case "Softmax":
            let axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.first?.intValue ?? -1
            return [Value(name: op1("Softmax", [x.name], [Attribute(name: "axis", value: .int(axis))], name: s.name), shape: x.shape)]
        case "PReLU":
            let ws = stored(s)
            try expectCount(s, ws, 1)
            var shape = Array(x.shape.dropFirst()).map { $0 ?? 1 }
            for a in s.config["shared_axes"]?.arrayValue?.compactMap(\.intValue) ?? [] where a >= 1 && a <= shape.count { shape[a - 1] = 1 }
            let alpha = try variable(s, ws, 0, name: "alpha", keras3Path: "vars/0", legacy: "\(s.name)/alpha", shape: shape, record: &rec)
            return [Value(name: op1("PRelu", [x.name, alpha], name: s.name), shape: x.shape)]
        default:
            throw .unsupportedLayers(path: path, layers: ["\(s.className) '\(s.name)'"])
        }
    }
}
