import DLGraph
import DLTensor

/// How one op changes between opset versions, as far as a writer must care: the version it
/// appeared in and a rewrite that handles each version where its attributes, inputs or meaning
/// changed. Versions that only added element types need nothing (bfloat16 is checked for all).
struct OpAdapter: Sendable {
    let introduced: Int
    let convert: @Sendable (inout OpsetStep) throws(OpsetBlock) -> Void

    init(introduced: Int = 1, _ convert: @escaping @Sendable (inout OpsetStep) throws(OpsetBlock) -> Void = { _ throws(OpsetBlock) in }) {
        self.introduced = introduced
        self.convert = convert
    }
}

/// The version table, keyed by op type: the ops the converter moves between opsets. Those whose
/// attributes became inputs (`NormalForm.moves`, but Slice and TopK) are among them: the IR
/// holds their input form, the writer turns constant inputs back into attributes for an older
/// opset, and the entry blocks inputs computed at run time. Add an op when it joins the converter.
enum OpsetAdapters {
    static let table: [String: OpAdapter] = {
        var t: [String: OpAdapter] = [:]
        // Versions since 7 that only widened the element types.
        for op in ["Relu", "Sigmoid", "Tanh", "Identity", "Add", "Sub", "Mul", "Div", "MatMul", "Transpose",
                   "Conv", "GlobalAveragePool"] {
            t[op] = OpAdapter()
        }
        t["Softmax"] = OpAdapter(softmax)
        t["Reshape"] = OpAdapter(reshape)
        t["Dropout"] = OpAdapter(dropout)
        t["Flatten"] = OpAdapter { (s) throws(OpsetBlock) in try s.positiveAxis("axis", before: 11) }
        t["Concat"] = OpAdapter { (s) throws(OpsetBlock) in try s.positiveAxis("axis", before: 11) }
        t["Gemm"] = OpAdapter(gemm)
        t["MaxPool"] = OpAdapter(maxPool)
        t["AveragePool"] = OpAdapter(averagePool)
        t["BatchNormalization"] = OpAdapter(batchNormalization)
        t["Constant"] = OpAdapter(constant)
        // Attributes that became inputs.
        // (Slice and TopK changed in other ways too, and have no entry yet.)
        for (op, moves) in NormalForm.moves where op != "Slice" && op != "TopK" {
            t[op] = OpAdapter { (s) throws(OpsetBlock) in
                for m in moves { try s.attributeInput(m) }
                if op == "Split", s.down(18), s.int("num_outputs") != nil { s.removeAttribute("num_outputs") }
            }
        }
        return t
    }()

    /// Before 13 Softmax flattened the input into 2-D at `axis` (default 1) and normalised each
    /// row; from 13 it normalises along `axis` (default -1). The two agree when the axis is the
    /// last one, which is then written explicitly (as -1 from opset 11, else by the rank).
    static func softmax(_ s: inout OpsetStep) throws(OpsetBlock) {
        guard s.down(13) || s.up(13) else {
            try s.positiveAxis("axis", before: 11)
            return
        }
        let axis = s.int("axis") ?? (s.from >= 13 ? -1 : 1)
        let input = s.node.input(0) ?? ""
        let rank = s.context.rank(input)
        let isLast: Bool
        if axis == -1 {
            isLast = true
        } else if let rank {
            isLast = Axes.normalise(axis, rank: rank) == rank - 1
        } else {
            throw OpsetBlock("the rank of input '\(input)' is unknown, so whether axis \(axis) is the last one (the only axis whose meaning did not change at opset 13) cannot be told")
        }
        guard isLast else {
            throw OpsetBlock("Softmax over axis \(axis) of a rank-\(rank ?? 0) input has no opset-\(s.to) form (before 13 Softmax flattens from the axis on; only the last axis means the same)")
        }
        if s.to >= 11 {
            s.setAttribute("axis", .int(-1))
        } else {
            guard let rank else {
                throw OpsetBlock("the rank of input '\(input)' is unknown, and opset \(s.to) needs a non-negative axis")
            }
            s.setAttribute("axis", .int(rank - 1))
        }
    }

    /// `allowzero` appeared in 14; with 1 a 0 in the shape means an empty dim, not a copy.
    static func reshape(_ s: inout OpsetStep) throws(OpsetBlock) {
        guard s.down(14), let allowZero = s.int("allowzero") else { return }
        if allowZero != 0 {
            guard let shape = s.node.input(1).flatMap(s.context.constant), !shape.doubles().contains(0) else {
                throw OpsetBlock("allowzero=1 with a shape that may hold 0 needs opset 14 or later")
            }
        }
        s.removeAttribute("allowzero")
    }

    /// Dropout: the mask output became bool at 10; ratio moved from an attribute to an input,
    /// and training_mode and seed appeared, at 12.
    static func dropout(_ s: inout OpsetStep) throws(OpsetBlock) {
        try s.dropOutput(1, across: 10, meaning: "the mask")
        // Before 12 an inference-mode mask is not specified (ONNX Runtime gives all false); from
        // 12 it is all true.
        try s.dropOutput(1, across: 12, meaning: "the mask")
        if s.up(12), case .float(let r)? = s.node.attribute("ratio") {
            let name = s.context.addInitializer(Tensor(scalar: r), base: "\(s.node.outputs.first ?? "dropout")_ratio")
            s.removeAttribute("ratio")
            s.setInput(1, name)
        } else if s.down(12) {
            if let training = s.node.input(2) {
                guard let t = s.context.constant(training), t.doubles().allSatisfy({ $0 == 0 }) else {
                    throw OpsetBlock("training_mode '\(training)' is not a constant false; opset \(s.to) Dropout has no training switch")
                }
                s.removeInput(2)
            }
            if let ratio = s.node.input(1) {
                guard let t = s.context.constant(ratio), t.elementCount == 1, let r = t.doubles().first else {
                    throw OpsetBlock("ratio '\(ratio)' is computed at run time; opset \(s.to) needs it as an attribute")
                }
                s.removeInput(1)
                s.setAttribute("ratio", .float(Float(r)))
            }
            s.removeAttribute("seed")
        }
    }

