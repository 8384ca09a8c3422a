import DLKernels
import Foundation
import Testing

/// Hand-computed single-unit cases of the recurrent core.
struct RecurrentTests {
    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
    func th(_ x: Double) -> Double { Foundation.tanh(x) }

    func config(_ kind: Recurrent.Kind, _ dir: Recurrent.Direction = .forward, seq: Int = 1,
                activations: [String]? = nil) -> Recurrent.Config {
        let names = activations ?? {
            switch kind {
            case .rnn: ["Tanh"]
            case .gru: ["Sigmoid", "Tanh"]
            case .lstm: ["Sigmoid", "Tanh", "Tanh"]
            }
        }()
        let acts = Array(Array(repeating: names, count: dir.count).joined()).compactMap { Recurrent.Activation(name: $0, alpha: nil, beta: nil) }
        return Recurrent.Config(kind: kind, direction: dir, seq: seq, batch: 1, input: 1, hidden: 1, activations: acts)
    }

    @Test func rnnStepsThroughTanhWithRecurrence() {
        let r = Recurrent.run(config(.rnn, seq: 2), x: [1, 2], w: [0.5], r: [0.25], bias: [0.1, 0.2],
                              sequenceLengths: nil, initialHidden: nil, initialCell: nil, peepholes: nil)
        let h1 = th(0.5 + 0.3)
        let h2 = th(1.0 + 0.25 * h1 + 0.3)
        #expect(abs(r.y[0] - h1) < 1e-12 && abs(r.y[1] - h2) < 1e-12)
        #expect(abs(r.hidden[0] - h2) < 1e-12)
    }

    @Test func lstmGatesInSpecOrder() {
        // W rows are the i, o, f, c gates; a distinct weight per gate catches a misordering.
        let w = [1.0, 2.0, 3.0, 4.0]
        let r = Recurrent.run(config(.lstm), x: [1], w: w, r: [0, 0, 0, 0], bias: nil,
                              sequenceLengths: nil, initialHidden: nil, initialCell: [0.5], peepholes: nil)
        let i = sigmoid(1), o = sigmoid(2), f = sigmoid(3), g = th(4)
        let c = f * 0.5 + i * g
        #expect(abs(r.cell[0] - c) < 1e-12)
        #expect(abs(r.hidden[0] - o * th(c)) < 1e-12)
    }

    @Test func gruResetGateAppliesBeforeOrAfterTheRecurrentProduct() {
        // z, r, h gates; with h0 = 1 and a recurrent bias the two reset forms differ.
        let w = [0.0, 0.0, 1.0], rr = [0.0, 0.0, 2.0], b = [0, 0, 0, 0, 0, 0.5]
        var cfg = config(.gru)
        let before = Recurrent.run(cfg, x: [1], w: w, r: rr, bias: b, sequenceLengths: nil, initialHidden: [1], initialCell: nil, peepholes: nil)
        cfg.linearBeforeReset = true
        let after = Recurrent.run(cfg, x: [1], w: w, r: rr, bias: b, sequenceLengths: nil, initialHidden: [1], initialCell: nil, peepholes: nil)
        let z = 0.5, rg = 0.5
        #expect(abs(before.hidden[0] - ((1 - z) * th(1 + (rg * 1 * 2 + 0.5)) + z)) < 1e-12)
        #expect(abs(after.hidden[0] - ((1 - z) * th(1 + rg * (2 + 0.5)) + z)) < 1e-12)
    }

    @Test func sequenceLengthStopsEarlyAndReverseStartsAtTheLastValidStep() {
        let fwd = Recurrent.run(config(.rnn, seq: 3), x: [1, 2, 3], w: [1], r: [0], bias: nil,
                                sequenceLengths: [2], initialHidden: nil, initialCell: nil, peepholes: nil)
        #expect(fwd.y[2] == 0)
        #expect(abs(fwd.hidden[0] - th(2)) < 1e-12)
        let rev = Recurrent.run(config(.rnn, .reverse, seq: 3), x: [1, 2, 3], w: [1], r: [1], bias: nil,
                                sequenceLengths: [2], initialHidden: nil, initialCell: nil, peepholes: nil)
        // Reverse runs t = 1 then t = 0 and leaves t = 2 empty.
        #expect(abs(rev.y[1] - th(2)) < 1e-12 && abs(rev.y[0] - th(1 + th(2))) < 1e-12 && rev.y[2] == 0)
        #expect(abs(rev.hidden[0] - rev.y[0]) < 1e-12)
    }

    @Test func clipBoundsPreActivations() {
        var cfg = config(.rnn, activations: ["Affine"])
        cfg.clip = 0.5
        let r = Recurrent.run(cfg, x: [10], w: [1], r: [0], bias: nil, sequenceLengths: nil, initialHidden: nil, initialCell: nil, peepholes: nil)
        #expect(r.hidden[0] == 0.5)
    }

    @Test func activationParametersAndNames() {
        #expect(Recurrent.Activation(name: "LeakyRelu", alpha: nil, beta: nil) == .leakyRelu(0.01))
        #expect(Recurrent.Activation(name: "HardSigmoid", alpha: 0.1, beta: 0.2)?.apply(1) ?? 0 == 0.30000000000000004)
        #expect(Recurrent.Activation(name: "Nope", alpha: nil, beta: nil) == nil)
    }
}
