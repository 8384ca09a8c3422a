import DLTensor

/// Where a sliding window (convolution or pooling kernel) goes over the spatial dims: the ONNX
/// attributes `kernel_shape`, `strides`, `dilations`, `pads`, `auto_pad`, `ceil_mode` resolved
/// against concrete input sizes. Runtime kernels take these numbers as they are.
public struct WindowGeometry: Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var output: [Int]

    /// Resolves the attributes of `node` for input spatial sizes `input` and kernel sizes `kernel`.
    /// - Parameter isPooling: pooling drops a last ceil-mode window that would start in the padding.
    /// - Throws: `GraphError` when an attribute has the wrong length or the output would be empty.
    public static func resolve(node: Node, input: [Int], kernel: [Int], isPooling: Bool)
        throws(GraphError) -> WindowGeometry
    {
        let r = input.count
        let name = node.displayName
        func list(_ attr: String, default d: Int, count: Int) throws(GraphError) -> [Int] {
            guard let v = try node.ints(attr) else { return Array(repeating: d, count: count) }
            guard v.count == count else {
                throw .invalidAttribute(node: name, attribute: attr, reason: "has \(v.count) values, expected \(count)")
            }
            return v
        }
        let strides = try list("strides", default: 1, count: r)
        let dilations = try list("dilations", default: 1, count: r)
        guard strides.allSatisfy({ $0 > 0 }) else {
            throw .invalidAttribute(node: name, attribute: "strides", reason: "must be positive, got \(strides)")
        }
        guard dilations.allSatisfy({ $0 > 0 }) else {
            throw .invalidAttribute(node: name, attribute: "dilations", reason: "must be positive, got \(dilations)")
        }
        guard kernel.count == r, kernel.allSatisfy({ $0 > 0 }) else {
            throw .invalidAttribute(node: name, attribute: "kernel_shape", reason: "is \(kernel), expected \(r) positive sizes")
        }
        let pads = try list("pads", default: 0, count: 2 * r)
        guard pads.allSatisfy({ $0 >= 0 }) else {
            throw .invalidAttribute(node: name, attribute: "pads", reason: "must not be negative, got \(pads)")
        }
        let autoPad = try node.string("auto_pad", default: "NOTSET")
        let ceilMode = try node.int("ceil_mode", default: 0) != 0
        var g = WindowGeometry(kernel: kernel, strides: strides, dilations: dilations,
                               padsBegin: Array(pads[0..<r]), padsEnd: Array(pads[r...]), output: [])
        for i in 0..<r {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            var out: Int
            switch autoPad {
            case "NOTSET", "VALID":
                if autoPad == "VALID" { g.padsBegin[i] = 0; g.padsEnd[i] = 0 }
                let span = input[i] + g.padsBegin[i] + g.padsEnd[i] - extent
                guard span >= 0 else {
                    throw .shapeMismatch(node: name, reason: "window \(extent) is larger than the padded input \(input[i] + g.padsBegin[i] + g.padsEnd[i]) in spatial dim \(i)")
                }
                out = (ceilMode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1
                if ceilMode && isPooling && (out - 1) * strides[i] >= input[i] + g.padsBegin[i] { out -= 1 }
            case "SAME_UPPER", "SAME_LOWER":
                out = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + extent - input[i])
                let small = total / 2
                g.padsBegin[i] = autoPad == "SAME_UPPER" ? small : total - small
                g.padsEnd[i] = total - g.padsBegin[i]
            default:
                throw .invalidAttribute(node: name, attribute: "auto_pad", reason: "is '\(autoPad)', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
            }
            g.output.append(out)
        }
        return g
    }
}
