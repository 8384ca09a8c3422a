import DLKit
@testable import DLServe
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// The parts of the serve path below the server: number parsing, data walking, base64, answer
/// encoding, batching, and line reading.
struct ServeCodecTests {
    /// Decodes `data` (JSON text) as a tensor of `dtype` and `shape`.
    func decode(_ data: String, _ dtype: DType, _ shape: [Int], base64: Bool = false) throws -> Tensor {
        var bytes = Array(data.utf8)
        bytes.append(0)
        let count = shape.reduce(1, *)
        var result: Result<Tensor, ServeError>!
        bytes.withUnsafeBytes { raw in
            do throws(ServeError) {
                result = .success(try TensorDataDecoder.decode(
                    line: UnsafeRawBufferPointer(rebasing: raw.dropLast()), range: 0..<data.utf8.count,
                    dtype: dtype, shape: shape, count: count, base64: base64, label: "input 't'"))
            } catch { result = .failure(error) }
        }
        return try result.get()
    }

    @Test func numberWriterPrintsWhatDescriptionPrints() {
        // The runtime formatter called into our buffer must give `description`'s text exactly.
        var rng = SystemRandomNumberGenerator()
        var floats: [Float] = [0, -0.0, 1, 10, 1e7, 1e8, 0.1, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 16777216, 123456789, .nan, -.infinity]
        var doubles: [Double] = [0, -0.0, 1e15, 1e16, 1e17, 0.1, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 9007199254740993, 1e22, 1e23, .infinity]
        for _ in 0..<50_000 {
            floats.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)))
            doubles.append(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng)))
        }
        func text<T>(_ values: [T], _ write: (T, UnsafeMutablePointer<UInt8>) -> Int) -> String {
            var out: [UInt8] = []
            values.withUnsafeBufferPointer { NumberWriter.append($0, to: &out, write) }
            return String(decoding: out, as: UTF8.self)
        }
        func reference<T: BinaryFloatingPoint & LosslessStringConvertible>(_ v: T) -> String {
            v.isNaN ? #""NaN""# : v.isInfinite ? (v < 0 ? #""-Infinity""# : #""Infinity""#) : v.description
        }
        #expect(text(floats, NumberWriter.write) == floats.map(reference).joined(separator: ","))
        #expect(text(doubles, NumberWriter.write) == doubles.map(reference).joined(separator: ","))
        let ints: [Int64] = [0, -1, 9, 10, 99, 100, 12345678, -9223372036854775808, 9223372036854775807] + (0..<10_000).map { _ in Int64.random(in: .min ... .max, using: &rng) }
        #expect(text(ints) { NumberWriter.write($0, $1) } == ints.map(String.init).joined(separator: ","))
        let uints: [UInt64] = [0, 18446744073709551615] + (0..<1000).map { _ in UInt64.random(in: 0 ... .max, using: &rng) }
        #expect(text(uints) { NumberWriter.write($0, $1) } == uints.map(String.init).joined(separator: ","))
    }

    @Test func shortestFloatMatchesDescription() {
        // The exact path (|v| about 1e-22 to 2^23) against the runtime's text: a sweep through
        // every bit pattern at a stride, short decimals (their texts end in zeros), both sides of
        // each power of ten, and the edges of the range handled.
        var floats: [Float] = []
        var bits: UInt32 = 0
        while bits < 0x7F80_0000 {
            floats.append(Float(bitPattern: bits))
            bits += 4099
        }
        for i in 1...20_000 { floats.append(Float(i) / 1000); floats.append(Float(i) * 0.1); floats.append(Float(i) / 7) }
        var p: Float = 1e-22
        while p < 1e8 {
            floats += [p, p.nextUp, p.nextDown, p * 5, (p * 5).nextUp]
            p *= 10
        }
        floats += [0x1p-73, 0x1.fffffep-73, 0x1p-72, 0x1.000002p-72, 0x1.fffffep22, 0x1.fffffep23, 8388607.5, 0.00001, 0.0001, 9.999999e-5]
        var handled = 0
        let slot = UnsafeMutablePointer<UInt8>.allocate(capacity: NumberWriter.slot)
        defer { slot.deallocate() }
        for v in floats + floats.map({ -$0 }) {
            guard let n = ShortestFloat.write(v, slot) else { continue }
            handled += 1
            let text = String(decoding: UnsafeBufferPointer(start: slot, count: n), as: UTF8.self)
            #expect(text == v.description, "\(v.bitPattern)")
        }
        #expect(handled > 400_000)
        // Outside the exact range the runtime writes it.
        for v: Float in [0, 1, 0.5, 1e-30, .leastNonzeroMagnitude, 1e9, 16777216, .greatestFiniteMagnitude] {
            #expect(ShortestFloat.write(v, slot) == nil, "\(v)")
        }
    }

    @Test func decimalToBinaryIsCorrectlyRoundedOrDeclines() {
        // Long mantissas at every exponent, and 17 to 19 digit texts of doubles and of the exact
        // midpoints between floats (where rounding is hardest), against strtod and strtof.
        var rng = SystemRandomNumberGenerator()
        var cases: [(UInt64, Int)] = [(9_007_199_254_740_993, 0), (1, 0), (UInt64.max, -19), (1, -342), (1, 308), (1, 309), (1, -343)]
        for _ in 0..<40_000 {
            cases.append((UInt64.random(in: 1...UInt64.max, using: &rng), Int.random(in: -360...320, using: &rng)))
        }
        func digitsAndExponent(_ v: Double, _ precision: Int) -> (UInt64, Int)? {
            let parts = String(format: "%.\(precision - 1)e", v).split(separator: "e")
            guard parts.count == 2, let w = UInt64(parts[0].replacingOccurrences(of: ".", with: "")), let e = Int(parts[1]) else { return nil }
            return (w, e - (precision - 1))
        }
        for _ in 0..<20_000 {
            let f = Float(bitPattern: UInt32.random(in: 0x0080_0000...0x7F00_0000, using: &rng))
            let d = Double(bitPattern: UInt64.random(in: 0x0010_0000_0000_0000...0x7FE0_0000_0000_0000, using: &rng))
            for v in [Double(f) + Double(f.nextUp - f) / 2, d, d + (d.nextUp - d) / 2] {
                for precision in [9, 17, 18, 19] { digitsAndExponent(v, precision).map { cases.append($0) } }
            }
        }
        var decided = 0
        for (w, q) in cases {
            let text = "\(w)e\(q)"
            if let b = DecimalToBinary.bits(w, q, fractionBits: 52, bias: 1023) {
                decided += 1
                #expect(b == strtod(text, nil).bitPattern, "FP64 \(text)")
            }
            if let b = DecimalToBinary.bits(w, q, fractionBits: 23, bias: 127) {
                #expect(b == UInt64(strtof(text, nil).bitPattern), "FP32 \(text)")
            }
        }
        #expect(decided > cases.count * 9 / 10)
    }

    @Test func eightDigitsAtATime() {
        for text in ["00000000", "12345678", "99999999", "09876543"] {
            #expect(Array(text.utf8).withUnsafeBufferPointer { NumberText.eightDigits($0.baseAddress!) } == UInt64(text))
        }
        for text in ["1234567a", "/2345678", "1234:678", "12 45678", "1234567.", "1234567\u{0}"] {
            #expect(Array(text.utf8).withUnsafeBufferPointer { NumberText.eightDigits($0.baseAddress!) } == nil, "\(text)")
        }
    }

    @Test func floatsParseToTheCorrectlyRoundedValue() throws {
        // Random bit patterns written many ways: shortest, 17 digits, long exponents, subnormals.
        var rng = SystemRandomNumberGenerator()
        var texts: [String] = ["0", "-0", "1e-45", "1.4e-45", "3.4028235e38", "3.4028236e38", "1e39",
                               "0.1", "16777217", "1.00000005960464477539062", "2.5e-8", "123456789012345678901234567890"]
        for _ in 0..<3000 {
            let f = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            guard f.isFinite else { continue }
            texts.append(f.description)
            texts.append(String(format: "%.17g", Double(f)))
            texts.append(String(format: "%.9e", Double(f)))
            let d = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng))
            if d.isFinite { texts.append(d.description) }
        }
        // Swift's own parsers (strtof/strtod underneath) are the reference.
        let json = texts
        let f32 = try decode("[" + json.joined(separator: ",") + "]", .float32, [json.count]).scalars(as: Float.self)
        let f64 = try decode("[" + json.joined(separator: ",") + "]", .float64, [json.count]).scalars(as: Double.self)
        for (i, t) in json.enumerated() {
            let wantF = Float(t) ?? .nan, wantD = Double(t) ?? .nan
            #expect(f32[i].bitPattern == wantF.bitPattern, "FP32 \(t): \(f32[i]) vs \(wantF)")
            #expect(f64[i].bitPattern == wantD.bitPattern, "FP64 \(t): \(f64[i]) vs \(wantD)")
        }
    }

    @Test func specialFloatsAndIntegerForms() throws {
        let f = try decode(#"["NaN","Infinity","-Infinity",-0.0,1E2]"#, .float32, [5]).scalars(as: Float.self)
        #expect(f[0].isNaN && f[1] == .infinity && f[2] == -.infinity && f[3].sign == .minus && f[4] == 100)
        let i = try decode("[9223372036854775807,-9223372036854775808,3.0,-2e1]", .int64, [4]).scalars(as: Int64.self)
        #expect(i == [.max, .min, 3, -20])
        let u = try decode("[18446744073709551615,0,-0]", .uint64, [3]).scalars(as: UInt64.self)
        #expect(u == [.max, 0, 0])
        let b = try decode("[true,false,1,0]", .bool, [4]).scalars(as: Bool.self)
        #expect(b == [true, false, true, false])
        let h = try decode("[0.1,65504,1e-7]", .float16, [3])
        #expect(h.doubles() == [Double(Float(Float16(0.1))), 65504, Double(Float(Float16(1e-7)))])
        let scalar = try decode("7", .int32, [])
        #expect(scalar.scalars(as: Int32.self) == [7])
    }

    @Test(arguments: [
        ("[1,2,3]", DType.int8, [2], "input 't' data has more values than its shape [2] holds (2)"),
        ("[1.5]", .int32, [1], "input 't' value 0 is 1.5, not an integer in the range of Int32"),
        ("[128]", .int8, [1], "input 't' value 0 is 128, not an integer in the range of Int8"),
        ("[-1]", .uint8, [1], "input 't' value 0 is -1, not an integer in the range of UInt8"),
        ("[18446744073709551616]", .uint64, [1], "not an integer in the range of UInt64"),
        (#"["nan"]"#, .float32, [1], #"input 't' value 0 is "nan", not a number"#),
        ("[null]", .float64, [1], "input 't' value 0 is null, not a number"),
        ("[2]", .bool, [1], "input 't' value 0 is 2, not a boolean"),
        ("[[1,2],[3]]", .float32, [2, 2], "input 't' data has 1 entries at depth 2, shape [2, 2] needs 2"),
        ("[[[1]]]", .float32, [1, 1], "nests deeper than its shape [1, 1]"),
        ("[1,2,3]", .float32, [4], "input 't' has 3 values, shape [4] needs 4"),
        ("{}", .float32, [1], "not a number"),
        // The scanner only matches brackets in data: the decoder holds the JSON grammar.
        ("[01]", .float32, [1], "input 't' data has an unexpected '1' in an array, expected ',' or ']'"),
        ("[1,,2]", .float32, [2], "input 't' value 1 is , not a number"),
        ("[1 2]", .float32, [2], "data has an unexpected '2' in an array"),
        ("[+1]", .float32, [1], "value 0 is +1, not a number"),
        ("[.5]", .float64, [1], "value 0 is .5, not a number"),
        ("[1.]", .float64, [1], "value 0 is 1., not a number"),
        ("[1e]", .int32, [1], "value 0 is 1e, not an integer"),
        ("[tru]", .bool, [1], "value 0 is tru, not a boolean"),
        (#"["NaN"]"#, .int32, [1], #"value 0 is "NaN", not an integer"#),
        ("[1] 2", .float32, [1], "data has an unexpected '2' after the data"),
    ])
    func badDataIsRefusedWithPlace(_ data: String, _ dtype: DType, _ shape: [Int], _ message: String) {
        do {
            _ = try decode(data, dtype, shape)
            Issue.record("expected an error for \(data)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    @Test func base64RoundTripsEveryLength() throws {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var text: [UInt8] = []
            bytes.withUnsafeBytes { Base64.encode($0, into: &text) }
            #expect(String(decoding: text, as: UTF8.self) == Data(bytes).base64EncodedString())
            let t = try decode("\"" + String(decoding: text, as: UTF8.self) + "\"", .uint8, [n], base64: true)
            #expect(t.scalars(as: UInt8.self) == bytes)
        }
        let escaped = try decode(#""\/w==""#, .uint8, [1], base64: true)
        #expect(escaped.scalars(as: UInt8.self) == [0xFF])
    }

    @Test func answersWriteFloatsInTheirOwnPrecision() throws {
        var out: [UInt8] = []
        let f = Tensor(shape: [4], scalars: [Float(0.1), .nan, -.infinity, 1e-45])
        TensorJSONCodec.encode(name: "y", tensor: f, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"{"name":"y","shape":[4],"datatype":"FP32","data":[0.1,"NaN","-Infinity",1e-45]}"#)
        out = []
        let h = Tensor(zeros: .float16, shape: [1]).converted(to: .float32).converted(to: .float16)
        TensorJSONCodec.encode(name: "h", tensor: h, encoding: .base64, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"{"name":"h","shape":[1],"datatype":"FP16","parameters":{"data_encoding":"base64"},"data":"AAA="}"#)
    }

    @Test func batchMergeAndSplitAreInverse() throws {
        let a = Tensor(shape: [1, 3], scalars: [Int64(1), 2, 3])
        let b = Tensor(shape: [2, 3], scalars: [Int64(4), 5, 6, 7, 8, 9])
        let merged = DynamicBatcher.merge([["a": a], ["a": b]])
        #expect(merged["a"]?.shape == [3, 3])
        #expect(merged["a"]?.scalars(as: Int64.self) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let whole = try #require(merged["a"])
        let parts = try #require(DynamicBatcher.split([whole], rows: [1, 2]))
        #expect(parts[0][0].bitwiseEqual(a) && parts[1][0].bitwiseEqual(b))
        #expect(DynamicBatcher.split([a], rows: [1, 1]) == nil)  // rows must add up
        // Signatures: equal when only dim 0 differs; different otherwise.
        let s1 = DynamicBatcher.signature(model: 0, outputs: ["c"], inputs: ["a": a])
        let s2 = DynamicBatcher.signature(model: 0, outputs: ["c"], inputs: ["a": b])
        let s3 = DynamicBatcher.signature(model: 0, outputs: ["c"], inputs: ["a": Tensor(zeros: .int64, shape: [1, 4])])
        #expect(s1?.0 == s2?.0 && s1?.1 == 1 && s2?.1 == 2)
        #expect(s1?.0 != s3?.0)
        #expect(DynamicBatcher.signature(model: 0, outputs: [], inputs: ["a": a, "b": b]) == nil)
    }

    @Test func batchSymbolNeedsOneSymbolicDimZeroEverywhere() throws {
        let load = { (p: String) throws in try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture(p))) }
        #expect(DynamicBatcher.batchSymbol(of: try load("models/mlp.onnx")) == "batch")
        #expect(DynamicBatcher.batchSymbol(of: try load("models/serve/int_add.onnx")) == "batch")
        #expect(DynamicBatcher.batchSymbol(of: try load("models/serve/dtypes.onnx")) == nil)
        #expect(DynamicBatcher.batchSymbol(of: try load("models/serve/reshape.onnx")) == nil)
    }

    @Test func batchedRunEqualsSeparateRuns() throws {
        let s = server("models/serve/int_add.onnx", "models/mlp.onnx")
        var jobs: [ServeJob] = []
        for (i, rows) in [1, 3, 2].enumerated() {
            let xs = (0..<rows * 784).map { String(Float(($0 * 7 + i) % 13) / 13) }.joined(separator: ",")
            let line = #"{"id":\#(i),"model_name":"mlp","inputs":[{"name":"x","shape":[\#(rows),784],"datatype":"FP32","data":[\#(xs)]}]}"#
            var bytes = Array(line.utf8) + [0]
            jobs.append(bytes.withUnsafeMutableBytes { s.prepare(line: UnsafeRawBufferPointer(rebasing: $0.dropLast())) })
        }
        #expect(jobs.allSatisfy { $0.batchSignature != nil && $0.batchSignature == jobs[0].batchSignature })
        let together = s.run(jobs)
        let apart = jobs.flatMap { s.run([$0]) }
        func text(_ o: ServeOutcome) -> String {
            var out: [UInt8] = []
            s.encode(o, into: &out)
            return String(decoding: out, as: UTF8.self)
        }
        #expect(together.count == 3)
        for (a, b) in zip(together, apart) {
            #expect(try parseJSON(text(a))["outputs"] != nil)
            let x = try parseJSON(text(a)), y = try parseJSON(text(b))
            guard case .array(let ox)? = x["outputs"], case .array(let oy)? = y["outputs"],
                  case .array(let dx)? = ox.first?["data"], case .array(let dy)? = oy.first?["data"] else {
                Issue.record("no outputs"); continue
            }
            let nx = dx.compactMap { if case .number(let t) = $0 { Double(t) } else { nil } }
            let ny = dy.compactMap { if case .number(let t) = $0 { Double(t) } else { nil } }
            #expect(nx.count == ny.count && allClose(nx, ny, rtol: 1e-6, atol: 1e-7))
        }
    }

    /// Feeds `text` through a pipe to a LineReader with a tiny chunk size and collects events.
    func readLines(_ text: String, max: Int, chunk: Int = 16) -> [String] {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        let writeEnd = fds[1]
        let bytes = Array(text.utf8)
        let writer = Thread {
            bytes.withUnsafeBytes { b in
                var done = 0
                while done < b.count {
                    guard let base = b.baseAddress else { break }
                    let n = write(writeEnd, base + done, b.count - done)
                    if n <= 0 { break }
                    done += n
                }
            }
            close(writeEnd)
        }
        writer.start()
        let reader = LineReader(fd: fds[0], maxLineBytes: max, chunkSize: chunk)
        var events: [String] = []
        loop: while true {
            switch reader.next() {
            case .line(let l):
                // The decoder may look one byte past a line: it must be the line's end, never data.
                let after = l.baseAddress.map { $0.load(fromByteOffset: l.count, as: UInt8.self) }
                #expect(after == 0x0A || after == 0x0D || after == 0)
                events.append(String(decoding: l, as: UTF8.self))
            case .tooLong(let n): events.append("<too long: \(n)>")
            case .end: break loop
            case .stopped: events.append("<stopped>"); break loop
            case .failed(let m): events.append("<failed: \(m)>"); break loop
            }
        }
        close(fds[0])
        return events
    }

    @Test func lineReaderSplitsSkipsAndLimits() {
        let long = String(repeating: "x", count: 100)
        let text = "a\r\n\n  \t\nshort line spanning chunks 123\n\(long)\nafter\n\(long)7\nlast-no-newline"
        #expect(readLines(text, max: 40) == [
            "a", "short line spanning chunks 123", "<too long: 100>", "after", "<too long: 101>", "last-no-newline",
        ])
        #expect(readLines("\(long)", max: 10, chunk: 64) == ["<too long: 100>"])
        #expect(readLines("12345678901\n1234567890\n", max: 10, chunk: 64) == ["<too long: 11>", "1234567890"])
    }
}
