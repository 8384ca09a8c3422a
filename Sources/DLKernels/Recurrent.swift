import CKernels
import Foundation

/// The recurrent layers of ONNX (RNN, GRU, LSTM) as pure functions over Double arrays in the
/// time-major layout: X [seq, batch, input], W [dirs, gates*hidden, input], R [dirs, gates*hidden,
/// hidden], B [dirs, 2*gates*hidden], initial states [dirs, batch, hidden], peepholes [dirs, 3*hidden].
/// Outputs: Y [seq, dirs, batch, hidden], final hidden (and cell) [dirs, batch, hidden].
public enum Recurrent {
    public enum Kind: Sendable { case rnn, gru, lstm

        public var gates: Int {
            switch self {
            case .rnn: 1
            case .gru: 3
            case .lstm: 4
            }
        }
        /// Activation functions per direction.
        public var activationCount: Int {
            switch self {
            case .rnn: 1
            case .gru: 2
            case .lstm: 3
            }
        }
    }

    /// The activation functions ONNX recurrent ops accept.
    public enum Activation: Sendable, Equatable {
        case relu, tanh, sigmoid, softsign, softplus
        case affine(Double, Double), leakyRelu(Double), thresholdedRelu(Double)
        case scaledTanh(Double, Double), hardSigmoid(Double, Double), elu(Double)

        /// The function named `name` (ONNX spelling, case-insensitive) with optional alpha/beta;
        /// nil for an unknown name.
        public init?(name: String, alpha: Double?, beta: Double?) {
            switch name.lowercased() {
            case "relu": self = .relu
            case "tanh": self = .tanh
            case "sigmoid": self = .sigmoid
            case "softsign": self = .softsign
            case "softplus": self = .softplus
            case "affine": self = .affine(alpha ?? 1, beta ?? 0)
            case "leakyrelu": self = .leakyRelu(alpha ?? 0.01)
            case "thresholdedrelu": self = .thresholdedRelu(alpha ?? 1)
            case "scaledtanh": self = .scaledTanh(alpha ?? 1, beta ?? 1)
            case "hardsigmoid": self = .hardSigmoid(alpha ?? 0.2, beta ?? 0.5)
            case "elu": self = .elu(alpha ?? 1)
            default: return nil
            }
        }

        /// Whether the function reads alpha / beta (consumes entries of the attribute lists).
        public static func takesAlpha(_ name: String) -> Bool {
            ["affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"].contains(name.lowercased())
        }
        public static func takesBeta(_ name: String) -> Bool {
            ["affine", "scaledtanh", "hardsigmoid"].contains(name.lowercased())
        }

        @inline(__always)
        public func apply(_ x: Double) -> Double {
            switch self {
            case .relu: return max(0, x)
            case .tanh: return Foundation.tanh(x)
            case .sigmoid: return 1 / (1 + exp(-x))
            case .softsign: return x / (1 + abs(x))
            case .softplus: return log1p(exp(x))
            case .affine(let a, let b): return a * x + b
            case .leakyRelu(let a): return x >= 0 ? x : a * x
            case .thresholdedRelu(let a): return x > a ? x : 0
            case .scaledTanh(let a, let b): return a * Foundation.tanh(b * x)
            case .hardSigmoid(let a, let b): return max(0, min(1, a * x + b))
            case .elu(let a): return x >= 0 ? x : a * (exp(x) - 1)
            }
        }
    }

    public enum Direction: Sendable { case forward, reverse, bidirectional
        public var count: Int { self == .bidirectional ? 2 : 1 }
    }

    public struct Config: Sendable {
        public var kind: Kind
        public var direction: Direction
        public var seq: Int, batch: Int, input: Int, hidden: Int
        /// `kind.activationCount` functions per direction, forward first.
        public var activations: [Activation]
        public var clip: Double?
        public var linearBeforeReset: Bool
        public var inputForget: Bool

        public init(kind: Kind, direction: Direction, seq: Int, batch: Int, input: Int, hidden: Int,
                    activations: [Activation], clip: Double? = nil, linearBeforeReset: Bool = false, inputForget: Bool = false) {
            self.kind = kind
            self.direction = direction
            self.seq = seq
            self.batch = batch
            self.input = input
            self.hidden = hidden
            self.activations = activations
            self.clip = clip
            self.linearBeforeReset = linearBeforeReset
            self.inputForget = inputForget
        }
    }