    /// C became optional at 11 (absent = 0): older opsets get a zero scalar initializer.
    static func gemm(_ s: inout OpsetStep) throws(OpsetBlock) {
        guard s.down(11), s.node.input(2) == nil else { return }
        guard let dtype = s.context.dtype(s.node.input(0) ?? "") else {
            throw OpsetBlock("C is absent and the type of A is unknown; opset \(s.to) Gemm needs C")
        }
        let zero = s.context.addInitializer(Tensor(zeros: dtype, shape: [1]), base: "\(s.node.outputs.first ?? "gemm")_zero_c")
        s.setInput(2, zero)
    }

    static func allOnes(_ v: AttributeValue) -> Bool {
        if case .ints(let xs) = v { return xs.allSatisfy { $0 == 1 } }
        return false
    }

    static func isZero(_ v: AttributeValue) -> Bool {
        if case .int(0) = v { return true }
        return false
    }

    /// Before 22 onnx's shape inference keeps a last ceil-mode window that starts in the end
    /// padding; from 22 it is dropped. The forms agree unless such a window exists.
    static func ceilModeWindows(_ s: OpsetStep) throws(OpsetBlock) {
        guard s.down(22) || s.up(22), s.int("ceil_mode") == 1 else { return }
        let input = s.node.input(0) ?? ""
        guard let sizes = s.context.types[input]?.dims.flatMap({ Array($0.dropFirst(2)).concrete }),
              let window = try? WindowAttributes(node: s.node), window.kernelShape?.count == sizes.count,
              let kernel = window.kernelShape else {
            throw OpsetBlock("ceil_mode=1 on input '\(input)' of unknown size may give another output size before opset 22")
        }
        // The pooling geometry drops such a window; a convolution's keeps it.
        guard let kept = try? window.geometry(input: sizes, kernel: kernel, isPooling: false),
              let dropped = try? window.geometry(input: sizes, kernel: kernel, isPooling: true) else { return }
        if kept.output != dropped.output {
            throw OpsetBlock("ceil_mode=1 gives a last window that starts in the padding; opsets before 22 count it, later ones do not")
        }
    }

    /// MaxPool: indices output and storage_order at 8; ceil_mode and dilations at 10; the
    /// ceil-mode output size at 22.
    static func maxPool(_ s: inout OpsetStep) throws(OpsetBlock) {
        try ceilModeWindows(s)
        try s.dropAttribute("ceil_mode", before: 10, when: isZero, meaning: "ceil_mode=1")
        try s.dropAttribute("dilations", before: 10, when: allOnes, meaning: "dilations other than 1")
        try s.dropAttribute("storage_order", before: 8, when: isZero, meaning: "storage_order=1")
        if s.down(8), s.node.outputs.count > 1, !s.node.outputs[1].isEmpty {
            if s.context.consumed.contains(s.node.outputs[1]) {
                throw OpsetBlock("the indices output '\(s.node.outputs[1])' needs opset 8 or later")
            }
            s.node.outputs.removeSubrange(1...)
        }
    }

    /// AveragePool: ceil_mode at 10, dilations at 19.
    static func averagePool(_ s: inout OpsetStep) throws(OpsetBlock) {
        try ceilModeWindows(s)
        try s.dropAttribute("dilations", before: 19, when: allOnes, meaning: "dilations other than 1")
        try s.dropAttribute("ceil_mode", before: 10, when: isZero, meaning: "ceil_mode=1")
    }

    /// BatchNormalization: `spatial` went at 9, `training_mode` came at 14 (with three outputs
    /// instead of training's five), and scale/bias may differ in type from X from 15.
    static func batchNormalization(_ s: inout OpsetStep) throws(OpsetBlock) {
        try s.dropAttribute("training_mode", before: 14, when: isZero, meaning: "training_mode=1")
        if s.down(14) || s.up(14), s.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw OpsetBlock("the running-statistics outputs mean different things before and after opset 14")
        }
        if s.up(9), let spatial = s.int("spatial") {
            guard spatial == 1 else { throw OpsetBlock("spatial=0 has no form from opset 9 on") }
            s.removeAttribute("spatial")
        }
        if s.down(15), let x = s.context.dtype(s.node.input(0) ?? "") {
            for i in 1..<min(5, s.node.inputs.count) {
                if let t = s.context.dtype(s.node.inputs[i]), t != x {
                    throw OpsetBlock("input '\(s.node.inputs[i])' is \(t) while X is \(x); mixed types need opset 15 or later")
                }
            }
        }
    }

    /// Constant: value_float(s)/value_int(s)/value_string(s) appeared at 12; before 9 only
    /// floating-point values exist.
    static func constant(_ s: inout OpsetStep) throws(OpsetBlock) {
        if s.down(12), let a = s.node.attributes.first, a.name != "value" {
            let t: Tensor
            do { t = try ConstantOp.value(of: s.node) } catch { throw OpsetBlock("\(error)") }
            s.node.attributes = [Attribute(name: "value", value: .tensor(t))]
        }
        if s.down(9), case .tensor(let t)? = s.node.attribute("value"), !t.dtype.isFloatingPoint {
            throw OpsetBlock("a \(t.dtype) constant needs opset 9 or later")
        }
    }
}
