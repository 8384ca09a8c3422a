import DLKernels
import DLTensor
import DLTraining
import Testing

/// The AVX-512 Adam step against the scalar loop it stands for: the same bits, step after step,
/// for Adam, AdamW, amsgrad and both of `lerp`'s formulas (beta1 0.3 takes the second).
struct OptimizerKernelTests {
    static let configs: [(String, OptimizerConfig)] = {
        var adam = OptimizerConfig(kind: .adam)
        adam.lr = 0.01
        var adamw = OptimizerConfig(kind: .adamw)
        adamw.weightDecay = 0.05
        var ams = OptimizerConfig(kind: .adam)
        ams.amsgrad = true
        ams.weightDecay = 0.01
        var lowBeta = OptimizerConfig(kind: .adamw)
        lowBeta.beta1 = 0.3
        lowBeta.amsgrad = true
        return [("adam", adam), ("adamw", adamw), ("adam amsgrad, L2", ams), ("adamw amsgrad, beta1 0.3", lowBeta)]
    }()

    @Test(.enabled(if: CPUFeatures.avx512Present), arguments: 0..<4)
    func adamStepsMatchTheScalarLoop(_ which: Int) {
        let (name, config) = Self.configs[which]
        // 37 elements: two full vectors and a tail of 5.
        var rng = SplitMix(seed: UInt64(11 + which))
        let start = Tensor(shape: [37], scalars: (0..<37).map { _ in rng.float() })
        var vectorised = (Optimizer(config: config), start)
        var scalar = (Optimizer(config: config), start)
        for _ in 0..<4 {
            let grad = Tensor(shape: [37], scalars: (0..<37).map { i in i == 3 ? 0 : rng.float() * 3 })
            vectorised.0.update(name: "w", param: &vectorised.1, grad: grad)
            KernelOptions.with(KernelOptions(avx512: false)) {
                scalar.0.update(name: "w", param: &scalar.1, grad: grad)
            }
            #expect(vectorised.1.bitwiseEqual(scalar.1), "\(name)")
        }
        for slot in ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] {
            let a = vectorised.0.slots["w"]?[slot], b = scalar.0.slots["w"]?[slot]
            #expect((a == nil) == (b == nil) && (a.map { b.map($0.bitwiseEqual) ?? false } ?? true), "\(name) \(slot)")
        }
    }
}

/// A small deterministic generator: floats in [-1, 1).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func float() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
}
