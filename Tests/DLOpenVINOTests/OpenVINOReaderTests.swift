import DLGraph
import DLKit
import DLOpenVINO
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// The IR fixtures (scripts/fixtures/make_openvino.py) run through the reader and DLKit's runtime
/// against OpenVINO's own CPU outputs.
@Suite struct OpenVINOReaderTests {
    static let stems = ["cnn", "ops", "yolo", "paddle", "opset", "nms", "convnet", "mlp2", "shapes", "lstm", "attention"]

    /// Runs `<stem><suffix>.xml` on the saved inputs and compares output i with `<key>.<i>`.
    func check(_ stem: String, suffix: String, key: String, rtol: Double, atol: Double) throws {
        let graph = try OpenVINOReader.read(path: TestPackage.fixture("openvino/\(stem)\(suffix).xml"))
        let io = Dictionary(uniqueKeysWithValues: try SafeTensorsFile(path: TestPackage.fixture("openvino/\(stem).io.safetensors")).tensors().map { ($0.name, $0.tensor) })
        let model = try Model(graph: graph, name: stem)
        var feeds: [String: Tensor] = [:]
        for (i, v) in graph.inputs.enumerated() {
            feeds[v.name] = try #require(io["input.\(i)"], "\(stem): no input.\(i)")
        }
        let got = try model.run(feeds)
        #expect(graph.outputs.count == io.keys.filter { $0.hasPrefix(key + ".") }.count, "\(stem): output count")
        for (i, v) in graph.outputs.enumerated() {
            let want = try #require(io["\(key).\(i)"])
            let have = try #require(got[v.name])
            #expect(have.shape == want.shape, "\(stem)\(suffix) output \(i) '\(v.name)': shape \(have.shape) vs \(want.shape)")
            let (a, b) = (have.doubles(), want.doubles())
            #expect(allClose(a, b, rtol: rtol, atol: atol),
                    "\(stem)\(suffix) output \(i) '\(v.name)': max relative error \(maxRelativeError(a, b))")
        }
    }

    @Test(arguments: stems)
    func fp32MatchesOpenVINO(stem: String) throws {
        try check(stem, suffix: "", key: "output", rtol: 1e-4, atol: 1e-5)
    }

    /// fp16-compressed IR: the f16 weights are kept exactly and widened by a Cast, as OpenVINO's
    /// CPU plugin does, so both compute in f32 from the same weights; only summation order differs.
    /// The tolerance is the fp32 one.
    @Test(arguments: stems)
    func fp16MatchesOpenVINO(stem: String) throws {
        try check(stem, suffix: ".fp16", key: "output16", rtol: 1e-4, atol: 1e-5)
    }

    @Test func fp16WeightsStayHalfPrecisionBitForBit() throws {
        let path = TestPackage.fixture("openvino/cnn.fp16.xml")
        let graph = try OpenVINOReader.read(path: path)
        let halves = graph.initializers.filter { $0.tensor.dtype == .float16 }
        #expect(!halves.isEmpty)
        // Every f16 initializer is read unchanged from the .bin: compare with the raw bytes.
        let bin = try Data(contentsOf: URL(fileURLWithPath: OpenVINOReader.binPath(forXML: path)))
        for (name, t) in halves {
            let bytes = t.withUnsafeBytes { Data($0) }
            #expect(bin.range(of: bytes) != nil, "\(name) is not a slice of the .bin")
        }
        #expect(graph.nodes.contains { $0.opType == "Cast" })
    }

    @Test func dynamicDimsAndRanges() throws {
        let xml = """
        <?xml version="1.0"?>
        <net name="dyn" version="10">
        <layers>
        <layer id="0" name="x" type="Parameter" version="opset1"><data shape="?,1..10,4" element_type="f32"/>
        <output><port id="0" precision="FP32"><dim>-1</dim><dim>-1</dim><dim>4</dim></port></output></layer>
        <layer id="1" name="y" type="ReLU" version="opset1"><input><port id="0"><dim>-1</dim><dim>-1</dim><dim>4</dim></port></input>
        <output><port id="1" precision="FP32" names="y"><dim>-1</dim><dim>-1</dim><dim>4</dim></port></output></layer>
        <layer id="2" name="out" type="Result" version="opset1"><input><port id="0"><dim>-1</dim><dim>-1</dim><dim>4</dim></port></input></layer>
        </layers>
        <edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/><edge from-layer="1" from-port="1" to-layer="2" to-port="0"/></edges>
        </net>
        """
        let bytes = Array(xml.utf8)
        let doc = try bytes.withUnsafeBytes { try IRDocument(xml: $0, path: "dyn.xml") }
        let g = try OpenVINOReader.read(document: doc, bin: nil, path: "dyn.xml", binPath: "dyn.bin")
        #expect(g.inputs.first?.type?.dims == [.unknown, .unknown, .fixed(4)])
        let model = try Model(graph: g, name: "dyn")
        let out = try model.run(["x": Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float($0) - 12 })])
        #expect(out["y"]?.scalars(as: Float.self) == (0..<24).map { max(Float($0) - 12, 0) })
    }

    @Test func unsupportedOpsAreListedAllAtOnce() throws {
        let xml = """
        <net name="u" version="11"><layers>
        <layer id="0" name="x" type="Parameter" version="opset1"><data shape="2" element_type="f32"/><output><port id="0" precision="FP32"><dim>2</dim></port></output></layer>
        <layer id="1" name="a" type="Frobnicate" version="opset99"><input><port id="0"><dim>2</dim></port></input><output><port id="1" precision="FP32"><dim>2</dim></port></output></layer>
        <layer id="2" name="b" type="Frobnicate" version="opset99"><input><port id="0"><dim>2</dim></port></input><output><port id="1" precision="FP32"><dim>2</dim></port></output></layer>
        <layer id="3" name="c" type="Loop" version="opset5"><input><port id="0"><dim>2</dim></port></input><output><port id="1" precision="FP32"><dim>2</dim></port></output></layer>
        </layers><edges/></net>
        """
        let doc = try Array(xml.utf8).withUnsafeBytes { try IRDocument(xml: $0, path: "u.xml") }
        #expect(throws: OpenVINOError.unsupportedOps(path: "u.xml", ops: ["Frobnicate": 2, "Loop": 1])) {
            _ = try OpenVINOReader.read(document: doc, bin: nil, path: "u.xml", binPath: "u.bin")
        }
    }

    /// Every element type a Const may hold, read from a .bin made here: values, sub-byte
    /// packing (low nibble first, i4 sign-extended, as OpenVINO packs them) and unaligned offsets.
    @Test func constElementTypes() throws {
        var bin: [UInt8] = [0x07]  // one byte first, so the wider types sit unaligned
        var layers = "", edges = ""
        var want: [(String, DType, [Double])] = []
        func add(_ et: String, _ dtype: DType, _ bytes: [UInt8], _ count: Int, _ values: [Double]) {
            let id = want.count * 2
            layers += "<layer id=\"\(id)\" name=\"c\(et)\" type=\"Const\" version=\"opset1\"><data element_type=\"\(et)\" shape=\"\(count)\" offset=\"\(bin.count)\" size=\"\(bytes.count)\"/><output><port id=\"0\" precision=\"\(et.uppercased())\" names=\"v\(et)\"><dim>\(count)</dim></port></output></layer>\n"
            layers += "<layer id=\"\(id + 1)\" name=\"r\(et)\" type=\"Result\" version=\"opset1\"><input><port id=\"0\"><dim>\(count)</dim></port></input></layer>\n"
            edges += "<edge from-layer=\"\(id)\" from-port=\"0\" to-layer=\"\(id + 1)\" to-port=\"0\"/>\n"
            bin += bytes
            want.append(("v\(et)", dtype, values))
        }
        add("f32", .float32, [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0], 2, [1, -2])
        add("f16", .float16, [0x00, 0x3C, 0x00, 0xC1], 2, [1, -2.5])
        add("bf16", .bfloat16, [0x80, 0x3F, 0x40, 0xC0], 2, [1, -3])
        add("i8", .int8, [0xFF, 0x05], 2, [-1, 5])
        add("u8", .uint8, [0xFF, 0x05], 2, [255, 5])
        add("i4", .int4, [0x9F, 0x07], 3, [-1, -7, 7])
        add("u4", .uint4, [0x21, 0x03], 3, [1, 2, 3])
        add("i32", .int32, [0xFE, 0xFF, 0xFF, 0xFF, 9, 0, 0, 0], 2, [-2, 9])
        add("i64", .int64, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], 1, [9.223372036854775807e18])
        add("boolean", .bool, [1, 0, 1], 3, [1, 0, 1])
        let xml = "<?xml version=\"1.0\"?>\n<net name=\"types\" version=\"11\"><layers>\n\(layers)</layers><edges>\n\(edges)</edges></net>\n"
        let tmp = TemporaryFolder()
        try Data(xml.utf8).write(to: tmp.url("t.xml"))
        try Data(bin).write(to: tmp.url("t.bin"))
        let g = try OpenVINOReader.read(path: tmp.file("t.xml"))
        for (name, dtype, values) in want {
            let t = try #require(g.initializers[name], "\(name)")
            #expect(t.dtype == dtype, "\(name)")
            #expect(t.doubles() == values, "\(name): \(t.doubles())")
        }
        // A Result fed straight by a Const gets an Identity named after the Result layer.
        #expect(g.outputs.map(\.name) == want.map { "r" + $0.0.dropFirst() })
    }
}
