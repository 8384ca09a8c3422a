import DLKernels
import DLTensor
import DLTraining
import Foundation
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

    /// 37 elements: two full vectors and a tail of 5; 40,005 split over two workers (in runs of
    /// whole vectors, the tail in the last).
    @Test(.enabled(if: CPUFeatures.avx512Present), arguments: 0..<4, [37, 40_005])
    func adamStepsMatchTheScalarLoop(_ which: Int, count: Int) {
        let (name, config) = Self.configs[which]
        // Values of no pattern a vector would hide.
        func values(_ phase: Int, scale: Float = 1) -> [Float] {
            (0..<count).map { i in scale * Float(sin(Double(i * 7 + phase * 13 + which) * 1.37)) }
        }
        let start = Tensor(shape: [count], scalars: values(0))
        var vectorised = (Optimizer(config: config), start)
        var scalar = (Optimizer(config: config), start)
        for step in 1...4 {
            var g = values(step, scale: 3)
            g[3] = 0
            let grad = Tensor(shape: [count], scalars: g)
            ParallelFor.withWorkerCount(2) { vectorised.0.update(name: "w", param: &vectorised.1, grad: grad) }
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
