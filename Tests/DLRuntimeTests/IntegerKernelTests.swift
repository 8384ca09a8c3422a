import DLGraph
import DLRuntime
import DLTensor
import Testing

/// The integer kernels under full-integer (.tflite int8) models: ConvInteger's integer fast
/// variant (im2col + IntegerGemm, and the direct depthwise loop) against a reference convolution
/// in Int64, and the fused `ai.dlkit.Requantize` and `FixedPointMultiply` against the chains of
/// IR ops they replace, run node by node. Both with AVX-512 allowed (VNNI where the CPU has it) and off.
@Suite struct IntegerKernelTests {
    struct Conv: CustomStringConvertible {
        var n, c, h, w, m, kh, kw, stride, padBegin, padEnd, dilation, group: Int
        var description: String { "x [\(n),\(c),\(h),\(w)] w [\(m),\(c / group),\(kh),\(kw)] s\(stride) p\(padBegin)/\(padEnd) d\(dilation) g\(group)" }
        var oh: Int { (h + padBegin + padEnd - dilation * (kh - 1) - 1) / stride + 1 }
        var ow: Int { (w + padBegin + padEnd - dilation * (kw - 1) - 1) / stride + 1 }
    }

    static let convs: [Conv] = [
        Conv(n: 1, c: 3, h: 7, w: 5, m: 4, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 1),
        Conv(n: 2, c: 6, h: 5, w: 6, m: 6, kh: 3, kw: 2, stride: 2, padBegin: 1, padEnd: 0, dilation: 1, group: 3),
        Conv(n: 1, c: 5, h: 6, w: 7, m: 10, kh: 3, kw: 3, stride: 2, padBegin: 1, padEnd: 1, dilation: 1, group: 5),
        Conv(n: 2, c: 4, h: 9, w: 8, m: 4, kh: 3, kw: 3, stride: 1, padBegin: 2, padEnd: 2, dilation: 2, group: 4),
        Conv(n: 1, c: 4, h: 1, w: 9, m: 3, kh: 1, kw: 3, stride: 1, padBegin: 0, padEnd: 1, dilation: 2, group: 1),
        Conv(n: 1, c: 8, h: 4, w: 4, m: 17, kh: 1, kw: 1, stride: 1, padBegin: 0, padEnd: 0, dilation: 1, group: 1),
        Conv(n: 1, c: 2, h: 2, w: 2, m: 3, kh: 3, kw: 3, stride: 1, padBegin: 2, padEnd: 2, dilation: 1, group: 1),
        Conv(n: 1, c: 1, h: 1, w: 1, m: 1, kh: 1, kw: 1, stride: 1, padBegin: 0, padEnd: 0, dilation: 1, group: 1),
    ]