    public struct Result: Sendable {
        public var y: [Double]
        public var hidden: [Double]
        public var cell: [Double]
    }

    /// Runs the layer. Array sizes must match `config` (callers check); `bias`, `sequenceLengths`,
    /// `initialHidden`, `initialCell` and `peepholes` may be nil (zeros / full length).
    public static func run(_ c: Config, x: [Double], w: [Double], r: [Double], bias: [Double]?,
                           sequenceLengths: [Int]?, initialHidden: [Double]?, initialCell: [Double]?,
                           peepholes: [Double]?) -> Result {
        let dirs = c.direction.count, H = c.hidden, B = c.batch, I = c.input, G = c.kind.gates
        var y = [Double](repeating: 0, count: c.seq * dirs * B * H)
        var hOut = [Double](repeating: 0, count: dirs * B * H)
        var cOut = [Double](repeating: 0, count: dirs * B * H)
        for d in 0..<dirs {
            let reverse = c.direction == .reverse || d == 1
            let acts = Array(c.activations[(d * c.kind.activationCount)..<((d + 1) * c.kind.activationCount)])
            let f = acts[0], g = acts.count > 1 ? acts[1] : acts[0], h = acts.count > 2 ? acts[2] : acts[0]
            let wOff = d * G * H * I, rOff = d * G * H * H, bOff = d * 2 * G * H, pOff = d * 3 * H
            for b in 0..<B {
                var hPrev = [Double](repeating: 0, count: H)
                var cPrev = [Double](repeating: 0, count: H)
                if let h0 = initialHidden { for j in 0..<H { hPrev[j] = h0[(d * B + b) * H + j] } }
                if let c0 = initialCell { for j in 0..<H { cPrev[j] = c0[(d * B + b) * H + j] } }
                let len = min(c.seq, max(0, sequenceLengths?[b] ?? c.seq))
                var xw = [Double](repeating: 0, count: G * H)
                var hr = [Double](repeating: 0, count: G * H)
                for step in 0..<len {
                    let t = reverse ? len - 1 - step : step
                    let xBase = (t * B + b) * I
                    // Gate pre-activations from the input and from the previous hidden state.
                    for gate in 0..<(G * H) {
                        var s = bias.map { $0[bOff + gate] } ?? 0
                        let wRow = wOff + gate * I
                        for k in 0..<I { s += x[xBase + k] * w[wRow + k] }
                        xw[gate] = s
                        var u = bias.map { $0[bOff + G * H + gate] } ?? 0
                        let rRow = rOff + gate * H
                        for k in 0..<H { u += hPrev[k] * r[rRow + k] }
                        hr[gate] = u
                    }
                    var hNew = [Double](repeating: 0, count: H)
                    switch c.kind {
                    case .rnn:
                        for j in 0..<H { hNew[j] = f.apply(clipped(xw[j] + hr[j], c.clip)) }
                    case .gru:
                        // Gate order z, r, h.
                        var rGate = [Double](repeating: 0, count: H)
                        var zGate = [Double](repeating: 0, count: H)
                        for j in 0..<H {
                            zGate[j] = f.apply(clipped(xw[j] + hr[j], c.clip))
                            rGate[j] = f.apply(clipped(xw[H + j] + hr[H + j], c.clip))
                        }
                        for j in 0..<H {
                            let pre: Double
                            if c.linearBeforeReset {
                                pre = xw[2 * H + j] + rGate[j] * hr[2 * H + j]
                            } else {
                                var u = bias.map { $0[bOff + G * H + 2 * H + j] } ?? 0
                                let rRow = rOff + (2 * H + j) * H
                                for k in 0..<H { u += rGate[k] * hPrev[k] * r[rRow + k] }
                                pre = xw[2 * H + j] + u
                            }
                            let cand = g.apply(clipped(pre, c.clip))
                            hNew[j] = (1 - zGate[j]) * cand + zGate[j] * hPrev[j]
                        }
                    case .lstm:
                        // Gate order i, o, f, c; peepholes i, o, f.
                        var cNew = [Double](repeating: 0, count: H)
                        for j in 0..<H {
                            let pi = peepholes.map { $0[pOff + j] } ?? 0
                            let po = peepholes.map { $0[pOff + H + j] } ?? 0
                            let pf = peepholes.map { $0[pOff + 2 * H + j] } ?? 0
                            let iG = f.apply(clipped(xw[j] + hr[j] + pi * cPrev[j], c.clip))
                            var fG = f.apply(clipped(xw[2 * H + j] + hr[2 * H + j] + pf * cPrev[j], c.clip))
                            if c.inputForget { fG = 1 - iG }
                            let cG = g.apply(clipped(xw[3 * H + j] + hr[3 * H + j], c.clip))
                            cNew[j] = fG * cPrev[j] + iG * cG
                            let oG = f.apply(clipped(xw[H + j] + hr[H + j] + po * cNew[j], c.clip))
                            hNew[j] = oG * h.apply(cNew[j])
                        }
                        cPrev = cNew
                    }
                    hPrev = hNew
                    for j in 0..<H { y[((t * dirs + d) * B + b) * H + j] = hNew[j] }
                }
                for j in 0..<H {
                    hOut[(d * B + b) * H + j] = hPrev[j]
                    cOut[(d * B + b) * H + j] = cPrev[j]
                }
            }
        }
        return Result(y: y, hidden: hOut, cell: cOut)
    }

