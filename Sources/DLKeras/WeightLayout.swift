import DLTensor

/// How one Keras variable becomes one graph initializer, and back: reorder gate blocks along
/// the last axis (`gates`, new position -> old block), then transpose (`perm`), then reshape to
/// `irShape`. Recorded in the graph's metadata so weights can be written back to Keras files
/// after the graph went through ONNX or a checkpoint.
public struct WeightLayout: Sendable, Equatable {
    public var gates: [Int]?
    public var perm: [Int]?
    public var irShape: [Int]?

    public init(gates: [Int]? = nil, perm: [Int]? = nil, irShape: [Int]? = nil) {
        self.gates = gates
        self.perm = perm
        self.irShape = irShape
    }

    public static let identity = WeightLayout()

    /// Keras tensor -> IR tensor.
    public func forward(_ t: Tensor) throws(TensorError) -> Tensor {
        var x = t
        if let g = gates { x = try Self.reorderBlocks(x, g) }
        if let p = perm { x = try Self.transpose(x, p) }
        if let s = irShape { x = try x.reshaped(to: s) }
        return x
    }

    /// IR tensor -> Keras tensor of `kerasShape`.
    public func backward(_ t: Tensor, kerasShape: [Int]) throws(TensorError) -> Tensor {
        var x = t
        let permuted = perm.map { p in p.map { kerasShape[$0] } } ?? kerasShape
        if irShape != nil || x.shape != permuted { x = try x.reshaped(to: permuted) }
        if let p = perm {
            var inverse = [Int](repeating: 0, count: p.count)
            for (i, v) in p.enumerated() { inverse[v] = i }
            x = try Self.transpose(x, inverse)
        }
        if let g = gates {
            var inverse = [Int](repeating: 0, count: g.count)
            for (i, v) in g.enumerated() { inverse[v] = i }
            x = try Self.reorderBlocks(x, inverse)
        }
        return x
    }

    /// Moves equal blocks of the last axis: block i of the result is block `order[i]` of `t`.
    static func reorderBlocks(_ t: Tensor, _ order: [Int]) throws(TensorError) -> Tensor {
        guard let last = t.shape.last, !order.isEmpty, last % order.count == 0 else {
            throw .reshapeMismatch(from: t.shape, to: [order.count])
        }
        let block = last / order.count, w = t.dtype.byteWidth
        let rows = t.elementCount / max(last, 1)
        var out = [UInt8](repeating: 0, count: t.byteCount)
        t.withUnsafeBytes { src in
            for r in 0..<rows {
                for (i, o) in order.enumerated() {
                    let from = (r * last + o * block) * w, to = (r * last + i * block) * w
                    for k in 0..<(block * w) { out[to + k] = src[from + k] }
                }
            }
        }
        return try Self.make(t.dtype, t.shape, out)
    }

    static func make(_ dtype: DType, _ shape: [Int], _ bytes: [UInt8]) throws(TensorError) -> Tensor {
        var result: Result<Tensor, TensorError> = .failure(.invalidShape(shape))
        bytes.withUnsafeBytes { b in
            do throws(TensorError) { result = .success(try Tensor(dtype: dtype, shape: shape, bytes: b)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// A transposed copy: axis i of the result is axis `perm[i]` of `t`.
    static func transpose(_ t: Tensor, _ perm: [Int]) throws(TensorError) -> Tensor {
        try t.transposed(perm)
    }
}

/// One Keras variable of the model and where it lives in the graph and in each Keras layout.
public struct KerasVariable: Sendable {
    /// The variable's short name (kernel, bias, recurrent_kernel, gamma, ...).
    public var name: String
    /// Its path below the layer in a Keras 3 `.weights.h5` (`vars/0`, `cell/vars/1`, `forward_layer/cell/vars/0`).
    public var keras3Path: String
    /// Its name in a legacy `.h5` (`dense/kernel`, `bi/forward_gru/gru_cell/kernel`), without ":0".
    public var legacyName: String
    public var shape: [Int]
    public var initializer: String
    public var layout: WeightLayout
    /// False for moving statistics and variables of frozen layers: legacy `.h5` files list a
    /// nested model's trainable variables first, then the others.
    public var trainable: Bool = true
}

/// A layer of the Keras model in `model.layers` order, for writing weights back.
public struct KerasLayerRecord: Sendable {
    public var name: String
    public var className: String
    /// The layer's group under `layers/` in a Keras 3 `.weights.h5`.
    public var keras3Group: String
    public var variables: [KerasVariable]
    /// The nested models this layer is inside, outermost first (empty for the model's own layers).
    public var scope: [String] = []
}

extension Tensor {
    /// A float32 tensor of the given shape filled with `value`.
    static func filled(_ value: Float, shape: [Int]) -> Tensor {
        Tensor(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }
}
