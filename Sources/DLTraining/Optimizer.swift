import DLTensor
import Foundation

/// The four optimizers, with PyTorch's names.
public enum OptimizerKind: String, Sendable, CaseIterable {
    case sgd, rmsprop, adam, adamw
}

/// Hyperparameters, with torch 2.13's defaults for each kind.
public struct OptimizerConfig: Sendable, Equatable {
    public var kind: OptimizerKind
    public var lr: Double
    public var momentum: Double = 0
    public var dampening: Double = 0
    public var nesterov: Bool = false
    public var weightDecay: Double = 0
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var alpha: Double = 0.99
    public var centered: Bool = false
    public var amsgrad: Bool = false

    public init(kind: OptimizerKind) {
        self.kind = kind
        switch kind {
        case .sgd: lr = 1e-3
        case .rmsprop: lr = 1e-2
        case .adam: lr = 1e-3
        case .adamw: lr = 1e-3; weightDecay = 1e-2
        }
    }

    /// The hyperparameters that matter for this kind, by PyTorch's group key.
    public var values: [(key: String, value: Double)] {
        switch kind {
        case .sgd:
            [("lr", lr), ("momentum", momentum), ("dampening", dampening), ("nesterov", nesterov ? 1 : 0), ("weight_decay", weightDecay)]
        case .rmsprop:
            [("lr", lr), ("alpha", alpha), ("eps", eps), ("momentum", momentum), ("centered", centered ? 1 : 0), ("weight_decay", weightDecay)]
        case .adam, .adamw:
            [("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps), ("weight_decay", weightDecay), ("amsgrad", amsgrad ? 1 : 0)]
        }
    }

    /// Sets a hyperparameter by the key `values` uses; false for an unknown key.
    @discardableResult
    public mutating func set(_ key: String, _ v: Double) -> Bool {
        switch key {
        case "lr": lr = v
        case "momentum": momentum = v
        case "dampening": dampening = v
        case "nesterov": nesterov = v != 0
        case "weight_decay": weightDecay = v
        case "beta1": beta1 = v
        case "beta2": beta2 = v
        case "eps": eps = v
        case "alpha": alpha = v
        case "centered": centered = v != 0
        case "amsgrad": amsgrad = v != 0
        default: return false
        }
        return true
    }

    /// A reason the combination is invalid (as PyTorch's constructors refuse it), or nil.
    public var problem: String? {
        if !(lr >= 0) { return "learning rate \(lr) must be >= 0" }
        if kind == .sgd && nesterov && (momentum <= 0 || dampening != 0) { return "nesterov momentum needs momentum > 0 and dampening 0" }
        if kind == .adam || kind == .adamw {
            if !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) { return "betas (\(beta1), \(beta2)) must be in [0, 1)" }
        }
        if !(eps >= 0) { return "eps \(eps) must be >= 0" }
        if !(weightDecay >= 0) { return "weight decay \(weightDecay) must be >= 0" }
        if !(momentum >= 0) { return "momentum \(momentum) must be >= 0" }
        if kind == .rmsprop && !(alpha >= 0) { return "alpha \(alpha) must be >= 0" }
        return nil
    }
}

/// An optimizer applying PyTorch's single-tensor update rules (`foreach=False`) in float32, with
/// the same order of operations, so that trajectories match torch's to rounding.
///
/// Slots use PyTorch's names (`momentum_buffer`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`,
/// `square_avg`, `grad_avg`, and `step` as a 0-dim float32 tensor) so state moves both ways.
public struct Optimizer: Sendable {
    public var config: OptimizerConfig
    /// Parameter name → slot name → tensor.
    public var slots: [String: [String: Tensor]]

    public init(config: OptimizerConfig, slots: [String: [String: Tensor]] = [:]) {
        self.config = config
        self.slots = slots
    }

    /// The slot names this optimizer keeps for a parameter.
    public var slotNames: [String] {
        switch config.kind {
        case .sgd: config.momentum != 0 ? ["momentum_buffer"] : []
        case .rmsprop: ["step", "square_avg"] + (config.momentum > 0 ? ["momentum_buffer"] : []) + (config.centered ? ["grad_avg"] : [])
        case .adam, .adamw: ["step", "exp_avg", "exp_avg_sq"] + (config.amsgrad ? ["max_exp_avg_sq"] : [])
        }
    }