    @inline(__always)
    static func clipped(_ v: Double, _ clip: Double?) -> Double {
        guard let clip else { return v }
        return min(clip, max(-clip, v))
    }
}

extension Recurrent {
    /// One LSTM time step's gate math in float32 for `rows` batch rows, fused into one pass over
    /// each row: with the pre-activations of row b at `gates + b * gateStride` in ONNX order
    /// (input, output, forget, cell; `hidden` each, already `x·Wᵀ + h·Rᵀ + biases`),
    /// `c = σ(f) * c + σ(i) * tanh(z)` and `h = σ(o) * tanh(c)`, written to `h` (row stride
    /// `hidden`) and to `out` (row stride `outStride`). Default activations, no peepholes, no clip.
    ///
    /// Eight lanes at a time with σ and tanh as one rational function each
    /// (`VectorMath.tanhRational`, within 4e-7 of tanh): five of them per cell and step are most
    /// of an LSTM's time outside its GEMMs, and the exp-based forms of `Elementwise` took twice as
    /// long. The AVX-512 kernel agrees to an ulp or two. The gate buffer is left holding spent values.
    ///
    /// `units` (default all `hidden`) computes only the first `units` cells of each row, with
    /// every pointer moved to the slice's first cell and the strides unchanged: each cell's bits
    /// are the same whichever slice computes it.
    public static func lstmCellFloat(
        gates: UnsafeMutablePointer<Float>, gateStride: Int,
        c: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int, rows: Int, hidden: Int, units: Int? = nil
    ) {
        let units = min(units ?? hidden, hidden)
        if CPUFeatures.avx512, rows <= Int(Int32.max), hidden <= Int(Int32.max) / 4 {
            // The same formulas sixteen lanes wide (this Swift compiles to 4-lane SSE).
            dlk_lstm_cell(gates, gateStride, c, h, out, outStride, Int32(rows), Int32(hidden), Int32(units))
            return
        }
        @inline(__always) func cell(_ i: SIMD8<Float>, _ o: SIMD8<Float>, _ f: SIMD8<Float>, _ z: SIMD8<Float>,
                                    _ cPrev: SIMD8<Float>) -> (c: SIMD8<Float>, h: SIMD8<Float>) {
            let cNew = VectorMath.sigmoidRational(f) * cPrev + VectorMath.sigmoidRational(i) * VectorMath.tanhRational(z)
            return (cNew, VectorMath.sigmoidRational(o) * VectorMath.tanhRational(cNew))
        }
        for b in 0..<rows {
            let g = gates + b * gateStride, cb = c + b * hidden, hb = h + b * hidden, ob = out + b * outStride
            var j = 0
            while j + 8 <= units {
                let r = cell(.load(g + j), .load(g + hidden + j), .load(g + 2 * hidden + j), .load(g + 3 * hidden + j), .load(cb + j))
                r.c.store(cb + j)
                r.h.store(hb + j)
                r.h.store(ob + j)
                j += 8
            }
            while j < units {
                let r = cell(SIMD8(repeating: g[j]), SIMD8(repeating: g[hidden + j]), SIMD8(repeating: g[2 * hidden + j]),
                             SIMD8(repeating: g[3 * hidden + j]), SIMD8(repeating: cb[j]))
                cb[j] = r.c[0]
                hb[j] = r.h[0]
                ob[j] = r.h[0]
                j += 1
            }
        }
    }
}
