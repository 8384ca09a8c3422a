import DLKit
import DLTensor
import DLTestSupport
import DLTorch
import Testing

/// Optimizer state dicts with odd values (fuzz-torch-optimizer's grammar, by hand): the import
/// dltrain uses answers with an error or a state, never a crash.
@Suite struct TorchOptimizerImportTests {
    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, -5])
    func oddStepIsRefusedOrRead(step: Double) throws {
        let tmp = TemporaryFolder()
        let slots = ["w": ["step": Tensor(shape: [], scalars: [step]), "exp_avg": Tensor(zeros: .float32, shape: [2]),
                           "exp_avg_sq": Tensor(zeros: .float32, shape: [2])]]
        let value = TorchOptimizerState(kind: .adam, parameterNames: ["w"], slots: slots).torchValue
        try TorchWriter.write(value, to: tmp.file("opt.pt"))
        do {
            let s = try TrainingSession.importTorch(path: tmp.file("opt.pt"), parameters: ["w"], shapes: ["w": [2]])
            Issue.record("step \(step) was read as \(s.step)")
        } catch {
            #expect("\(error)".contains("step"), "\(error)")
        }
    }
}
