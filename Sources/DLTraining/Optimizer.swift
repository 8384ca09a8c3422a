import DLTensor
import DLKernels
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

    /// Updates `param` in place from `grad` (same shape, float32). Works on the tensors' buffers
    /// (slots are updated in place), with PyTorch's operation order.
    public mutating func update(name: String, param: inout Tensor, grad: Tensor) {
        // Taken out of `slots` so each slot tensor has one reference and is updated in place.
        var s = slots.removeValue(forKey: name) ?? [:]
        let n = param.elementCount
        let shape = param.shape
        let c = config
        // The gradient after weight decay (a private copy only when it changes).
        var g = grad
        func zeros() -> Tensor { Tensor(zeros: .float32, shape: shape) }
        func stepCount() -> Float {
            let v = (s["step"].map { $0.doubles().first.map { Float($0) } ?? 0 } ?? 0) + 1
            s["step"] = Tensor(scalar: v)
            return v
        }
        param.withUnsafeMutableBufferPointer(as: Float.self) { p in
            if c.weightDecay != 0 && !(c.kind == .adamw) {
                let wd = Float(c.weightDecay)
                g.withUnsafeMutableBufferPointer(as: Float.self) { gb in
                    for i in 0..<n { gb[i] = gb[i] + wd * p[i] }
                }
            }
            switch c.kind {
            case .sgd:
                let a = Float(-c.lr)
                if c.momentum != 0 {
                    let m = Float(c.momentum), d = Float(1 - c.dampening)
                    var buf: Tensor
                    let saved = s["momentum_buffer"]
                    s["momentum_buffer"] = nil  // so `b` below is the buffer's only reference (no copy)
                    if var b = saved {
                        g.withUnsafeBufferPointer(as: Float.self) { gb in
                            b.withUnsafeMutableBufferPointer(as: Float.self) { bb in
                                for i in 0..<n { bb[i] = bb[i] * m + d * gb[i] }
                            }
                        }
                        buf = b
                    } else {
                        buf = Tensor(shape: shape, scalars: g.scalars(as: Float.self))
                    }
                    s["momentum_buffer"] = nil
                    buf.withUnsafeBufferPointer(as: Float.self) { bb in
                        g.withUnsafeBufferPointer(as: Float.self) { gb in
                            if c.nesterov {
                                for i in 0..<n { p[i] = p[i] + a * (gb[i] + m * bb[i]) }
                            } else {
                                for i in 0..<n { p[i] = p[i] + a * bb[i] }
                            }
                        }
                    }
                    s["momentum_buffer"] = buf
                } else {
                    g.withUnsafeBufferPointer(as: Float.self) { gb in
                        for i in 0..<n { p[i] = p[i] + a * gb[i] }
                    }
                }
            case .rmsprop:
                _ = stepCount()
                var sq = s["square_avg"] ?? zeros()
                s["square_avg"] = nil
                let alpha = Float(c.alpha), oneMinus = Float(1 - c.alpha), eps = Float(c.eps), a = Float(-c.lr)
                var ga = c.centered ? (s["grad_avg"] ?? zeros()) : Tensor(zeros: .float32, shape: [0])
                s["grad_avg"] = nil
                var buf = c.momentum > 0 ? (s["momentum_buffer"] ?? zeros()) : Tensor(zeros: .float32, shape: [0])
                s["momentum_buffer"] = nil
                let m = Float(c.momentum)
                g.withUnsafeBufferPointer(as: Float.self) { gb in
                sq.withUnsafeMutableBufferPointer(as: Float.self) { sb in
                ga.withUnsafeMutableBufferPointer(as: Float.self) { gab in
                buf.withUnsafeMutableBufferPointer(as: Float.self) { bb in
                    for i in 0..<n {
                        sb[i] = sb[i] * alpha
                        sb[i] = sb[i] + oneMinus * gb[i] * gb[i]
                        var avg: Float
                        if c.centered {
                            gab[i] = lerp(gab[i], gb[i], weight: oneMinus)
                            avg = (sb[i] + -1 * gab[i] * gab[i]).squareRoot()
                        } else {
                            avg = sb[i].squareRoot()
                        }
                        avg = avg + eps
                        if c.momentum > 0 {
                            bb[i] = bb[i] * m
                            bb[i] = bb[i] + gb[i] / avg
                            p[i] = p[i] + a * bb[i]
                        } else {
                            p[i] = p[i] + a * (gb[i] / avg)
                        }
                    }
                }}}}
                s["square_avg"] = sq
                if c.centered { s["grad_avg"] = ga }
                if c.momentum > 0 { s["momentum_buffer"] = buf }
            case .adam, .adamw:
                let step = Double(stepCount())
                let decay = c.kind == .adamw && c.weightDecay != 0 ? Float(1 - c.lr * c.weightDecay) : 1
                var m = s["exp_avg"] ?? zeros(), v = s["exp_avg_sq"] ?? zeros()
                // Without amsgrad the max slot is never read: an empty tensor, not a zeroed copy per step.
                var mx = c.amsgrad ? (s["max_exp_avg_sq"] ?? zeros()) : Tensor(zeros: .float32, shape: [0])
                s["exp_avg"] = nil; s["exp_avg_sq"] = nil; s["max_exp_avg_sq"] = nil
                let w1 = Float(1 - c.beta1), b2 = Float(c.beta2), w2 = Float(1 - c.beta2)
                let bc1 = 1 - Foundation.pow(c.beta1, step), bc2 = 1 - Foundation.pow(c.beta2, step)
                let a = Float(-(c.lr / bc1))
                let bc2Sqrt = Float(bc2.squareRoot())
                let eps = Float(c.eps)
                g.withUnsafeBufferPointer(as: Float.self) { gb in
                m.withUnsafeMutableBufferPointer(as: Float.self) { mb in
                v.withUnsafeMutableBufferPointer(as: Float.self) { vb in
                mx.withUnsafeMutableBufferPointer(as: Float.self) { xb in
                    if let pp = p.baseAddress, let gp = gb.baseAddress, let mp = mb.baseAddress, let vp = vb.baseAddress,
                       OptimizerKernels.adam(count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp,
                                             maxExpAvgSq: c.amsgrad ? xb.baseAddress : nil, decay: decay, w1: w1, b2: b2,
                                             w2: w2, bc2Sqrt: bc2Sqrt, eps: eps, a: a) {
                        return
                    }
                    for i in 0..<n {
                        if decay != 1 { p[i] = p[i] * decay }
                        mb[i] = lerp(mb[i], gb[i], weight: w1)
                        vb[i] = vb[i] * b2
                        vb[i] = vb[i] + w2 * gb[i] * gb[i]
                        var second = vb[i]
                        if c.amsgrad {
                            xb[i] = max(xb[i], vb[i])
                            second = xb[i]
                        }
                        let denom = second.squareRoot() / bc2Sqrt + eps
                        p[i] = p[i] + a * (mb[i] / denom)
                    }
                }}}}
                s["exp_avg"] = m
                s["exp_avg_sq"] = v
                if c.amsgrad { s["max_exp_avg_sq"] = mx }
            }
        }
        slots[name] = s
    }

    /// PyTorch's `lerp`: two formulas depending on the weight, for accuracy at both ends.
    @inline(__always)
    func lerp(_ a: Float, _ b: Float, weight w: Float) -> Float {
        abs(w) < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
    }
}