    /// Deterministic bytes.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: s >> 33)
        }
    }

    static func tensor(_ b: [UInt8], signed: Bool, shape: [Int]) -> Tensor {
        signed ? Tensor(shape: shape, scalars: b.map { Int8(bitPattern: $0) }) : Tensor(shape: shape, scalars: b)
    }

    static func reference(_ p: Conv, x: [Int64], w: [Int64], xZero: Int64, wZero: [Int64]) -> [Int32] {
        let cg = p.c / p.group, mg = p.m / p.group
        var y = [Int32](repeating: 0, count: p.n * p.m * p.oh * p.ow)
        for b in 0..<p.n {
            for oc in 0..<p.m {
                let wz = wZero.isEmpty ? 0 : wZero.count == 1 ? wZero[0] : wZero[oc]
                for oy in 0..<p.oh {
                    for ox in 0..<p.ow {
                        var s: Int64 = 0
                        for ci in 0..<cg {
                            let ic = (oc / mg) * cg + ci
                            for ky in 0..<p.kh {
                                for kx in 0..<p.kw {
                                    let iy = oy * p.stride - p.padBegin + ky * p.dilation, ix = ox * p.stride - p.padBegin + kx * p.dilation
                                    guard iy >= 0, iy < p.h, ix >= 0, ix < p.w else { continue }
                                    s += (x[((b * p.c + ic) * p.h + iy) * p.w + ix] - xZero) * (w[((oc * cg + ci) * p.kh + ky) * p.kw + kx] - wz)
                                }
                            }
                        }
                        y[((b * p.m + oc) * p.oh + oy) * p.ow + ox] = Int32(s)
                    }
                }
            }
        }
        return y
    }

    @Test(arguments: [(false, true), (true, true), (true, false)])
    func convIntegerMatchesTheReference(xSigned: Bool, wSigned: Bool) throws {
        for (i, p) in Self.convs.enumerated() {
            let xb = Self.bytes(p.n * p.c * p.h * p.w, seed: UInt64(i)), wb = Self.bytes(p.m * (p.c / p.group) * p.kh * p.kw, seed: UInt64(100 + i))
            let x = Self.tensor(xb, signed: xSigned, shape: [p.n, p.c, p.h, p.w]), w = Self.tensor(wb, signed: wSigned, shape: [p.m, p.c / p.group, p.kh, p.kw])
            func wide(_ b: [UInt8], _ signed: Bool) -> [Int64] { b.map { signed ? Int64(Int8(bitPattern: $0)) : Int64($0) } }
            let xv = wide(xb, xSigned), wv = wide(wb, wSigned)
            let xZero: Int64 = xSigned ? -7 : 131
            let perChannel: [Int64] = (0..<p.m).map { (j: Int) -> Int64 in wSigned ? Int64(j % 5 - 2) : Int64(120 + j % 9) }
            for wZero in [[], [Int64(wSigned ? 3 : 128)], perChannel] {
                var inputs = ["x", "w", "xz"]
                var initializers = NamedTensors()
                initializers["w"] = w
                initializers["xz"] = Self.tensor([UInt8(truncatingIfNeeded: xZero)], signed: xSigned, shape: [])
                if !wZero.isEmpty {
                    inputs.append("wz")
                    let zeros: [UInt8] = wZero.map { UInt8(truncatingIfNeeded: $0) }
                    initializers["wz"] = Self.tensor(zeros, signed: wSigned, shape: wZero.count == 1 ? [] : [wZero.count])
                }
                let node = Node(opType: "ConvInteger", inputs: inputs, outputs: ["y"], attributes: [
                    Attribute(name: "kernel_shape", value: .ints([p.kh, p.kw])), Attribute(name: "strides", value: .ints([p.stride, p.stride])),
                    Attribute(name: "pads", value: .ints([p.padBegin, p.padBegin, p.padEnd, p.padEnd])),
                    Attribute(name: "dilations", value: .ints([p.dilation, p.dilation])), Attribute(name: "group", value: .int(p.group)),
                ])
                let g = Graph(name: "conv", inputs: [ValueInfo(name: "x", type: TensorType(dtype: x.dtype, shape: x.shape))],
                              outputs: [ValueInfo(name: "y", type: nil)], nodes: [node], initializers: initializers)
                let want = Self.reference(p, x: xv, w: wv, xZero: xZero, wZero: wZero)
                for avx512 in [true, false] {
                    var options = RuntimeOptions.default
                    options.avx512 = avx512
                    let y: Tensor = try #require(try Executor(graph: g, options: options).run(["x": x])["y"])
                    let shape: [Int] = [p.n, p.m, p.oh, p.ow]
                    #expect(y.dtype == DType.int32 && y.shape == shape, "\(p): \(y.dtype) \(y.shape)")
                    let got: [Int32] = y.dtype == .int32 ? y.scalars(as: Int32.self) : []
                    let label = "\(p) x signed \(xSigned) w signed \(wSigned), w zero points \(wZero.count), avx512 \(avx512)"
                    #expect(got == want, "\(label)")
                }
            }
        }
    }

    /// `g`'s output y equals `want` with AVX-512 allowed (the vector and VNNI kernels where the CPU
    /// has them) and off (the portable loops).
    static func expectOnBothPaths(_ g: Graph, _ feeds: [String: Tensor], _ want: Tensor?, _ label: (Bool) -> String) throws {
        for avx512 in [true, false] {
            var options = RuntimeOptions.default
            options.avx512 = avx512
            let y = try Executor(graph: g, options: options).run(feeds)["y"]
            #expect(y == want, "\(label(avx512)): \(String(describing: y)) vs \(String(describing: want))")
        }
    }

    /// The requantization chain as DLTFLite writes it (`fixedPointMultiply`, then the output
    /// quanta as a real value, an optional activation, QuantizeLinear), over x [2, 3, C].
    /// With `activation` "none" the chain stops at u (plus one, so u is no graph output), as
    /// the scaled inputs of an 8-bit ADD do.
    static func chain(c: Int, left: Bool, activation: String, output: DType, wideInput: Bool, centred: DType? = nil, rows: Int = 3,
                      constants: (left: [Double], multiplier: [Double], right: [Double])? = nil) -> Graph {
        var nodes: [Node] = []
        var initializers = NamedTensors()
        func constant(_ name: String, _ t: Tensor) -> String { initializers[name] = t; return name }
        func add(_ op: String, _ ins: [String], _ out: String, _ attrs: [Attribute] = []) -> String {
            nodes.append(Node(name: out, opType: op, inputs: ins, outputs: [out], attributes: attrs))
            return out
        }
        func cast(_ x: String, _ t: DType, _ out: String) -> String { add("Cast", [x], out, [Attribute(name: "to", value: .int(Int(t.onnxCode)))]) }
        let half = constant("half", Tensor(shape: [], scalars: [0.5]))
        // Exact halves on purpose (0.5, 2^-1 shifts) next to ordinary Q31 multipliers.
        let fractions: [Double] = constants?.multiplier ?? (0..<c).map { (j: Int) -> Double in
            let q: Int = 1_073_741_824 + 97_531 * (j + 1)
            return j % 3 == 0 ? 0.5 : Double(q) / 2_147_483_648
        }
        let shape = c > 1 ? [c] : []
        var t = wideInput ? "x" : cast("x", .float64, "wide")
        if centred != nil {
            // An 8-bit ADD's input: (x − zero point)·2^20, then the fixed-point multiply's own Cast.
            t = add("Sub", [t, constant("x_zero", Tensor(shape: [], scalars: [Double(centred == .int8 ? -3 : 129)]))], "centred")
            t = cast(add("Mul", [t, constant("shift", Tensor(shape: [], scalars: [Double(1 << 20)]))], "shifted_in"), .float64, "wide_again")
        }
        if left { t = add("Mul", [t, constant("left", Tensor(shape: shape, scalars: constants?.left ?? (0..<c).map { Double(1 << ($0 % 3)) }))], "shifted") }
        t = add("Mul", [t, constant("multiplier", Tensor(shape: shape, scalars: fractions))], "high")
        t = add("Floor", [add("Add", [t, half], "nudged")], "rounded")
        let d = add("Mul", [t, constant("right", Tensor(shape: shape, scalars: constants?.right ?? (0..<c).map { 1 / Double(1 << ($0 % 4)) }))], "divided")
        let magnitude = add("Floor", [add("Add", [add("Abs", [d], "magnitude"), half], "magnitude_nudged")], "magnitude_rounded")
        let u = add("Mul", [magnitude, add("Sign", [d], "sign")], "quanta")
        if activation == "none" {
            _ = add("Add", [u, constant("one", Tensor(shape: [], scalars: [1.0]))], "y")
            return Graph(name: "fixed_point", inputs: [ValueInfo(name: "x", type: TensorType(dtype: centred ?? (wideInput ? .float64 : .int32), shape: [2, rows, c]))],
                         outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: initializers)
        }
        let yScale = constant("y_scale", Tensor(shape: [], scalars: [Float(0.0372)]))
        var real = add("Mul", [cast(u, .float32, "quanta32"), yScale], "real")
        switch activation {
        case "Relu": real = add("Relu", [real], "relu")
        case "Clip": real = add("Clip", [real, constant("lo", Tensor(shape: [], scalars: [Float(-1)])), constant("hi", Tensor(shape: [], scalars: [Float(6)]))], "clip")
        default: break
        }
        let zero = constant("y_zero", output == .int8 ? Tensor(shape: [], scalars: [Int8(-5)]) : Tensor(shape: [], scalars: [UInt8(130)]))
        _ = add("QuantizeLinear", [real, yScale, zero], "y")
        return Graph(name: "requantize", inputs: [ValueInfo(name: "x", type: TensorType(dtype: wideInput ? .float64 : .int32, shape: [2, rows, c]))],
                     outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: initializers)
    }

    @Test(arguments: ["", "Relu", "Clip", "none"])
    func requantizeIsTheChainToTheBit(activation: String) throws {
        for (c, left, output, wide) in [(5, true, DType.int8, false), (1, false, .uint8, false), (7, false, .int8, true), (3, true, .uint8, true)] {
            let g = Self.chain(c: c, left: left, activation: activation, output: output, wideInput: wide)
            let fused = GraphOptimizer.optimize(g).0
            let expected = activation == "none" ? ["FixedPointMultiply", "Add"] : ["Requantize"]
            #expect(fused.nodes.map(\.opType) == expected, "\(fused.nodes.map(\.opType))")
            // Sums from small to past int32's range of products, odd and even, both signs.
            let n = 2 * 3 * c
            let magnitudes: [Int32] = [0, 1, 3, 7, 101, 4_099, 65_537, 1_000_003, 123_456_789, Int32.max]
            let sums: [Int32] = (0..<n).map { (i: Int) -> Int32 in
                let m = magnitudes[i % magnitudes.count]
                if i % 2 == 0 { return m }
                return m == Int32.max ? Int32.min : -m
            }
            let x = wide ? Tensor(shape: [2, 3, c], scalars: sums.map(Double.init)) : Tensor(shape: [2, 3, c], scalars: sums)
            let want = try runNodeByNode(g, ["x": x])["y"]
            try Self.expectOnBothPaths(g, ["x": x], want) { "C \(c) left \(left) \(output) float64 input \(wide) avx512 \($0)" }
        }
    }

    /// TFLite's `MultiplyByQuantizedMultiplier` in Int64 as its reference kernel states it: the
    /// left shift, the rounding doubling high multiply (nudge 2^30, or 1 − 2^30 below zero, then
    /// division truncating toward zero), the rounding right shift (half away from zero).
    static func tfliteQuanta(_ x: Int64, left: Int, q: Int64, right: Int) -> Int64 {
        let ab = (x << Int64(left)) * q
        let nudge: Int64 = ab >= 0 ? 1 << 30 : 1 - (1 << 30)
        let high = (ab + nudge) / (1 << 31)
        let mask = (Int64(1) << Int64(right)) - 1, remainder = high & mask
        let threshold = (mask >> 1) + (high < 0 ? 1 : 0)
        return (high >> Int64(right)) + (remainder > threshold ? 1 : 0)
    }

    /// Requantize of int32 sums in integers (`IntegerRequantize.Fixed`): random Q31 multipliers
    /// and shifts per channel, widths on and off the sixteen-lane vectors (1, 15, 16, 17, 33, 37;
    /// 16, 32 and 48 take the loop of sixty-four sums through the rows, narrowed in 16-bit lanes,
    /// 48 × 18 with a tail of 32), sums up to and past the 2^21 bound of the integer path (those
    /// take the float64 chain) in the same vectors, every activation: equal to the chain run node
    /// by node (AVX-512 and the portable loop) and, for sums inside the bound, to TFLite's rule in Int64.
    @Test(arguments: ["", "Relu", "Clip"])
    func requantizeInIntegersIsTheChainAndTFLite(activation: String) throws {
        // (16, 33) shift no channel left (the vector loops' other instance: no limit loads).
        for (c, output, seed, shiftsLeft) in [(1, DType.int8, 1, true), (15, .uint8, 2, true), (17, .int8, 3, true), (37, .uint8, 4, true),
                                              (16, .int8, 5, false), (33, .uint8, 6, false), (32, .uint8, 7, true), (48, .int8, 8, true)] {
            var s = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
            func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 11 }
            let shifts = (0..<c).map { _ in shiftsLeft ? Int(next() % 3) : 0 }
            let qs = (0..<c).map { _ in Int64(1 << 30) + Int64(next() % (1 << 30)) }
            let rights = (0..<c).map { j in j == 1 ? 35 : Int(next() % 12) }
            let constants = (left: shifts.map { Double(1 << $0) }, multiplier: qs.map { Double($0) / 2_147_483_648 },
                             right: rights.map { 1 / Double(sign: .plus, exponent: $0, significand: 1) })
            let rows = 9
            let g = Self.chain(c: c, left: true, activation: activation, output: output, wideInput: false, rows: rows, constants: constants)
            #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["Requantize"])
            let n = 2 * rows * c
            let sums: [Int32] = (0..<n).map { i in
                let j = i % c, bound = Int64(1 << 21) >> Int64(shifts[j])
                let r = Int64(next() % UInt64(2 * bound)) - bound
                switch i % 11 {
                case 0: return Int32(bound - 1)
                case 1: return Int32(-bound + 1)
                case 2 where i > n / 2: return Int32(bound)  // past the bound: the float64 chain
                case 3: return Int32(r >> 12)  // small, where most outputs land inside the range
                default: return Int32(r >> Int64(next() % 14))
                }
            }
            let x = Tensor(shape: [2, rows, c], scalars: sums)
            let want = try runNodeByNode(g, ["x": x])["y"]
            try Self.expectOnBothPaths(g, ["x": x], want) { "C \(c) \(output) \(activation) avx512 \($0)" }
            // The chain's quanta are TFLite's inside the bound.
            let yScale = Float(0.0372), zero: Int64 = output == .int8 ? -5 : 130
            let (lo, hi): (Int64, Int64) = output == .int8 ? (-128, 127) : (0, 255)
            let got = want.map { $0.doubles().map { Int64($0) } } ?? []
            for (i, v) in sums.enumerated() {
                let j = i % c
                guard Int64(v).magnitude < UInt64((1 << 21) >> shifts[j]) else { continue }
                var u = Self.tfliteQuanta(Int64(v), left: shifts[j], q: qs[j], right: rights[j])
                if activation == "Relu" { u = max(u, 0) }
                if activation == "Clip" { u = min(max(u, Int64((Float(-1) / yScale).rounded(.toNearestOrEven))), Int64((Float(6) / yScale).rounded(.toNearestOrEven))) }
                let expected = min(max(u + zero, lo), hi)
                guard i < got.count, got[i] == expected else {
                    Issue.record("sum \(v) at channel \(j): TFLite \(expected), chain \(i < got.count ? got[i] : -999)")
                    break
                }
            }
        }
    }

    /// The integer form of a requantization is kept per set of constant tensors: two models of
    /// the same width and scales but other multipliers, run by turns, each keep their own.
    @Test func requantizeKeepsEachModelsOwnConstants() throws {
        let c = 16, rows = 3
        func model(_ k: Int) -> Graph {
            let multiplier: [Double] = (0..<c).map { (j: Int) -> Double in
                let q: Int = (1 << 30) + 7_919 * (j + 1) * (k + 1)
                return Double(q) / 2_147_483_648
            }
            let right = [Double](repeating: 1.0 / Double(1 << (k + 2)), count: c)
            return Self.chain(c: c, left: true, activation: "", output: .int8, wideInput: false, rows: rows,
                              constants: (left: [Double](repeating: 1, count: c), multiplier: multiplier, right: right))
        }
        let graphs = [model(0), model(1)]
        let sums: [Int32] = (0..<(2 * rows * c)).map { (i: Int) -> Int32 in Int32(i * 977 % 20_011) - 10_000 }
        let x = Tensor(shape: [2, rows, c], scalars: sums)
        let wants = try graphs.map { try runNodeByNode($0, ["x": x])["y"] }
        #expect(wants[0] != wants[1])
        let executors = try graphs.map { try Executor(graph: $0) }
        for round in 0..<2 {
            for (k, e) in executors.enumerated() {
                #expect(try e.run(["x": x])["y"] == wants[k], "model \(k), round \(round)")
            }
        }
    }

    /// An 8-bit ADD/SUB's raw sum, Add or Sub of two FixedPointMultiply results: one
    /// `FixedPointAdd` equal to the two multiplies and the Add run node by node, for int8 and
    /// uint8, the byte tables (one shape) and the ops it replaces (a broadcast operand).
    @Test(arguments: [DType.int8, .uint8])
    func fixedPointAddIsTheUnfusedPair(_ type: DType) throws {
        for (shapeB, op) in [([2, 3, 37], "Add"), ([2, 3, 37], "Sub"), ([37], "Add"), ([1, 1, 1], "Sub")] {
            var initializers = NamedTensors()
            func f64(_ name: String, _ v: Double) -> String { initializers[name] = Tensor(shape: [], scalars: [v]); return name }
            func multiply(_ x: String, _ k: String, zero: Double, fraction: Double, right: Double, left: Bool) -> Node {
                Node(name: "u_" + x, opType: "FixedPointMultiply", domain: "ai.dlkit",
                     inputs: [x, left ? f64(k + "_left", 2) : "", f64(k + "_multiplier", fraction), f64(k + "_right", right),
                              f64(k + "_offset", zero), f64(k + "_scale", Double(1 << 20))], outputs: ["u_" + x])
            }
            let zeros: (Double, Double) = type == .int8 ? (-3, 11) : (128, 97)
            let nodes = [multiply("a", "a", zero: zeros.0, fraction: 1_398_101_333 / 2_147_483_648, right: 1.0 / 2, left: false),
                         multiply("b", "b", zero: zeros.1, fraction: 0.5, right: 1.0 / 8, left: true),
                         Node(name: "sum", opType: op, inputs: ["u_a", "u_b"], outputs: ["y"])]
            let g = Graph(name: "add8", inputs: [ValueInfo(name: "a", type: TensorType(dtype: type, shape: [2, 3, 37])),
                                                 ValueInfo(name: "b", type: TensorType(dtype: type, shape: shapeB))],
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: initializers)
            #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["FixedPointAdd"])
            let a = Self.tensor(Self.bytes(2 * 3 * 37, seed: 5), signed: type == .int8, shape: [2, 3, 37])
            let b = Self.tensor(Self.bytes(shapeB.reduce(1, *), seed: 6), signed: type == .int8, shape: shapeB)
            let want = try #require(try runNodeByNode(g, ["a": a, "b": b])["y"])
            try Self.expectOnBothPaths(g, ["a": a, "b": b], want) { "\(type) \(op) b \(shapeB) avx512 \($0)" }
        }
    }

    /// The Requantize of an 8-bit ADD/SUB's sum joins the FixedPointAdd (eighteen inputs): its
    /// bytes equal the FixedPointAdd and the Requantize run node by node, through the 256 x 256
    /// byte table (8-bit inputs of one shape, one value per constant, each activation) and
    /// through the sum and the Requantize (a broadcast operand, per-channel constants).
    @Test(arguments: [DType.int8, .uint8])
    func requantizedFixedPointAddIsTheUnfusedPair(_ type: DType) throws {
        let cases: [([Int], Int, String, DType)] = [([2, 3, 37], 0, "Clip", .int8), ([2, 3, 37], 1, "", .uint8), ([2, 3, 37], 0, "Relu", .uint8),
                                                    ([37], 0, "Clip", .int8), ([2, 3, 37], 1, "perChannel", .int8)]
        for (shapeB, subtract, activation, output) in cases {
            var initializers = NamedTensors()
            func f64(_ name: String, _ v: [Double]) -> String {
                initializers[name] = Tensor(shape: v.count == 1 ? [] : [v.count], scalars: v)
                return name
            }
            let zeros: (Double, Double) = type == .int8 ? (-3, 11) : (128, 97)
            func side(_ x: String, zero: Double, fraction: Double, right: Double, left: Bool) -> [String] {
                [x, left ? f64(x + "_left", [2]) : "", f64(x + "_multiplier", [fraction]), f64(x + "_right", [right]),
                 f64(x + "_offset", [zero]), f64(x + "_scale", [Double(1 << 20)])]
            }
            let perChannel = activation == "perChannel"
            initializers["real_scale"] = Tensor(shape: [], scalars: [Float(0.0421)])
            initializers["y_scale"] = Tensor(shape: [], scalars: [Float(0.0421)])
            initializers["y_zero"] = output == .int8 ? Tensor(shape: [], scalars: [Int8(-7)]) : Tensor(shape: [], scalars: [UInt8(121)])
            let requantize = ["", f64("multiplier", perChannel ? (0..<37).map { 0.5 + Double($0) / 100 } : [1_518_500_250 / 2_147_483_648]),
                              f64("right", [1.0 / 1024]), "real_scale", "y_scale", "y_zero"]
            var attributes = [Attribute(name: "subtract", value: .int(subtract))]
            if !perChannel, !activation.isEmpty { attributes.append(Attribute(name: "activation", value: .string(activation))) }
            if activation == "Clip" {
                attributes += [Attribute(name: "activation_alpha", value: .float(-1.5)), Attribute(name: "activation_beta", value: .float(2))]
            }
            let sum = Node(name: "sum", opType: "FixedPointAdd", domain: "ai.dlkit",
                           inputs: side("a", zero: zeros.0, fraction: 1_398_101_333 / 2_147_483_648, right: 1.0 / 2, left: false)
                               + side("b", zero: zeros.1, fraction: 0.5, right: 1.0 / 8, left: true),
                           outputs: ["s"], attributes: Array(attributes.prefix(1)))
            let quantize = Node(name: "q", opType: "Requantize", domain: "ai.dlkit", inputs: ["s"] + requantize, outputs: ["y"],
                                attributes: Array(attributes.dropFirst()))
            let g = Graph(name: "add8", inputs: [ValueInfo(name: "a", type: TensorType(dtype: type, shape: [2, 3, 37])),
                                                 ValueInfo(name: "b", type: TensorType(dtype: type, shape: shapeB))],
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: [sum, quantize], initializers: initializers)
            let fused = GraphOptimizer.optimize(g).0
            #expect(fused.nodes.map(\.opType) == ["FixedPointAdd"] && fused.nodes.first?.inputs.count == 18, "\(fused.nodes.map(\.opType))")
            let a = Self.tensor(Self.bytes(2 * 3 * 37, seed: 15), signed: type == .int8, shape: [2, 3, 37])
            let b = Self.tensor(Self.bytes(shapeB.reduce(1, *), seed: 16), signed: type == .int8, shape: shapeB)
            let want = try #require(try runNodeByNode(g, ["a": a, "b": b])["y"])
            #expect(want.dtype == output)
            for round in 0..<2 {
                try Self.expectOnBothPaths(g, ["a": a, "b": b], want) { "\(type) subtract \(subtract) \(activation) b \(shapeB) round \(round) avx512 \($0)" }
            }
        }
    }

    /// An 8-bit MEAN's sum as DLTFLite writes it, ReduceSum(Sub(Cast<float64>(x), zero point)):
    /// one `CentredSum`, equal to the chain run node by node and to an Int64 reference, over odd
    /// shapes (1-wide axes, 37 channels), both keepdims, contiguous axes (the integer loop) and
    /// not (the ops it replaces).
    @Test(arguments: [DType.int8, .uint8])
    func centredSumIsTheChainAndTheReference(_ type: DType) throws {
        for (shape, axes, keep) in [([1, 7, 5, 37], [1, 2], 1), ([2, 1, 3, 1], [1, 2], 0), ([3, 4, 5], [-1], 1), ([2, 3, 4], [0, 2], 0)] {
            let zero = Double(type == .int8 ? -7 : 131)
            let g = Graph(name: "mean", inputs: [ValueInfo(name: "x", type: TensorType(dtype: type, shape: shape))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          nodes: [Node(name: "wide", opType: "Cast", inputs: ["x"], outputs: ["wide"],
                                       attributes: [Attribute(name: "to", value: .int(Int(DType.float64.onnxCode)))]),
                                  Node(name: "centred", opType: "Sub", inputs: ["wide", "zero"], outputs: ["centred"]),
                                  Node(name: "sum", opType: "ReduceSum", inputs: ["centred", "axes"], outputs: ["y"],
                                       attributes: [Attribute(name: "keepdims", value: .int(keep))])],
                          initializers: NamedTensors([("zero", Tensor(shape: [], scalars: [zero])), ("axes", Tensor(shape: [axes.count], scalars: axes.map(Int64.init)))]))
            #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["CentredSum"])
            let count = shape.reduce(1, *)
            let bytes = Self.bytes(count, seed: UInt64(count))
            let x = Self.tensor(bytes, signed: type == .int8, shape: shape)
            let want = try #require(try runNodeByNode(g, ["x": x])["y"])
            // The reference: Σ (x − zero) in Int64 over the reduced axes.
            let reduced = Set(axes.map { $0 < 0 ? $0 + shape.count : $0 })
            let kept = shape.indices.filter { !reduced.contains($0) }
            var sums: [Int64] = Array(repeating: 0, count: kept.map { shape[$0] }.reduce(1, *))
            let values = x.doubles()
            for flat in 0..<count {
                var rest = flat, index = [Int](repeating: 0, count: shape.count)
                for k in shape.indices.reversed() { (index[k], rest) = (rest % shape[k], rest / shape[k]) }
                let at = kept.reduce(0) { $0 * shape[$1] + index[$1] }
                sums[at] += Int64(values[flat]) - Int64(zero)
            }
            #expect(want.doubles() == sums.map(Double.init), "\(shape) axes \(axes)")
            try Self.expectOnBothPaths(g, ["x": x], want) { "\(type) \(shape) axes \(axes) keepdims \(keep) avx512 \($0)" }
        }
    }

    /// An 8-bit ADD's scaled input, Cast, Sub(zero point), Mul(2^20), then the fixed-point
    /// multiply: one FixedPointMultiply over the 8-bit values, the chain's bits (vector and scalar).
    @Test(arguments: [DType.int8, .uint8])
    func fixedPointMultiplyTakesInTheCentring(_ type: DType) throws {
        for (c, left) in [(5, true), (1, false), (19, false)] {
            let g = Self.chain(c: c, left: left, activation: "none", output: .int8, wideInput: false, centred: type)
            let fused = GraphOptimizer.optimize(g).0
            #expect(fused.nodes.map(\.opType) == ["FixedPointMultiply", "Add"], "\(fused.nodes.map(\.opType))")
            let bytes = Self.bytes(2 * 3 * c, seed: UInt64(c))
            let x = Self.tensor(bytes, signed: type == .int8, shape: [2, 3, c])
            let want = try runNodeByNode(g, ["x": x])["y"]
            try Self.expectOnBothPaths(g, ["x": x], want) { "\(type) C \(c) left \(left) avx512 \($0)" }
        }
    }

    /// Channels-last shapes for `ai.dlkit.ConvIntegerNHWC`: the NCHW cases above plus depthwise
    /// ones off the kernel's sixteen-channel vectors (1, 17, 35 channels), strided, dilated, with
    /// uneven padding and 1-wide images, and 1×1 convs the product reads in place.
    static let nhwcConvs: [Conv] = convs + [
        Conv(n: 1, c: 17, h: 6, w: 5, m: 17, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 17),
        Conv(n: 2, c: 35, h: 7, w: 9, m: 35, kh: 3, kw: 3, stride: 2, padBegin: 0, padEnd: 1, dilation: 1, group: 35),
        Conv(n: 1, c: 32, h: 9, w: 1, m: 32, kh: 5, kw: 1, stride: 1, padBegin: 2, padEnd: 2, dilation: 2, group: 32),
        Conv(n: 1, c: 1, h: 4, w: 4, m: 1, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 1),
        Conv(n: 1, c: 16, h: 5, w: 3, m: 33, kh: 1, kw: 1, stride: 1, padBegin: 0, padEnd: 0, dilation: 1, group: 1),
        Conv(n: 2, c: 12, h: 3, w: 7, m: 70, kh: 1, kw: 1, stride: 2, padBegin: 0, padEnd: 0, dilation: 1, group: 1),
        Conv(n: 1, c: 24, h: 6, w: 6, m: 8, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 4),
        // Large enough for the pool to split (bands of rows, tiles of the product) at 2 threads.
        Conv(n: 2, c: 48, h: 40, w: 37, m: 48, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 48),
        Conv(n: 1, c: 32, h: 48, w: 45, m: 40, kh: 1, kw: 1, stride: 1, padBegin: 0, padEnd: 0, dilation: 1, group: 1),
        Conv(n: 1, c: 8, h: 50, w: 41, m: 24, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 1),
        // Patch rows copied a kernel row at a time: an RGB first layer, and runs of 72 bytes.
        Conv(n: 1, c: 3, h: 11, w: 13, m: 32, kh: 3, kw: 3, stride: 2, padBegin: 0, padEnd: 1, dilation: 1, group: 1),
        Conv(n: 1, c: 24, h: 6, w: 7, m: 8, kh: 3, kw: 3, stride: 1, padBegin: 1, padEnd: 1, dilation: 1, group: 1),
    ]

    /// Transpose to NCHW, ConvInteger, transpose back and an int32 bias, as DLTFLite writes an
    /// integer conv, and a Requantize of the sums (per-channel constants, Clip): fused into one
    /// `ConvIntegerNHWC`, whose run (AVX-512 VNNI where the CPU has it, and AVX-512 off: the ops
    /// it replaces) equals the unfused graph run node by node.
    @Test(arguments: [(false, true), (true, true), (true, false)])
    func convIntegerNHWCIsTheUnfusedGraph(xSigned: Bool, wSigned: Bool) throws {
        for (i, p) in Self.nhwcConvs.enumerated() {
            let xb = Self.bytes(p.n * p.c * p.h * p.w, seed: UInt64(200 + i)), wb = Self.bytes(p.m * (p.c / p.group) * p.kh * p.kw, seed: UInt64(300 + i))
            let x = Self.tensor(xb, signed: xSigned, shape: [p.n, p.h, p.w, p.c]), w = Self.tensor(wb, signed: wSigned, shape: [p.m, p.c / p.group, p.kh, p.kw])
            let xZero: UInt8 = xSigned ? UInt8(bitPattern: -7) : 131
            let perChannel: [UInt8] = (0..<p.m).map { (j: Int) -> UInt8 in wSigned ? UInt8(bitPattern: Int8(j % 5 - 2)) : UInt8(120 + j % 9) }
            for (wZero, withBias, requantize) in [([UInt8](), true, false), ([UInt8(wSigned ? 3 : 128)], false, false), (perChannel, true, false),
                                                  (perChannel, true, true), ([UInt8](), false, true)] {
                var initializers = NamedTensors()
                initializers["w"] = w
                initializers["xz"] = Self.tensor([xZero], signed: xSigned, shape: [])
                initializers["wz"] = Self.tensor(wZero, signed: wSigned, shape: wZero.count == 1 ? [] : [wZero.count])
                initializers["b"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { Int32($0 * 7919 % 2001) - 1000 })
                initializers["left"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { Double(1 << ($0 % 2)) })
                initializers["multiplier"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { Double(1_073_741_824 + 7_654_321 * $0) / 2_147_483_648 })
                initializers["right"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { 1 / Double(1 << (6 + $0 % 3)) })
                initializers["real_scale"] = Tensor(shape: [], scalars: [Float(0.031)])
                initializers["y_scale"] = Tensor(shape: [], scalars: [Float(0.031)])
                initializers["y_zero"] = Tensor(shape: [], scalars: [Int8(-3)])
                initializers["lo"] = Tensor(shape: [], scalars: [Float(0)])
                initializers["hi"] = Tensor(shape: [], scalars: [Float(3)])
                let window: [Attribute] = [
                    Attribute(name: "kernel_shape", value: .ints([p.kh, p.kw])), Attribute(name: "strides", value: .ints([p.stride, p.stride])),
                    Attribute(name: "pads", value: .ints([p.padBegin, p.padBegin, p.padEnd, p.padEnd])),
                    Attribute(name: "dilations", value: .ints([p.dilation, p.dilation])), Attribute(name: "group", value: .int(p.group)),
                ]
                var nodes = [
                    Node(name: "nchw", opType: "Transpose", inputs: ["x"], outputs: ["xt"], attributes: [Attribute(name: "perm", value: .ints([0, 3, 1, 2]))]),
                    Node(name: "conv", opType: "ConvInteger", inputs: ["xt", "w", "xz"] + (wZero.isEmpty ? [] : ["wz"]), outputs: ["s"], attributes: window),
                    Node(name: "nhwc", opType: "Transpose", inputs: ["s"], outputs: [withBias ? "st" : requantize ? "sums" : "y"], attributes: [Attribute(name: "perm", value: .ints([0, 2, 3, 1]))]),
                ]
                if withBias { nodes.append(Node(name: "bias", opType: "Add", inputs: ["st", "b"], outputs: [requantize ? "sums" : "y"])) }
                if requantize {
                    nodes.append(Node(name: "requantize", opType: "Requantize", domain: "ai.dlkit",
                                      inputs: ["sums", "left", "multiplier", "right", "real_scale", "y_scale", "y_zero"], outputs: ["y"],
                                      attributes: [Attribute(name: "activation", value: .string("Clip")), Attribute(name: "activation_alpha", value: .float(0)),
                                                   Attribute(name: "activation_beta", value: .float(3))]))
                }
                let g = Graph(name: "conv", inputs: [ValueInfo(name: "x", type: TensorType(dtype: x.dtype, shape: x.shape))],
                              outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: initializers)
                let fused = GraphOptimizer.optimize(g).0
                #expect(fused.nodes.map(\.opType) == ["ConvIntegerNHWC"] && fused.nodes.first?.inputs.count == (requantize ? 11 : 5),
                        "\(p): \(fused.nodes.map(\.opType))")
                let want = try runNodeByNode(g, ["x": x])["y"]
                for (avx512, threads) in [(true, 1), (true, 2), (false, 1)] {
                    var options = RuntimeOptions.default
                    options.avx512 = avx512
                    options.threads = threads
                    let y = try Executor(graph: g, options: options).run(["x": x])["y"]
                    #expect(y == want, "\(p) x signed \(xSigned) w signed \(wSigned), w zero points \(wZero.count), bias \(withBias), requantize \(requantize), avx512 \(avx512), threads \(threads)")
                    #expect(y?.dtype == (requantize ? .int8 : .int32))
                }
            }
        }
    }

    /// QLinearConv on the integer path (channels last inside, VNNI) against what runs with
    /// AVX-512 off (DequantizeLinear, the float32 Conv, QuantizeLinear): per-channel scales and
    /// zero points, a bias, every odd shape above; outputs within one quantum (float sums round
    /// differently from integer ones at a half).
    @Test(arguments: [(false, true), (true, true)])
    func qlinearConvIsTheGeneralKernelWithinOneQuantum(xSigned: Bool, wSigned: Bool) throws {
        for (i, p) in Self.nhwcConvs.enumerated() {
            let xb = Self.bytes(p.n * p.c * p.h * p.w, seed: UInt64(400 + i)), wb = Self.bytes(p.m * (p.c / p.group) * p.kh * p.kw, seed: UInt64(500 + i))
            var initializers = NamedTensors()
            initializers["w"] = Self.tensor(wb, signed: wSigned, shape: [p.m, p.c / p.group, p.kh, p.kw])
            initializers["xs"] = Tensor(shape: [], scalars: [Float(0.02)])
            initializers["xz"] = Self.tensor([xSigned ? UInt8(bitPattern: -9) : 121], signed: xSigned, shape: [])
            initializers["ws"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { Float(0.003) + Float($0 % 7) * 0.0007 })
            initializers["wz"] = Self.tensor((0..<p.m).map { _ in UInt8(0) }, signed: wSigned, shape: [p.m])
            initializers["ys"] = Tensor(shape: [], scalars: [Float(0.05)])
            initializers["yz"] = Tensor(shape: [], scalars: [UInt8(128)])
            initializers["b"] = Tensor(shape: [p.m], scalars: (0..<p.m).map { Int32($0 * 7919 % 4001) - 2000 })
            let node = Node(name: "qconv", opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], outputs: ["y"], attributes: [
                Attribute(name: "kernel_shape", value: .ints([p.kh, p.kw])), Attribute(name: "strides", value: .ints([p.stride, p.stride])),
                Attribute(name: "pads", value: .ints([p.padBegin, p.padBegin, p.padEnd, p.padEnd])),
                Attribute(name: "dilations", value: .ints([p.dilation, p.dilation])), Attribute(name: "group", value: .int(p.group)),
            ])
            let x = Self.tensor(xb, signed: xSigned, shape: [p.n, p.c, p.h, p.w])
            let g = Graph(name: "qconv", inputs: [ValueInfo(name: "x", type: TensorType(dtype: x.dtype, shape: x.shape))],
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: [node], initializers: initializers)
            var off = RuntimeOptions.default
            off.avx512 = false
            let want = try #require(try Executor(graph: g, options: off).run(["x": x])["y"])
            let got = try #require(try Executor(graph: g).run(["x": x])["y"])
            #expect(got.shape == want.shape && got.dtype == want.dtype, "\(p): \(got.shape) vs \(want.shape)")
            let diffs = zip(got.doubles(), want.doubles()).map { Swift.abs($0 - $1) }
            #expect(diffs.allSatisfy { $0 <= 1 }, "\(p) x signed \(xSigned) w signed \(wSigned): max diff \(diffs.max() ?? 0)")
            #expect(got.elementCount < 8 || Set(got.doubles()).count > 2, "\(p): outputs should not all saturate")
        }
    }

    /// MatMulInteger (B a constant: packed once, as a 1×1 channels-last conv on VNNI; AVX-512
    /// off: IntegerGemm's scalar loop) against Σ (a − za)(b − zb) in Int64, rows and columns off
    /// the kernel's blocks, A of rank 3, zero points one for A and one per column of B.
    @Test(arguments: [(false, true), (true, true), (true, false), (false, false)])
    func matMulIntegerMatchesTheReference(aSigned: Bool, bSigned: Bool) throws {
        for (i, (lead, m, k, n)) in [(1, 1, 1, 1), (1, 5, 7, 19), (2, 3, 64, 33), (1, 1, 1280, 100), (3, 4, 3, 16)].enumerated() {
            let ab = Self.bytes(lead * m * k, seed: UInt64(600 + i)), bb = Self.bytes(k * n, seed: UInt64(700 + i))
            let za: UInt8 = aSigned ? UInt8(bitPattern: -5) : 133
            let zb: [UInt8] = (0..<n).map { j in bSigned ? UInt8(bitPattern: Int8(j % 7 - 3)) : UInt8(125 + j % 6) }
            func v(_ x: UInt8, _ signed: Bool) -> Int64 { signed ? Int64(Int8(bitPattern: x)) : Int64(x) }
            var want = [Int32](repeating: 0, count: lead * m * n)
            for r in 0..<(lead * m) {
                for j in 0..<n {
                    var acc: Int64 = 0
                    for t in 0..<k { acc += (v(ab[r * k + t], aSigned) - v(za, aSigned)) * (v(bb[t * n + j], bSigned) - v(zb[j], bSigned)) }
                    want[r * n + j] = Int32(acc)
                }
            }
            var initializers = NamedTensors()
            initializers["b"] = Self.tensor(bb, signed: bSigned, shape: [k, n])
            initializers["za"] = Self.tensor([za], signed: aSigned, shape: [])
            initializers["zb"] = Self.tensor(zb, signed: bSigned, shape: [n])
            let a = Self.tensor(ab, signed: aSigned, shape: [lead, m, k])
            let g = Graph(name: "mm", inputs: [ValueInfo(name: "a", type: TensorType(dtype: a.dtype, shape: a.shape))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          nodes: [Node(opType: "MatMulInteger", inputs: ["a", "b", "za", "zb"], outputs: ["y"])], initializers: initializers)
            for avx512 in [true, false] {
                var options = RuntimeOptions.default
                options.avx512 = avx512
                let y = try #require(try Executor(graph: g, options: options).run(["a": a])["y"])
                #expect(y.shape == [lead, m, n] && y.scalars(as: Int32.self) == want, "[\(lead),\(m),\(k)] x [\(k),\(n)] avx512 \(avx512)")
            }
        }
    }

    /// QuantizeLinear and DequantizeLinear with one scale and zero point (the QDQ pairs around
    /// every activation) on AVX-512 equal their general kernels: exact halves, both saturations,
    /// NaN, 1 to 37 elements (the 16-lane tails).
    @Test(arguments: [DType.int8, .uint8])
    func quantizeAndDequantizeAreTheGeneralKernels(_ type: DType) throws {
        let scale: Float = 0.25, zero: Int64 = type == .int8 ? -3 : 131
        for n in [1, 15, 16, 37] {
            let values: [Float] = (0..<n).map { i in
                switch i % 7 {
                case 0: return Float(i) * 0.125 - 2          // multiples of half a quantum
                case 1: return 1e9
                case 2: return -1e9
                case 3: return .nan
                default: return Float(i % 13) * 0.37 - 2.1
                }
            }
            var initializers = NamedTensors()
            initializers["s"] = Tensor(shape: [], scalars: [scale])
            initializers["z"] = type == .int8 ? Tensor(shape: [], scalars: [Int8(zero)]) : Tensor(shape: [], scalars: [UInt8(zero)])
            let g = Graph(name: "qdq", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [n]))],
                          outputs: [ValueInfo(name: "q", type: nil), ValueInfo(name: "y", type: nil)],
                          nodes: [Node(opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                                  Node(opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["y"])], initializers: initializers)
            let x = Tensor(shape: [n], scalars: values)
            var off = RuntimeOptions.default
            off.avx512 = false
            let want = try Executor(graph: g, options: off).run(["x": x]), got = try Executor(graph: g).run(["x": x])
            #expect(got["q"] == want["q"] && got["q"]?.dtype == type, "\(type) n \(n): \(String(describing: got["q"])) vs \(String(describing: want["q"]))")
            #expect(got["y"] == want["y"], "\(type) n \(n)")
        }
    }
}
