import DLGraph
import DLKit
import DLONNX
import DLTensor
import FuzzSupport
import Glibc

/// libFuzzer entry, structure-aware: the bytes are decisions (`FuzzChoices`) that build a one-node
/// ONNX model from a grammar, for every op the importer knows (`OpSet.schemas`):
///
///   model     := opset (7-21), node(op, inputs, attributes, outputs)
///   input     := missing | graph input | initializer; dtype; rank 0-5; dims 0-4; values odd
///                (negative, zero, huge, NaN, infinities: they feed shape-like inputs too)
///   attribute := a name the runtime reads (or any) with a value of any kind: int, ints, float,
///                floats, string, strings, tensor, graph (a tiny Identity body) with odd contents
///
/// The model is serialized (ONNXWriter), read back (ONNXReader: protobuf-c, the IR builder),
/// planned (`Model`: validation, shape inference, the allocation budget) and run once on its
/// small inputs. Every step must answer with an error or a result, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNXAttributes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    var c = FuzzChoices(UnsafeRawBufferPointer(start: data, count: size))
    let (graph, feeds) = ONNXAttributeGrammar.model(&c)
    // Triage: DLKIT_FUZZ_PRINT=1 .build-fuzz/debug/fuzz-onnx-attributes CRASH prints the model it built.
    if getenv("DLKIT_FUZZ_PRINT") != nil {
        for n in graph.nodes { print(n.opType, n.inputs, n.attributes.map { "\($0.name)=\($0.value)" }) }
        for i in graph.inputs { print("input", i.name, i.type.map { "\($0)" } ?? "untyped") }
        for t in graph.initializers { print("initializer", t.name, t.tensor.dtype, t.tensor.shape) }
    }
    let bytes = ONNXWriter.serialize(graph)
    let read = bytes.withUnsafeBytes { b in try? ONNXReader.read(bytes: b, path: "fuzz.onnx", directory: "/nonexistent-dlkit-fuzz") }
    guard let read, let model = try? Model(graph: read, name: "fuzz", allocationBudget: 1 << 26, options: fuzzOptions) else { return 0 }
    _ = try? model.run(feeds)
    return 0
}

enum ONNXAttributeGrammar {
    static let ops: [String] = OpSet.schemas.keys.sorted()

    /// Attribute names the runtime and importer read (from the ONNX operator specs).
    static let attributeNames = [
        "activation_alpha", "activation_beta", "activations", "align_corners", "allowzero", "alpha", "antialias", "approximate",
        "auto_pad", "axes", "axis", "batch_axis", "batch_dims", "beta", "bias", "block_size", "blocksize", "body", "broadcast",
        "ceil_mode", "center_point_box", "clip", "coordinate_transformation_mode", "count_include_pad", "cubic_coeff_a",
        "detect_negative", "detect_positive", "dilations", "direction", "dtype", "else_branch", "end", "epsilon", "equation",
        "exclude_outside", "exclusive", "extrapolation_value", "fmod", "gamma", "group", "hidden_size", "high", "input_forget",
        "interleaved", "k", "keep_aspect_ratio_policy", "keepdims", "kernel_shape", "lambd", "largest", "layout",
        "linear_before_reset", "low", "max", "mean", "min", "mode", "momentum", "nearest_mode", "new_axis",
        "noop_with_empty_axes", "num_groups", "num_heads", "num_outputs", "num_scan_inputs", "output_padding", "output_shape",
        "p", "pads", "perm", "ratio", "reduction", "reverse", "rotary_embedding_dim", "sample_size", "saturate", "scale",
        "scales", "seed", "select_last_index", "shape", "size", "sorted", "spatial_scale", "split", "stash_type",
        "start", "storage_order", "strides", "then_branch", "time_axis", "to", "training_mode", "upper", "value",
        "value_float", "value_floats", "value_int", "value_ints", "is_causal", "softcap", "q_num_heads", "kv_num_heads",
    ]

    static let strings = ["", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "constant", "reflect", "edge", "wrap", "linear",
                          "nearest", "cubic", "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_crop_and_resize",
                          "round_prefer_floor", "floor", "ceil", "none", "tanh", "Relu", "Sigmoid", "Tanh", "forward", "reverse",
                          "bidirectional", "DCR", "CRD", "add", "mul", "max", "min", "ij,jk->ik", "i->", "...ii->...i", "é\u{0}"]

    static let dtypes: [DType] = [.float32, .float32, .float32, .int64, .int64, .int32, .bool, .float16, .float64, .uint8, .int8]

    static func dims(_ c: inout FuzzChoices) -> [Int] {
        (0..<c.pick([0, 1, 1, 2, 2, 3, 4, 5])).map { _ in c.pick([1, 2, 3, 1, 2, 0, 4]) }
    }

