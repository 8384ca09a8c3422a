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

    /// Reflect, edge and wrap padding (and cropping) run row by row for every type of 1, 2, 4 or 8
    /// bytes: each equals an element-by-element reference, on every axis of a 3-D tensor at once.
    @Test(arguments: [("reflect", [1, 2, 3, 0, 1, 2] as [Int64]), ("edge", [2, 0, 1, 1, 3, 2]), ("wrap", [1, 1, 2, 2, 0, 3]),
                      ("constant", [0, -1, 0, 0, 0, -2])])
    func pad_rowsMatchAnElementwiseReference(_ mode: String, _ pads: [Int64]) throws {
        let shape = [3, 4, 5]
        let before = pads[0..<3].map { Int($0) }, after = pads[3..<6].map { Int($0) }
        let outShape = (0..<3).map { shape[$0] + before[$0] + after[$0] }
        /// The input coordinate output coordinate `q` of axis `k` reads.
        func source(_ q: Int, axis k: Int) -> Int {
            let p = q - before[k], d = shape[k]
            if p >= 0 && p < d { return p }
            switch mode {
            case "reflect":
                let period = 2 * (d - 1), m = (p % period + period) % period
                return m < d ? m : period - m
            case "edge": return min(max(p, 0), d - 1)
            default: return (p % d + d) % d
            }
        }
        var want: [Double] = []
        for i in 0..<outShape[0] {
            for j in 0..<outShape[1] {
                for l in 0..<outShape[2] {
                    want.append(Double((source(i, axis: 0) * 4 + source(j, axis: 1)) * 5 + source(l, axis: 2)))
                }
            }
        }
        // Whole numbers below 60: exact in every type here.
        let x = f32(shape, (0..<60).map { Float($0) })
        for type in [DType.float32, .float64, .float16, .int64, .int32, .uint8] {
            let y = try runOne("Pad", [x.converted(to: type), Tensor(shape: [6], scalars: pads)],
                               attributes: [Attribute(name: "mode", value: .string(mode))])
            #expect(y.dtype == type && y.shape == outShape)
            #expect(y.doubles() == want, "\(mode) \(type)")
        }
        // Spot check: reflect's first plane is input plane 1 (pads before axis 0: 1).
        if mode == "reflect" { #expect(outShape == [3 + 1, 4 + 2 + 1, 5 + 3 + 2] && want[0] == 20 + 2 * 5 + 3) }
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