    /// Updates `param` in place from `grad` (same shape, float32).
    public mutating func update(name: String, param: inout Tensor, grad: Tensor) {
        var s = slots[name] ?? [:]
        let n = param.elementCount
        var p = param.scalars(as: Float.self)
        var g = grad.scalars(as: Float.self)
        func slot(_ key: String) -> [Float]? { s[key]?.scalars(as: Float.self) }
        func put(_ key: String, _ v: [Float]) { s[key] = Tensor(shape: param.shape, scalars: v) }
        let c = config
        switch c.kind {
        case .sgd:
            if c.weightDecay != 0 {
                let wd = Float(c.weightDecay)
                for i in 0..<n { g[i] = g[i] + wd * p[i] }
            }
            if c.momentum != 0 {
                let m = Float(c.momentum), d = Float(1 - c.dampening)
                var buf: [Float]
                if let b = slot("momentum_buffer") {
                    buf = b
                    for i in 0..<n { buf[i] = buf[i] * m + d * g[i] }
                } else {
                    buf = g
                }
                put("momentum_buffer", buf)
                if c.nesterov {
                    for i in 0..<n { g[i] = g[i] + m * buf[i] }
                } else {
                    g = buf
                }
            }
            let a = Float(-c.lr)
            for i in 0..<n { p[i] = p[i] + a * g[i] }
        case .rmsprop:
            let step = (slot("step")?.first ?? 0) + 1
            s["step"] = Tensor(scalar: step)
            if c.weightDecay != 0 {
                let wd = Float(c.weightDecay)
                for i in 0..<n { g[i] = g[i] + wd * p[i] }
            }
            var sq = slot("square_avg") ?? [Float](repeating: 0, count: n)
            let alpha = Float(c.alpha), oneMinus = Float(1 - c.alpha)
            for i in 0..<n { sq[i] = sq[i] * alpha; sq[i] = sq[i] + oneMinus * g[i] * g[i] }
            put("square_avg", sq)
            var avg = [Float](repeating: 0, count: n)
            if c.centered {
                var ga = slot("grad_avg") ?? [Float](repeating: 0, count: n)
                for i in 0..<n { ga[i] = lerp(ga[i], g[i], weight: oneMinus) }
                put("grad_avg", ga)
                for i in 0..<n { avg[i] = (sq[i] + -1 * ga[i] * ga[i]).squareRoot() }
            } else {
                for i in 0..<n { avg[i] = sq[i].squareRoot() }
            }
            let eps = Float(c.eps)
            for i in 0..<n { avg[i] = avg[i] + eps }
            if c.momentum > 0 {
                var buf = slot("momentum_buffer") ?? [Float](repeating: 0, count: n)
                let m = Float(c.momentum)
                for i in 0..<n { buf[i] = buf[i] * m; buf[i] = buf[i] + g[i] / avg[i] }
                put("momentum_buffer", buf)
                let a = Float(-c.lr)
                for i in 0..<n { p[i] = p[i] + a * buf[i] }
            } else {
                let a = Float(-c.lr)
                for i in 0..<n { p[i] = p[i] + a * (g[i] / avg[i]) }
            }
        case .adam, .adamw:
            let stepValue = (slot("step")?.first ?? 0) + 1
            s["step"] = Tensor(scalar: stepValue)
            if c.weightDecay != 0 {
                if c.kind == .adamw {
                    let f = Float(1 - c.lr * c.weightDecay)
                    for i in 0..<n { p[i] = p[i] * f }
                } else {
                    let wd = Float(c.weightDecay)
                    for i in 0..<n { g[i] = g[i] + wd * p[i] }
                }
            }
            var m = slot("exp_avg") ?? [Float](repeating: 0, count: n)
            var v = slot("exp_avg_sq") ?? [Float](repeating: 0, count: n)
            let w1 = Float(1 - c.beta1), b2 = Float(c.beta2), w2 = Float(1 - c.beta2)
            for i in 0..<n {
                m[i] = lerp(m[i], g[i], weight: w1)
                v[i] = v[i] * b2
                v[i] = v[i] + w2 * g[i] * g[i]
            }
            put("exp_avg", m)
            put("exp_avg_sq", v)
            let step = Double(stepValue)
            let bc1 = 1 - pow(c.beta1, step), bc2 = 1 - pow(c.beta2, step)
            let stepSize = c.lr / bc1
            let bc2Sqrt = Float(bc2.squareRoot())
            var second = v
            if c.amsgrad {
                var mx = slot("max_exp_avg_sq") ?? [Float](repeating: 0, count: n)
                for i in 0..<n { mx[i] = max(mx[i], v[i]) }
                put("max_exp_avg_sq", mx)
                second = mx
            }
            let eps = Float(c.eps), a = Float(-stepSize)
            for i in 0..<n {
                let denom = second[i].squareRoot() / bc2Sqrt + eps
                p[i] = p[i] + a * (m[i] / denom)
            }
        }
        slots[name] = s
        param = Tensor(shape: param.shape, scalars: p)
    }

    /// PyTorch's `lerp`: two formulas depending on the weight, for accuracy at both ends.
    @inline(__always)
    func lerp(_ a: Float, _ b: Float, weight w: Float) -> Float {
        abs(w) < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
    }
}