    /// A small tensor with odd values of `dtype`.
    static func tensor(_ c: inout FuzzChoices, _ dtype: DType, _ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        switch dtype {
        case .int64, .int32, .int8, .uint8:
            let v = (0..<n).map { _ in Int64(truncatingIfNeeded: c.oneIn(3) ? c.oddInt() : c.below(5) - 1) }
            return Tensor(shape: shape, scalars: v).converted(to: dtype)
        case .bool:
            return Tensor(shape: shape, scalars: (0..<n).map { _ in Float(c.below(2)) }).converted(to: .bool)
        default:
            let v = (0..<n).map { _ in c.oneIn(3) ? Float(c.oddDouble()) : Float(c.below(9)) / 2 - 2 }
            return Tensor(shape: shape, scalars: v).converted(to: dtype)
        }
    }

    static func attribute(_ c: inout FuzzChoices, depth: Int) -> AttributeValue {
        switch c.below(depth == 0 ? 9 : 8) {
        case 0: return .int(c.oddInt())
        case 1: return .int(c.below(6) - 2)
        case 2: return .ints((0..<c.below(7)).map { _ in c.oneIn(3) ? c.oddInt() : c.below(6) - 1 })
        case 3: return .float(Float(c.oddDouble()))
        case 4: return .floats((0..<c.below(5)).map { _ in Float(c.oddDouble()) })
        case 5: return .string(c.pick(strings))
        case 6: return .strings((0..<c.below(4)).map { _ in c.pick(strings) })
        case 7:
            let dt = c.pick(dtypes)
            return .tensor(tensor(&c, dt, dims(&c).map { min($0, 3) }))
        default:
            // A subgraph: Identity of an outer value or of its own input.
            let name = c.pick(["x0", "x1", "b_in"])
            let body = Graph(name: "body", inputs: c.bool() ? [ValueInfo(name: "b_in", type: TensorType(dtype: .float32, dims: nil))] : [],
                             outputs: [ValueInfo(name: "b_out", type: c.bool() ? TensorType(dtype: c.pick(dtypes), dims: nil) : nil)],
                             nodes: [Node(name: "b", opType: c.pick(["Identity", "Relu", "Shape"]), inputs: [name], outputs: ["b_out"])])
            return .graph(body)
        }
    }

    static func model(_ c: inout FuzzChoices) -> (Graph, [String: Tensor]) {
        let op = c.pick(ops)
        let schema = OpSet.schemas[op]
        let lo = schema?.inputs.lowerBound ?? 1, hi = min(schema?.inputs.upperBound ?? 3, lo + 3)
        let nIn = c.oneIn(12) ? c.below(5) : lo + c.below(hi - lo + 1)
        var inputs: [ValueInfo] = []
        var names: [String] = []
        var inits = NamedTensors()
        var feeds: [String: Tensor] = [:]
        for i in 0..<nIn {
            if i > 0, c.oneIn(10) { names.append(""); continue }
            let name = "x\(i)"
            let dt = c.pick(dtypes)
            let shape = dims(&c)
            let t = tensor(&c, dt, shape)
            if c.oneIn(3) {
                inits[name] = t
            } else {
                let declared: [Dim] = shape.map { c.oneIn(4) ? .symbolic("n\($0)") : .fixed($0) }
                inputs.append(ValueInfo(name: name, type: TensorType(dtype: dt, dims: c.oneIn(16) ? nil : declared)))
                feeds[name] = t
            }
            names.append(name)
        }
        var attrs: [Attribute] = []
        for _ in 0..<c.below(5) {
            attrs.append(Attribute(name: c.oneIn(20) ? "unknown_attr" : c.pick(attributeNames), value: attribute(&c, depth: 0)))
        }
        let olo = schema?.outputs.lowerBound ?? 1, ohi = min(schema?.outputs.upperBound ?? 2, olo + 2)
        let nOut = max(1, olo + c.below(ohi - olo + 1))
        let outs = (0..<nOut).map { "y\($0)" }
        let node = Node(name: "n", opType: op, inputs: names, outputs: outs, attributes: attrs)
        var g = Graph(name: "fuzz", inputs: inputs, outputs: outs.map { ValueInfo(name: $0, type: nil) }, nodes: [node], initializers: inits)
        g.metadata.opsetImports = [(domain: "", version: c.pick([21, 17, 13, 11, 18, 7, 9, 20, 22]))]
        g.metadata.irVersion = 10
        return (g, feeds)
    }
}

/// Outputs sized by input values are held to the allocation budget too (libFuzzer's malloc limit
/// is 2 GB).
let fuzzOptions: RuntimeOptions = {
    var o = RuntimeOptions()
    o.valueSizedOutputLimit = 1 << 26
    return o
}()
