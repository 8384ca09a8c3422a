import DLGraph
import DLRuntime
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Kernels of the breadth families on small hand-checked cases; the ONNX node suite
/// (scripts/conformance) checks them at scale.
@Suite struct BreadthKernelTests {
    @Test func slice_withNegativeStepReversesAndClamps() throws {
        let x = f32([5], [0, 1, 2, 3, 4])
        let y = try runOne("Slice", [x, Tensor(shape: [1], scalars: [Int64(10)]), Tensor(shape: [1], scalars: [Int64(-10)]),
                                     Tensor(shape: [1], scalars: [Int64(0)]), Tensor(shape: [1], scalars: [Int64(-2)])])
        #expect(y.scalars(as: Float.self) == [4, 2, 0])
    }

    @Test func gather_rejectsIndicesOutOfRangeNamingTheNode() throws {
        let x = f32([3], [1, 2, 3])
        do {
            _ = try runOne("Gather", [x, Tensor(shape: [1], scalars: [Int64(3)])])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("out of range"))
        }
    }

    @Test func pad_reflectMirrorsWithoutRepeatingTheEdge() throws {
        let x = f32([3], [1, 2, 3])
        let y = try runOne("Pad", [x, Tensor(shape: [2], scalars: [Int64(2), Int64(2)])],
                           attributes: [Attribute(name: "mode", value: .string("reflect"))])
        #expect(y.scalars(as: Float.self) == [3, 2, 1, 2, 3, 2, 1])
    }

    /// float32 reflect, edge and wrap padding (and cropping) run row by row; float64 takes the
    /// general gather map: both give the same values, on every axis of a 3-D tensor at once.
    @Test(arguments: [("reflect", [1, 2, 3, 0, 1, 2] as [Int64]), ("edge", [2, 0, 1, 1, 3, 2]), ("wrap", [1, 1, 2, 2, 0, 3]),
                      ("constant", [0, -1, 0, 0, 0, -2])])
    func pad_float32RowsMatchTheGeneralPath(_ mode: String, _ pads: [Int64]) throws {
        let values = (0..<(3 * 4 * 5)).map { Float($0) * 0.5 - 7 }
        let x = f32([3, 4, 5], values)
        let p = Tensor(shape: [6], scalars: pads)
        let attributes = [Attribute(name: "mode", value: .string(mode))]
        let fast = try runOne("Pad", [x, p], attributes: attributes)
        let general = try runOne("Pad", [x.converted(to: .float64), p], attributes: attributes)
        #expect(fast.dtype == .float32 && fast.shape == general.shape)
        #expect(fast.doubles() == general.doubles())
        // Spot check: reflect's first plane is input plane 1 (pads before axis 0: 1).
        if mode == "reflect" { #expect(fast.shape == [3 + 1, 4 + 2 + 1, 5 + 3 + 2]) }
    }

    @Test func reduceSum_overInt64KeepsExactValues() throws {
        let big = Int64(1) << 60
        let x = Tensor(shape: [2, 2], scalars: [big, 1, big, 2])
        let y = try runOne("ReduceSum", [x, Tensor(shape: [1], scalars: [Int64(0)])],
                           attributes: [Attribute(name: "keepdims", value: .int(0))])
        #expect(y.scalars(as: Int64.self) == [2 * big, 3])
    }

    @Test func topK_breaksTiesByLowerIndex() throws {
        let x = f32([4], [1, 3, 3, 2])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.fixed(4)]))],
                      outputs: [ValueInfo(name: "v", type: nil), ValueInfo(name: "i", type: nil)],
                      nodes: [Node(name: "t", opType: "TopK", inputs: ["x", "k"], outputs: ["v", "i"])],
                      initializers: NamedTensors([("k", Tensor(shape: [1], scalars: [Int64(2)]))]))
        let out = try Executor(graph: g).run(["x": x])
        #expect(out["v"]?.scalars(as: Float.self) == [3, 3])
        #expect(out["i"]?.scalars(as: Int64.self) == [1, 2])
    }

    @Test func cast_toFloat8Saturates() throws {
        let y = try runOne("Cast", [f32([2], [1000, -1000])], attributes: [Attribute(name: "to", value: .int(17))])
        #expect(y.dtype == .float8e4m3fn)
        #expect(y.doubles() == [448, -448])
    }
}

/// ImageDecoder on a fixture PNG: RGB, BGR (the same pixels, channels reversed) and Grayscale;
/// bad streams (a cut BMP header, bytes of no image format) and attributes are refused.
@Suite struct ImageDecoderKernelTests {
    static func bytes(_ path: String) throws -> Tensor {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return Tensor(shape: [data.count], scalars: data)
    }

    static func decode(_ x: Tensor, _ format: String) throws -> Tensor {
        try runOne("ImageDecoder", [x], attributes: [Attribute(name: "pixel_format", value: .string(format))])
    }

    @Test func rgbBgrAndGrayscale() throws {
        let png = try Self.bytes(TestPackage.fixture("images/folder/cat/b.png"))
        let rgb = try Self.decode(png, "RGB"), bgr = try Self.decode(png, "BGR"), gray = try Self.decode(png, "Grayscale")
        #expect(rgb.dtype == .uint8 && rgb.rank == 3 && rgb.shape[2] == 3)
        #expect(gray.shape == [rgb.shape[0], rgb.shape[1], 1])
        let a = rgb.scalars(as: UInt8.self), b = bgr.scalars(as: UInt8.self), g = gray.scalars(as: UInt8.self)
        for i in stride(from: 0, to: a.count, by: 3) { #expect(a[i] == b[i + 2] && a[i + 1] == b[i + 1] && a[i + 2] == b[i]) }
        let (r, gg, bb) = (UInt32(a[0]), UInt32(a[1]), UInt32(a[2]))
        #expect(UInt32(g[0]) == (r * 19595 + gg * 38470 + bb * 7471 + 0x8000) >> 16)
    }

    @Test func badStreamsAndSettings() throws {
        let png = try Self.bytes(TestPackage.fixture("images/folder/cat/b.png"))
        let truncated = try Self.bytes(TestPackage.fixture("images/bad/truncated.png"))
        let bmp = Tensor(shape: [6], scalars: [UInt8(ascii: "B"), UInt8(ascii: "M"), 0, 0, 0, 0])
        let text = Tensor(shape: [5], scalars: Array("hello".utf8))
        for (x, format, unsupported, text) in [(truncated, "RGB", false, "malformed image"), (png, "HSV", false, "pixel_format 'HSV'"),
                                               (Tensor(shape: [2], scalars: [Float(1), 2]), "RGB", false, "1-D uint8"),
                                               (bmp, "RGB", false, "the header ends early"), (text, "RGB", false, "not an image DLKit decodes")] {
            do {
                _ = try Self.decode(x, format)
                Issue.record("expected an error for \(text)")
            } catch let e as RuntimeError {
                #expect("\(e)".contains(text), "\(e)")
                #expect(e.isUnsupported == unsupported, "\(e)")
            }
        }
    }
}
