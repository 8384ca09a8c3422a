import DLGraph
import DLTensor
import Foundation

/// sentence-transformers' modules after the transformer (modules.json): Pooling (its
/// 1_Pooling/config.json: CLS token, max, mean, mean·√length, concatenated in that order) and
/// Normalize (L2, eps 1e-12), added to an encoder's graph as the output `sentence_embedding`.
enum SentencePooling {
    struct Plan { var cls = false, max = false, mean = false, meanSqrt = false, normalize = false }

    /// The plan of `folder`, nil when it has no modules.json; a module DLKit does not build is an error.
    static func plan(folder: String) throws(HFError) -> Plan? {
        let p = (folder as NSString).appendingPathComponent("modules.json")
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        guard let modules = try readJSONFile(p, maxBytes: 1_000_000).arrayValue else { throw .invalid(path: p, reason: "expected an array of modules") }
        var plan = Plan()
        var pooled = false
        for (i, m) in modules.enumerated() {
            guard let type = m["type"]?.stringValue else { throw .invalid(path: p, reason: "module \(i) has no \"type\"") }
            switch type.split(separator: ".").last.map(String.init) ?? type {
            case "Transformer": continue
            case "Pooling":
                let sub = m["path"]?.stringValue ?? ""
                guard !sub.contains(".."), !sub.hasPrefix("/") else { throw .invalid(path: p, reason: "module \(i) path '\(sub)' leaves the folder") }
                let cp = ((folder as NSString).appendingPathComponent(sub) as NSString).appendingPathComponent("config.json")
                let c = try readJSONFile(cp, maxBytes: 1_000_000)
                func flag(_ k: String) -> Bool { c[k]?.boolValue ?? false }
                plan.cls = flag("pooling_mode_cls_token")
                plan.max = flag("pooling_mode_max_tokens")
                plan.mean = flag("pooling_mode_mean_tokens")
                plan.meanSqrt = flag("pooling_mode_mean_sqrt_len_tokens")
                for k in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] where flag(k) {
                    throw .unsupported(path: cp, reason: k)
                }
                guard plan.cls || plan.max || plan.mean || plan.meanSqrt else { throw .invalid(path: cp, reason: "no pooling mode is set") }
                pooled = true
            case "Normalize": plan.normalize = true
            default: throw .unsupported(path: p, reason: "sentence-transformers module '\(type)'")
            }
        }
        return pooled ? plan : nil
    }

    /// Adds `sentence_embedding` [batch, width] to an encoder graph whose output is last_hidden_state.
    static func add(_ plan: Plan, to g: inout Graph) {
        var nodes: [Node] = []
        var n = 0
        func op(_ type: String, _ inputs: [String], _ attrs: [Attribute] = []) -> String {
            n += 1
            let out = "pooling/\(type)_\(n)"
            nodes.append(Node(name: out, opType: type, inputs: inputs, outputs: [out], attributes: attrs))
            return out
        }
        // Float constants as Constant nodes, so training never takes them for parameters (GraphBuilder.scalar).
        func const(_ name: String, _ t: Tensor) -> String {
            if t.dtype.isFloatingPoint {
                nodes.append(Node(name: "pooling/" + name, opType: "Constant", inputs: [], outputs: ["pooling/" + name],
                                  attributes: [Attribute(name: "value", value: .tensor(t))]))
            } else {
                g.initializers["pooling/" + name] = t
            }
            return "pooling/" + name
        }
        let axis1 = const("axis1", Tensor(shape: [1], scalars: [Int64(1)]))
        let h = "last_hidden_state"
        let mask = op("Unsqueeze", [op("Cast", ["attention_mask"], [Attribute(name: "to", value: .int(Int(DType.float32.onnxCode)))]),
                                   const("axis2", Tensor(shape: [1], scalars: [Int64(2)]))])
        let keep0 = Attribute(name: "keepdims", value: .int(0))
        var parts: [String] = []
        if plan.cls { parts.append(op("Gather", [h, const("zero", Tensor(scalar: Int64(0)))], [Attribute(name: "axis", value: .int(1))])) }
        if plan.max {
            let isPad = op("Equal", [mask, const("fzero", Tensor(scalar: Float(0)))])
            let filled = op("Where", [isPad, const("minus1e9", Tensor(scalar: Float(-1e9))), h])
            parts.append(op("ReduceMax", [filled, axis1], [keep0]))
        }
        if plan.mean || plan.meanSqrt {
            let sum = op("ReduceSum", [op("Mul", [h, mask]), axis1], [keep0])
            let count = op("ReduceSum", [mask, axis1], [keep0])
            if plan.mean { parts.append(op("Div", [sum, op("Max", [count, const("eps9", Tensor(scalar: Float(1e-9)))])])) }
            if plan.meanSqrt { parts.append(op("Div", [sum, op("Sqrt", [count])])) }
        }
        var e = parts.count == 1 ? parts[0] : op("Concat", parts, [Attribute(name: "axis", value: .int(1))])
        if plan.normalize {
            let norm = op("ReduceL2", [e, axis1], [Attribute(name: "keepdims", value: .int(1))])
            e = op("Div", [e, op("Max", [norm, const("eps12", Tensor(scalar: Float(1e-12)))])])
        }
        nodes.append(Node(name: "sentence_embedding", opType: "Identity", inputs: [e], outputs: ["sentence_embedding"]))
        g.nodes += nodes
        g.outputs.append(ValueInfo(name: "sentence_embedding", type: TensorType(dtype: .float32, dims: [.symbolic("batch"), .unknown])))
    }
}
