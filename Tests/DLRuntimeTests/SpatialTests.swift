import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Kernels of the spatial family (pooling, convolution variants, resampling, rearrangement)
/// on cases small enough to check by hand.
struct SpatialTests {
    func ints(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v)) }

    @Test func maxPool3DReturnsRowMajorAndColumnMajorIndices() throws {
        // [1, 1, 2, 2, 2] with the maximum at (d, h, w) = (0, 1, 0).
        let x = f32([1, 1, 2, 2, 2], [0, 1, 9, 3, 4, 5, 6, 7])
        let node = Node(opType: "MaxPool", inputs: ["x"], outputs: ["y", "i"],
                        attributes: [ints("kernel_shape", [2, 2, 2])])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 1, 2, 2, 2]))],
                      outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "i", type: nil)], nodes: [node])
        let out = try Executor(graph: g).run(["x": x])
        #expect(try #require(out["y"]).scalars(as: Float.self) == [9])
        // (d, h, w) = (0, 1, 0): row-major 0·4 + 1·2 + 0 = 2.
        #expect(try #require(out["i"]).scalars(as: Int64.self) == [2])

        var colNode = node
        colNode.attributes.append(Attribute(name: "storage_order", value: .int(1)))
        let cg = Graph(name: "g", inputs: g.inputs, outputs: g.outputs, nodes: [colNode])
        // (0, 1, 0) is 2 either way; a maximum at (0, 0, 1) tells the orders apart.
        let x2 = f32([1, 1, 2, 2, 2], [0, 9, 1, 3, 4, 5, 6, 7])   // (0, 0, 1): row-major 1, column-major 4
        #expect(try #require(try Executor(graph: cg).run(["x": x2])["i"]).scalars(as: Int64.self) == [4])
        #expect(try #require(try Executor(graph: g).run(["x": x2])["i"]).scalars(as: Int64.self) == [1])
    }

    @Test func maxPoolOnUInt8StaysExact() throws {
        let x = Tensor(shape: [1, 1, 2, 2], scalars: [UInt8](arrayLiteral: 200, 255, 3, 4))
        let y = try runOne("MaxPool", [x], attributes: [ints("kernel_shape", [2, 2])])
        #expect(y.dtype == .uint8 && y.scalars(as: UInt8.self) == [255])
    }

    @Test func lpPoolIsTheWindowNorm() throws {
        let x = f32([1, 1, 3], [3, 4, 12])
        let y = try runOne("LpPool", [x], attributes: [ints("kernel_shape", [2]), Attribute(name: "p", value: .int(2))])
        #expect(y.scalars(as: Float.self) == [5, Float((16.0 + 144.0).squareRoot())])
    }

    @Test func conv3DOfOnesCountsTheWindow() throws {
        let x = f32([1, 1, 3, 3, 3], [Float](repeating: 1, count: 27))
        let w = f32([1, 1, 2, 2, 2], [Float](repeating: 1, count: 8))
        let y = try runOne("Conv", [x, w], weights: [1], attributes: [ints("pads", [1, 1, 1, 0, 0, 0])])
        #expect(y.shape == [1, 1, 3, 3, 3])
        let v = y.scalars(as: Float.self)
        #expect(v[0] == 1 && v[13] == 8 && v[26] == 8)
    }

    @Test func convTransposeWithStrideScattersEachInput() throws {
        let x = f32([1, 1, 2], [1, 2]), w = f32([1, 1, 2], [1, 10])
        let y = try runOne("ConvTranspose", [x, w], attributes: [ints("strides", [2])])
        #expect(y.shape == [1, 1, 4] && y.scalars(as: Float.self) == [1, 10, 2, 20])
        let shaped = try runOne("ConvTranspose", [x, w], attributes: [ints("strides", [2]), ints("output_shape", [5])])
        #expect(shaped.shape == [1, 1, 5] && shaped.scalars(as: Float.self) == [1, 10, 2, 20, 0])
    }

    @Test func convIntegerSubtractsZeroPoints() throws {
        let x = Tensor(shape: [1, 1, 2], scalars: [UInt8](arrayLiteral: 5, 7))
        let w = Tensor(shape: [1, 1, 1], scalars: [UInt8](arrayLiteral: 3))
        let xz = Tensor(shape: [], scalars: [UInt8](arrayLiteral: 1)), wz = Tensor(shape: [], scalars: [UInt8](arrayLiteral: 1))
        let y = try runOne("ConvInteger", [x, w, xz, wz])
        #expect(y.dtype == .int32 && y.scalars(as: Int32.self) == [8, 12])
    }

    @Test(arguments: ["DCR", "CRD"])
    func spaceToDepthUndoesDepthToSpace(_ mode: String) throws {
        let x = Tensor(shape: [1, 8, 1, 2], scalars: (0..<16).map { Int32($0) })
        let attrs = [Attribute(name: "blocksize", value: .int(2)), Attribute(name: "mode", value: .string(mode))]
        let d = try runOne("DepthToSpace", [x], attributes: attrs)
        #expect(d.shape == [1, 2, 2, 4])
        let back = try runOne("SpaceToDepth", [d], attributes: attrs)
        #expect(back.shape == x.shape && back.scalars(as: Int32.self) == x.scalars(as: Int32.self))
    }

    /// DepthToSpace and SpaceToDepth against the spec's element formulas, in both modes and for
    /// strings (the one dtype the blocked transpose does not move).
    @Test(arguments: ["DCR", "CRD"])
    func depthToSpaceMovesEachElementWhereTheSpecSays(_ mode: String) throws {
        let (n, c, h, w, b) = (2, 12, 2, 3, 2)
        let oc = c / (b * b)
        let x = Tensor(shape: [n, c, h, w], scalars: (0..<(n * c * h * w)).map { Int64($0) })
        let attrs = [Attribute(name: "blocksize", value: .int(b)), Attribute(name: "mode", value: .string(mode))]
        let y = try runOne("DepthToSpace", [x], attributes: attrs)
        var want: [Int64] = []
        for bn in 0..<n { for co in 0..<oc { for yy in 0..<(h * b) { for xx in 0..<(w * b) {
            let (by, bx) = (yy % b, xx % b)
            let ci = mode == "DCR" ? (by * b + bx) * oc + co : co * b * b + by * b + bx
            want.append(Int64(((bn * c + ci) * h + yy / b) * w + xx / b))
        } } } }
        #expect(y.shape == [n, oc, h * b, w * b] && y.scalars(as: Int64.self) == want)
        let s = Tensor(shape: [n, c, h, w], strings: (0..<(n * c * h * w)).map { "e\($0)" })
        let ys = try runOne("DepthToSpace", [s], attributes: attrs)
        #expect(ys.strings == want.map { "e\($0)" })
        let back = try runOne("SpaceToDepth", [ys], attributes: attrs)
        #expect(back.strings == s.strings)
    }

    @Test func resizeNearestDoublesEachPixel() throws {
        let x = f32([1, 1, 1, 2], [1, 2])
        let scales = f32([4], [1, 1, 1, 2])
        let y = try runOne("Resize", [x, f32([0], []), scales], attributes: [Attribute(name: "mode", value: .string("nearest"))])
        #expect(y.shape == [1, 1, 1, 4] && y.scalars(as: Float.self) == [1, 1, 2, 2])
    }

    @Test func resizeRejectsScalesAndSizesTogether() throws {
        let x = f32([1, 1, 1, 2], [1, 2])
        let sizes = Tensor(shape: [4], scalars: [Int64](arrayLiteral: 1, 1, 1, 4))
        do {
            _ = try runOne("Resize", [x, f32([0], []), f32([4], [1, 1, 1, 2]), sizes])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("only one of scales and sizes"))
        }
    }

    @Test func maxUnpoolRejectsAnIndexOutsideTheOutput() throws {
        let x = f32([1, 1, 1, 1], [5]), i = Tensor(shape: [1, 1, 1, 1], scalars: [Int64](arrayLiteral: 99))
        do {
            _ = try runOne("MaxUnpool", [x, i], attributes: [ints("kernel_shape", [2, 2]), ints("strides", [2, 2])])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("index 99"))
        }
    }

    @Test func nonMaxSuppressionDropsOverlappingLowerScores() throws {
        let boxes = f32([1, 3, 4], [0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 2, 1, 3])
        let scores = f32([1, 1, 3], [0.9, 0.8, 0.7])
        let maxOut = Tensor(shape: [1], scalars: [Int64](arrayLiteral: 3))
        let y = try runOne("NonMaxSuppression", [boxes, scores, maxOut, f32([1], [0.5])])
        #expect(y.shape == [2, 3] && y.scalars(as: Int64.self) == [0, 0, 0, 0, 0, 2])
    }

    @Test func gridSampleBilinearAtPixelCentresReturnsThePixels() throws {
        let x = f32([1, 1, 2, 2], [1, 2, 3, 4])
        // align_corners = 0: pixel centres are at ±0.5.
        let grid = f32([1, 1, 2, 2], [-0.5, -0.5, 0.5, 0.5])
        let y = try runOne("GridSample", [x, grid])
        #expect(y.shape == [1, 1, 1, 2] && y.scalars(as: Float.self) == [1, 4])
    }
}
