import DLGraph
import DLKernels
import DLTensor
import Foundation

/// What a gradient rule sees: the node, its recorded inputs and outputs, the gradients of its
/// outputs (nil for an output nothing downstream used: zero), and which inputs need a gradient.
struct RuleContext {
    let node: Node
    let inputs: [Tensor?]
    let outputs: [Tensor]
    let outputGrads: [Tensor?]
    let needs: [Bool]
    let saved: [Tensor]
    let kept: (any Sendable)?
    let training: Bool
    let opset: Int?

    /// The node's inputs or attributes break the op's contract.
    func fail(_ reason: String) -> AutogradError { .invalidInput(node: node.displayName, reason: reason) }
    /// A valid form of the op whose gradient is not implemented.
    func unsupported(_ reason: String) -> AutogradError { .unsupported(node: node.displayName, reason: reason) }

    func input(_ i: Int) throws(AutogradError) -> Tensor {
        guard i < inputs.count, let t = inputs[i] else { throw fail("input \(i) is missing") }
        return t
    }

    /// The gradient of output `i` as floats (zeros when nothing used it).
    func grad(_ i: Int = 0) -> [Float] {
        if i < outputGrads.count, let g = outputGrads[i] { return Ops.floats(g) }
        return [Float](repeating: 0, count: i < outputs.count ? outputs[i].elementCount : 0)
    }

    /// The gradient of output `i` as a float32 tensor of the output's shape, not copied when it
    /// is one already (zeros when nothing used it); for rules that move values whole.
    func gradTensor(_ i: Int = 0) -> Tensor {
        let shape = i < outputs.count ? outputs[i].shape : [0]
        if i < outputGrads.count, let g = outputGrads[i], g.elementCount == ShapeMath.elementCount(shape),
           let t = try? Ops.float32(g).reshaped(to: shape) {
            return t
        }
        return Tensor(zeros: .float32, shape: shape)
    }

    func need(_ i: Int) -> Bool { i < needs.count && needs[i] }

    /// `body` applied to the node's window attributes (`WindowAttributes`), read and checked.
    func window<T>(_ body: (WindowAttributes) throws(GraphError) -> T) throws(AutogradError) -> T {
        do { return try body(try WindowAttributes(node: node)) } catch { throw .runtime(.node(node.displayName, error)) }
    }

    func int(_ name: String, _ d: Int) throws(AutogradError) -> Int {
        do { return try node.int(name, default: d) } catch { throw .runtime(.node(node.displayName, error)) }
    }
    func float(_ name: String, _ d: Float) throws(AutogradError) -> Float {
        do { return try node.float(name, default: d) } catch { throw .runtime(.node(node.displayName, error)) }
    }
    func ints(_ name: String) throws(AutogradError) -> [Int]? {
        do { return try node.ints(name) } catch { throw .runtime(.node(node.displayName, error)) }
    }
    func string(_ name: String, _ d: String) throws(AutogradError) -> String {
        do { return try node.string(name, default: d) } catch { throw .runtime(.node(node.displayName, error)) }
    }
    /// An integer input read as Ints, nil when absent.
    func intInput(_ i: Int) -> [Int]? {
        guard i < inputs.count, let t = inputs[i], t.dtype.isInteger else { return nil }
        return Ops.ints(t)
    }
    func axis(_ a: Int, rank: Int) throws(AutogradError) -> Int {
        guard let v = Axes.normalise(a, rank: rank) else { throw fail("axis \(a) is outside rank \(rank)") }
        return v
    }
}

typealias GradientRule = @Sendable (RuleContext) throws(AutogradError) -> [Tensor?]

struct TrainingForwardResult {
    var outputs: [Tensor]
    var saved: [Tensor] = []
    /// Values the rule reads back without a copy into tensors (see `Tape.Record.kept`).
    var kept: (any Sendable)?
    var stateUpdates: [(String, Tensor)] = []
}
/// A node's forward pass in training, when it differs from inference's or keeps values for the
/// backward pass; nil runs the runtime's kernel instead (a form it does not handle).
typealias TrainingForward = @Sendable (Node, [Tensor?], inout TrainingRNG) throws(AutogradError) -> TrainingForwardResult?

/// The gradient rules, one per IR primitive.
enum Rules {
    static let table: [String: GradientRule] = {
        var t: [String: GradientRule] = [:]
        for (k, v) in linear + elementwise + movement + neural + recurrent + selection { t[k] = v }
        return t
    }()

    static let trainingForward: [String: TrainingForward] = [
        "Dropout": dropoutForward,
        "BatchNormalization": batchNormForward,
        "LSTM": lstmForward,
        "GRU": gruForward,
    ]

    static func hasTrainingForward(_ n: Node) -> Bool { trainingForward[n.opType] != nil }

    /// Ops whose outputs carry no gradient (shapes, comparisons, indices).
    static let nonDifferentiable: Set<String> = [
        "Shape", "Size", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor",
        "ArgMax", "ArgMin", "ConstantOfShape", "Constant", "NonZero", "Range", "RandomNormal", "RandomUniform",
        "RandomNormalLike", "RandomUniformLike", "EyeLike", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round",
    ]

    static func stopsGradient(_ n: Node) -> Bool { nonDifferentiable.contains(n.opType) }

    /// Which inputs of a node gradients flow into (shape, index and axes inputs excluded).
    static func differentiableInputs(_ n: Node) -> (Int) -> Bool {
        switch n.opType {
        case "Reshape", "Expand", "Tile", "Squeeze", "Unsqueeze", "Dropout", "Split", "ReduceSum", "ReduceMean",
             "ReduceMax", "ReduceMin", "ReduceProd", "Pad":
            return { $0 == 0 }
        case "Slice": return { $0 == 0 }
        case "Gather", "GatherElements": return { $0 == 0 }
        case "Where": return { $0 != 0 }
        case "BatchNormalization": return { $0 < 3 }
        case "Clip": return { $0 == 0 }
        case "Pow": return { $0 == 0 || $0 == 1 }
        case "LSTM", "GRU", "RNN": return { $0 != 4 }
        default: return { _ in true }
        }
    }

    /// Whether output `k` of a node carries a gradient (not BatchNormalization's running stats,
    /// not MaxPool's indices, not LayerNormalization's saved mean).
    static func outputIsDifferentiable(_ n: Node, _ k: Int) -> Bool {
        switch n.opType {
        case "BatchNormalization", "MaxPool", "Dropout", "LayerNormalization": return k == 0
        default: return true
        }
    }
}
