import DLKit
import DLSafeTensors
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// `dlconvert verify` and `dlserve` on a paddle2onnx-style model whose unknown axes are all named
/// '?' (fixtures/models/runtime/repeated_dims.onnx): they run it as ONNX Runtime does.
struct RepeatedDimCLITests {
    let model = TestPackage.fixture("models/runtime/repeated_dims.onnx")

    @Test func verifyRunsAxesThatShareAName() throws {
        let r = try runProcess(TestPackage.tool("dlconvert"),
                               ["verify", model, model, "--input-shape", "x=1,3,48,192", "--input-shape", "s=96,1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try parseJSON(r.stdout)
        guard case .array(let outputs)? = json["outputs"], let y = outputs.first else { Issue.record("\(r.stdout)"); return }
        #expect(y["shape"] == .array([.int(1), .int(96), .int(5)]), "\(r.stdout)")
    }

    @Test func serveAnswersWithONNXRuntimesValues() throws {
        let file = try SafeTensorsFile(path: TestPackage.fixture("models/runtime/repeated_dims.io.safetensors"))
        let tensors = Dictionary(uniqueKeysWithValues: try file.tensors().map { ($0.0, $0.1) })
        let x = try #require(tensors["input2.x"]), s = try #require(tensors["input2.s"]), want = try #require(tensors["output2.y"])
        func input(_ name: String, _ t: Tensor) -> String {
            let data = t.doubles().map { JSON.float(Float($0)).serialized() }.joined(separator: ",")
            return #"{"name":"\#(name)","shape":[\#(t.shape.map(String.init).joined(separator: ","))],"datatype":"FP32","data":[\#(data)]}"#
        }
        let r = try serve([model], [#"{"id":"q","inputs":[\#(input("x", x)),\#(input("s", s))]}"#])
        #expect(r.status == 0, "\(r.stderr)")
        guard case .array(let outs)? = r.answers.first?["outputs"], let y = outs.first,
              case .array(let values)? = y["data"] else { Issue.record("\(r.answers) \(r.stderr)"); return }
        #expect(y["shape"] == .array(want.shape.map { .int($0) }))
        let got = values.compactMap { v -> Double? in if case .number(let n) = v { Double(n) } else { nil } }
        #expect(got.count == want.elementCount)
        #expect(allClose(got, want.doubles(), rtol: 1e-4, atol: 1e-5), "max relative \(maxRelativeError(got, want.doubles()))")
    }
}
