import DLKit
import DLTestSupport
import Foundation
import Testing

/// A symbolic dim name is a hint, as in ONNX Runtime: paddle2onnx names every unknown axis '?',
/// so one name stands for axes that differ at run time (fixtures/models/runtime/repeated_dims.onnx,
/// written by scripts/fixtures/make_runtime_models.py with ONNX Runtime 1.31.1 outputs).
struct RepeatedDimTests {
    static let path = TestPackage.fixture("models/runtime/repeated_dims.onnx")

    /// Inputs and ONNX Runtime outputs of run `run` (1: x 1x3x48x192, s 96x1; 2: x 2x3x8x24, s 1x5).
    static func io(_ run: Int) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        try RealModelTests.run("repeated_dims", run, folder: "runtime")
    }

    @Test func axesSharingOneNameMayDifferAsInONNXRuntime() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: Self.path))
        #expect(model.inputs.map { $0.type?.description ?? "" } == ["float32[?,3,?,?]", "float32[?,?]"])
        for run in 1...2 {
            let io = try Self.io(run)
            let got = try model.run(io.inputs)
            let want = try #require(io.outputs["y"]), have = try #require(got["y"])
            #expect(have.shape == want.shape, "run \(run)")
            #expect(allClose(have.doubles(), want.doubles(), rtol: 1e-4, atol: 1e-5),
                    "run \(run): max relative \(maxRelativeError(have.doubles(), want.doubles()))")
        }
    }

    @Test func fixedDimsAreStillChecked() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: Self.path))
        var inputs = try Self.io(2).inputs
        inputs["x"] = Tensor(zeros: .float32, shape: [2, 4, 8, 24])
        do { _ = try model.run(inputs); Issue.record("expected an error: 4 channels where the model has 3") } catch {
            #expect(error.description.contains("input 'x' has shape [2, 4, 8, 24], expected [?,3,?,?]"), "\(error.description)")
        }
    }
}
