import DLTensor

/// How a window op pads its input (the ONNX `auto_pad` attribute).
package enum AutoPad: String, Sendable, CaseIterable {
    /// The explicit `pads` apply.
    case notSet = "NOTSET"
    /// Pad so that output = ceil(input / stride); an odd total puts the extra cell at the end.
    case sameUpper = "SAME_UPPER"
    /// As `sameUpper`, with the extra cell at the beginning.
    case sameLower = "SAME_LOWER"
    /// No padding.
    case valid = "VALID"

    package var isSame: Bool { self == .sameUpper || self == .sameLower }
}

/// The window attributes of a Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv,
/// Col2Im, MaxPool, AveragePool, LpPool or MaxUnpool node, read and checked: `kernel_shape`, `strides`,
/// `dilations`, `pads`, `auto_pad`, `group`, `ceil_mode`, `count_include_pad`,
/// `output_padding` and `output_shape`. An absent list stays nil (its default depends on the
/// input's rank, known only when the geometry is resolved). Shape inference, kernels, gradient
/// rules, passes and writers read these fields instead of the node's attributes, and resolve
/// sizes with ``geometry(input:kernel:isPooling:)`` or ``transposedGeometry(input:kernel:)``.
package struct WindowAttributes: Equatable, Sendable {
    /// The node's display name, for messages.
    package var node: String
    package var kernelShape: [Int]?
    package var strides: [Int]?
    package var dilations: [Int]?
    /// Begin values of every spatial dim, then end values (ONNX order).
    package var pads: [Int]?
    package var autoPad: AutoPad
    package var group: Int
    package var ceilMode: Bool
    package var countIncludePad: Bool
    package var outputPadding: [Int]?
    package var outputShape: [Int]?

    package init(node: String, kernelShape: [Int]? = nil, strides: [Int]? = nil, dilations: [Int]? = nil,
                pads: [Int]? = nil, autoPad: AutoPad = .notSet, group: Int = 1, ceilMode: Bool = false,
                countIncludePad: Bool = false, outputPadding: [Int]? = nil, outputShape: [Int]? = nil) {
        self.node = node
        self.kernelShape = kernelShape
        self.strides = strides
        self.dilations = dilations
        self.pads = pads
        self.autoPad = autoPad
        self.group = group
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
        self.outputPadding = outputPadding
        self.outputShape = outputShape
    }

    /// The attribute names this type reads.
    package static let names: Set<String> = ["kernel_shape", "strides", "dilations", "pads", "auto_pad", "group",
                                             "ceil_mode", "count_include_pad", "output_padding", "output_shape"]

    /// The window attributes of `node` when it has any and they are valid; nil otherwise (a
    /// node without them reads the defaults; an invalid one fails when its kernel reads them).
    package static func ifPresent(_ node: Node) -> WindowAttributes? {
        guard node.attributes.contains(where: { names.contains($0.name) }) else { return nil }
        return try? WindowAttributes(node: node)
    }

    /// Reads and checks the window attributes of `node`: values in range, lists of lengths
    /// that agree with each other, a known `auto_pad`.
    /// - Throws: `GraphError.attributeType` or `.invalidAttribute`, naming the node.
    package init(node n: Node) throws(GraphError) {
        let name = n.displayName
        let autoPadText = try n.string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadText) else {
            throw .invalidAttribute(node: name, attribute: "auto_pad", reason: "is '\(autoPadText)', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
        self.init(node: name, kernelShape: try n.ints("kernel_shape"), strides: try n.ints("strides"),
                  dilations: try n.ints("dilations"), pads: try n.ints("pads"), autoPad: autoPad,
                  group: try n.int("group", default: 1), ceilMode: try n.int("ceil_mode", default: 0) != 0,
                  countIncludePad: try n.int("count_include_pad", default: 0) != 0,
                  outputPadding: try n.ints("output_padding"), outputShape: try n.ints("output_shape"))
        if let k = kernelShape, !k.allSatisfy({ $0 > 0 }) {
            throw .invalidAttribute(node: name, attribute: "kernel_shape", reason: "must be positive, got \(k)")
        }
        if let s = strides, !s.allSatisfy({ $0 > 0 }) {
            throw .invalidAttribute(node: name, attribute: "strides", reason: "must be positive, got \(s)")
        }
        if let d = dilations, !d.allSatisfy({ $0 > 0 }) {
            throw .invalidAttribute(node: name, attribute: "dilations", reason: "must be positive, got \(d)")
        }
        if let p = pads, !p.allSatisfy({ $0 >= 0 }) {
            throw .invalidAttribute(node: name, attribute: "pads", reason: "must not be negative, got \(p)")
        }
        guard group >= 1 else {
            throw .invalidAttribute(node: name, attribute: "group", reason: "must be at least 1, got \(group)")
        }
        if let k = kernelShape {
            for (attr, list, factor) in [("strides", strides, 1), ("dilations", dilations, 1), ("pads", pads, 2)] {
                if let list, list.count != factor * k.count {
                    throw .invalidAttribute(node: name, attribute: attr, reason: "has \(list.count) values for a \(k.count)-D kernel_shape, expected \(factor * k.count)")
                }
            }
        }
    }

    /// The node's attributes in ONNX form: only what differs from the defaults.
    package var attributes: [Attribute] {
        var a: [Attribute] = []
        if let kernelShape { a.append(Attribute(name: "kernel_shape", value: .ints(kernelShape))) }
        if let strides { a.append(Attribute(name: "strides", value: .ints(strides))) }
        if let dilations { a.append(Attribute(name: "dilations", value: .ints(dilations))) }
        if let pads { a.append(Attribute(name: "pads", value: .ints(pads))) }
        if autoPad != .notSet { a.append(Attribute(name: "auto_pad", value: .string(autoPad.rawValue))) }
        if group != 1 { a.append(Attribute(name: "group", value: .int(group))) }
        if ceilMode { a.append(Attribute(name: "ceil_mode", value: .int(1))) }
        if countIncludePad { a.append(Attribute(name: "count_include_pad", value: .int(1))) }
        if let outputPadding { a.append(Attribute(name: "output_padding", value: .ints(outputPadding))) }
        if let outputShape { a.append(Attribute(name: "output_shape", value: .ints(outputShape))) }
        return a
    }

    /// The kernel's spatial sizes: `kernel_shape`, which must then equal `weight` when both are
    /// known, or else `weight` (a convolution's W without its first two dims).
    package func kernel(weight: [Int]?) throws(GraphError) -> [Int] {
        switch (kernelShape, weight) {
        case (let k?, let w?) where k != w:
            throw .invalidAttribute(node: node, attribute: "kernel_shape", reason: "is \(k), but the weight's kernel is \(w)")
        case (let k?, _): return k
        case (nil, let w?): return w
        case (nil, nil): throw .invalidAttribute(node: node, attribute: "kernel_shape", reason: "is required")
        }
    }

    /// A list attribute for `count` spatial dims: its values, or `fill` repeated when absent.
    func list(_ attribute: String, _ values: [Int]?, fill: Int, count: Int) throws(GraphError) -> [Int] {
        guard let values else { return Array(repeating: fill, count: count) }
        guard values.count == count else {
            throw .invalidAttribute(node: node, attribute: attribute, reason: "has \(values.count) values, expected \(count)")
        }
        return values
    }

    /// `strides` for `rank` spatial dims (1 each when absent).
    package func strides(rank: Int) throws(GraphError) -> [Int] { try list("strides", strides, fill: 1, count: rank) }
    /// `dilations` for `rank` spatial dims (1 each when absent).
    package func dilations(rank: Int) throws(GraphError) -> [Int] { try list("dilations", dilations, fill: 1, count: rank) }
    /// The explicit `pads` for `rank` spatial dims, begins then ends (0 each when absent; `auto_pad` not applied).
    package func pads(rank: Int) throws(GraphError) -> [Int] { try list("pads", pads, fill: 0, count: 2 * rank) }

    func checkKernel(_ kernel: [Int], rank r: Int) throws(GraphError) {
        guard kernel.count == r, kernel.allSatisfy({ $0 > 0 }) else {
            throw .invalidAttribute(node: node, attribute: "kernel_shape", reason: "is \(kernel), expected \(r) positive sizes")
        }
    }

    /// Where the window goes over spatial sizes `input` with kernel sizes `kernel` (a
    /// convolution, or a pooling when `isPooling`: it drops a last ceil-mode window that would
    /// start in the padding).
    /// - Throws: `GraphError` when a list has the wrong length or the window does not fit.
    package func geometry(input: [Int], kernel: [Int], isPooling: Bool) throws(GraphError) -> WindowGeometry {
        let r = input.count
        let strides = try strides(rank: r), dilations = try dilations(rank: r)
        try checkKernel(kernel, rank: r)
        let pads = try pads(rank: r)
        var g = WindowGeometry(kernel: kernel, strides: strides, dilations: dilations,
                               padsBegin: Array(pads[0..<r]), padsEnd: Array(pads[r...]), output: [])
        for i in 0..<r {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            var out: Int
            switch autoPad {
            case .notSet, .valid:
                if autoPad == .valid { g.padsBegin[i] = 0; g.padsEnd[i] = 0 }
                let span = input[i] + g.padsBegin[i] + g.padsEnd[i] - extent
                guard span >= 0 else {
                    throw .shapeMismatch(node: node, reason: "window \(extent) is larger than the padded input \(input[i] + g.padsBegin[i] + g.padsEnd[i]) in spatial dim \(i)")
                }
                out = (ceilMode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1
                if ceilMode && isPooling && (out - 1) * strides[i] >= input[i] + g.padsBegin[i] { out -= 1 }
            case .sameUpper, .sameLower:
                out = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + extent - input[i])
                let small = total / 2
                g.padsBegin[i] = autoPad == .sameUpper ? small : total - small
                g.padsEnd[i] = total - g.padsBegin[i]
            }
            g.output.append(out)
        }
        return g
    }

    /// The geometry of a transposed convolution over input spatial sizes `input`: `output` is
    /// the output's spatial sizes (from `output_shape`, SAME padding, or the explicit pads and
    /// `output_padding`), and each input position i scatters to i·stride − padsBegin + k·dilation.
    package func transposedGeometry(input: [Int], kernel: [Int]) throws(GraphError) -> WindowGeometry {
        let r = input.count
        let strides = try strides(rank: r), dilations = try dilations(rank: r)
        let outputPadding = try list("output_padding", outputPadding, fill: 0, count: r)
        try checkKernel(kernel, rank: r)
        // The output a transposed convolution covers with no padding at all.
        var full = [Int](repeating: 0, count: r)
        for d in 0..<r {
            let extent: Int = (kernel[d] - 1) * dilations[d] + 1
            full[d] = strides[d] * (input[d] - 1) + outputPadding[d] + extent
        }
        var g = WindowGeometry(kernel: kernel, strides: strides, dilations: dilations,
                               padsBegin: Array(repeating: 0, count: r), padsEnd: Array(repeating: 0, count: r), output: [])
        func split(total: Int, _ d: Int) {
            let half = Int((Double(total) / 2).rounded(.down))
            g.padsBegin[d] = autoPad == .sameUpper ? half : total - half
            g.padsEnd[d] = total - g.padsBegin[d]
        }
        if let given = outputShape.map({ $0.count == r + 2 ? Array($0.dropFirst(2)) : $0 }) {
            guard given.count == r, given.allSatisfy({ $0 >= 0 }) else {
                throw .invalidAttribute(node: node, attribute: "output_shape", reason: "is \(given), expected \(r) spatial sizes")
            }
            g.output = given
            for d in 0..<r { split(total: full[d] - given[d], d) }
        } else if autoPad.isSame {
            g.output = (0..<r).map { input[$0] * strides[$0] }
            for d in 0..<r { split(total: full[d] - g.output[d], d) }
        } else {
            let pads = autoPad == .valid ? Array(repeating: 0, count: 2 * r) : try pads(rank: r)
            g.padsBegin = Array(pads[0..<r])
            g.padsEnd = Array(pads[r...])
            g.output = (0..<r).map { d -> Int in full[d] - pads[d] - pads[r + d] }
        }
        guard g.output.allSatisfy({ $0 >= 0 }) else {
            throw .shapeMismatch(node: node, reason: "the output spatial shape \(g.output) is negative")
        }
        return g
    }
}

/// Where a sliding window (convolution or pooling kernel) goes over the spatial dims: the
/// ``WindowAttributes`` resolved against concrete input sizes. Runtime kernels take these
/// numbers as they are.
package struct WindowGeometry: Equatable, Sendable {
    package var kernel: [Int]
    package var strides: [Int]
    package var dilations: [Int]
    package var padsBegin: [Int]
    package var padsEnd: [Int]
    package var output: [Int]
}
