import DLGraph
import DLKernels
import DLTensor

/// What a kernel gets: the node, its input tensors (nil where left out) and the output types
/// inference gave for these concrete inputs.
struct KernelContext {
    let node: Node
    let inputs: [Tensor?]
    var outputTypes: [TensorType?]
    /// The inputs as values (tensors, sequences, optionals); nil where left out. Set by the executor
    /// in unplanned runs (value kernels read it); plans, which run tensor kernels only, leave it empty.
    var values: [GraphValue?] = []
    /// Runs graph attribute (name, index among a `graphs` list) with inputs in order, seeing the
    /// enclosing scope; set by the executor for nodes with graph attributes.
    var subgraphRunner: ((String, Int, [GraphValue]) throws(RuntimeError) -> [GraphValue])? = nil
    /// The model's ai.onnx opset when known, for ops whose semantics changed between versions.
    var opset: Int? = nil
    /// Buffers recycled by the plan (planned runs only); see `makeOutput`.
    var pool: BufferPool? = nil
    /// The input (index) that dies at this node and may be overwritten by the output (planned
    /// runs only, when the plan found it safe); see `inPlaceOutput`.
    var inPlaceInput: Int? = nil
    /// The node's constant weights packed for the AVX-512 kernels (planned runs on machines that
    /// have them); see `WeightPacks`.
    var packed: [PackedMatrix]? = nil
    /// The node's window attributes when the plan read them already; see `window()`.
    var windowAttributes: WindowAttributes? = nil

    /// Where the plan wants this step's output written (its slab of a Concat's output); see
    /// `makeOutput`.
    var slab: SlabOffer? = nil

    /// A tensor for an output of `dtype` and `shape` whose every element the kernel writes: the
    /// step's slab of a Concat's output when the plan offers one of this size (once), else a
    /// recycled buffer in planned runs (contents unspecified), zeros otherwise.
    func makeOutput(_ dtype: DType, shape: [Int]) -> Tensor {
        guard let pool, dtype != .string, let n = ShapeMath.elementCount(shape), n > 0 else {
            return Tensor(zeros: dtype, shape: shape)
        }
        if let s = slab?.take(byteCount: n * dtype.byteWidth) { return Tensor(dtype: dtype, shape: shape, sharing: s) }
        return Tensor(dtype: dtype, shape: shape, sharing: pool.take(byteCount: n * dtype.byteWidth))
    }

    /// The input the plan lets this node overwrite, when it has `dtype` and `shape`; write it with
    /// `withUnsafeMutableBufferPointerInPlace` and return it as the output.
    func inPlaceOutput(_ dtype: DType, shape: [Int]) -> Tensor? {
        guard let i = inPlaceInput, i < inputs.count, let t = inputs[i], t.dtype == dtype, t.shape == shape, !t.isMapped else { return nil }
        return t
    }

    /// Fails when an output whose size comes from input values would pass the run's
    /// `valueSizedOutputLimit` (the plan cannot check such sizes beforehand).
    func checkValueSized(elements: Int, _ dtype: DType) throws(RuntimeError) {
        let limit = KernelOptions.current.valueSizedOutputLimit
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: max(dtype.byteWidth, 8))
        guard !overflow, bytes <= limit else {
            throw fail("an output of \(elements) \(dtype) elements, sized by input values, is over the limit of \(limit) bytes")
        }
    }

    func input(_ i: Int) throws(RuntimeError) -> Tensor {
        guard i < inputs.count, let t = inputs[i] else {
            throw .invalidInput(node: node.displayName, reason: "input \(i) is missing")
        }
        return t
    }

    func optionalInput(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }

    /// The concrete shape of output `i`.
    func outputShape(_ i: Int) throws(RuntimeError) -> [Int] {
        guard i < outputTypes.count, let s = outputTypes[i]?.dims?.concrete else {
            throw .unsupported(node: node.displayName, reason: "the shape of output \(i) could not be inferred")
        }
        return s
    }

    /// Fails unless every given input is float32 (the kernels' type for now).
    func requireFloat32(_ tensors: Tensor...) throws(RuntimeError) {
        for t in tensors where t.dtype != .float32 {
            throw .unsupported(node: node.displayName, reason: "\(node.opType) on \(t.dtype) is not supported yet (float32 only)")
        }
    }

    func attribute<T>(_ body: () throws(GraphError) -> T) throws(RuntimeError) -> T {
        do { return try body() } catch { throw .node(node.displayName, error) }
    }
}

typealias Kernel = @Sendable (KernelContext) throws(RuntimeError) -> [Tensor]
/// A kernel over values of any kind (sequences, optionals, control flow): one value per output.
typealias ValueKernel = @Sendable (KernelContext) throws(RuntimeError) -> [GraphValue]

/// Op type → kernel. Every IR op the runtime can execute is listed here, once (see
/// ``KernelRegistry`` for the rule between an op's general kernel and its fast variant).
enum OpKernels {
    /// The general kernel of every op, then the fast variants, each listed with what it takes.
    static func registry() throws(KernelRegistry.Problem) -> KernelRegistry {
        var r = KernelRegistry()
        try r.add(ShapeKernels.all + MathKernels.all + MovementKernels.all + IndexingKernels.all + SortingKernels.all + ReduceKernels.all + CreationKernels.all
                  + NeuralKernels.all + PoolingKernels.all + ResizeKernels.all + ConvFamilyKernels.all
                  + SamplingKernels.all + RearrangeKernels.all + FlowKernels.all + FastPaths.fused)
        try r.addFast(ElementwiseKernels.fast + SelectKernels.fast + ConvolutionKernels.fast + LinearKernels.fast + FastLSTM.fast
                      + QuantizeKernels.fast)
        return r
    }

    static let table: [String: KernelEntry] = {
        // A duplicate is a programming error in this file's lists, found by the first test that runs a graph.
        do { return try registry().table() } catch { preconditionFailure("\(error)") }
    }()

    /// Kernels over sequences/optionals/subgraphs, and ops of other domains (keyed "domain:op").
    static let valueTable: [String: ValueKernel] = {
        var t: [String: ValueKernel] = [:]
        for (name, k) in FlowKernels.values {
            precondition(t[name] == nil, "kernel registry: value kernel '\(name)' listed twice")
            t[name] = k
        }
        return t
    }()

    static func key(_ node: Node) -> String {
        OpSet.isDefaultDomain(node) ? node.opType : "\(node.domain):\(node.opType)"
    }

    static func kernel(for node: Node) -> Kernel? {
        table[key(node)]?.run
    }

    static func valueKernel(for node: Node) -> ValueKernel? { valueTable[key(node)] }

    static func has(_ node: Node) -> Bool { kernel(for: node) != nil || valueKernel(for: node) != nil }
}

/// Float32 typed access helpers for kernels.
extension Tensor {
    func floats<R>(_ body: (UnsafePointer<Float>) throws(RuntimeError) -> R) throws(RuntimeError) -> R {
        var result: Result<R, RuntimeError>!
        withUnsafeBufferPointer(as: Float.self) { b in
            do throws(RuntimeError) {
                result = .success(try body(b.baseAddress ?? UnsafePointer(bitPattern: 64)!))
            } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// A new float32 tensor of `shape` filled by `body`.
    static func makeFloat(shape: [Int], _ body: (UnsafeMutablePointer<Float>) throws(RuntimeError) -> Void) throws(RuntimeError) -> Tensor {
        var t = Tensor(zeros: .float32, shape: shape)
        var failure: RuntimeError?
        t.withUnsafeMutableBufferPointer(as: Float.self) { b in
            do throws(RuntimeError) { try body(b.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!) } catch { failure = error }
        }
        if let failure { throw failure }
        return t
    }
}

/// Attribute and input access for kernels, with the node named in every error.
extension KernelContext {
    /// The input breaks the op's contract: a shape, value or attribute the op does not allow.
    func fail(_ reason: String) -> RuntimeError { .invalidInput(node: node.displayName, reason: reason) }
    /// A valid form of the op that DLKit does not implement yet.
    func unsupported(_ reason: String) -> RuntimeError { .unsupported(node: node.displayName, reason: reason) }

    func int(_ name: String, _ defaultValue: Int) throws(RuntimeError) -> Int {
        try attribute { () throws(GraphError) in try node.int(name, default: defaultValue) }
    }
    func float(_ name: String, _ defaultValue: Float) throws(RuntimeError) -> Float {
        try attribute { () throws(GraphError) in try node.float(name, default: defaultValue) }
    }
    func ints(_ name: String) throws(RuntimeError) -> [Int]? {
        try attribute { () throws(GraphError) in try node.ints(name) }
    }
    func string(_ name: String, _ defaultValue: String) throws(RuntimeError) -> String {
        try attribute { () throws(GraphError) in try node.string(name, default: defaultValue) }
    }
    func floats(_ name: String) -> [Float]? {
        if case .floats(let v)? = node.attribute(name) { return v }
        return nil
    }

    /// `axis` normalised against `rank` (negative counts from the end).
    func axis(_ a: Int, rank: Int) throws(RuntimeError) -> Int {
        guard let v = Axes.normalise(a, rank: rank) else { throw fail("axis \(a) is outside rank \(rank)") }
        return v
    }

    /// An optional integer input read as Ints (shapes, axes, pads...); nil when left out.
    func intList(_ i: Int) throws(RuntimeError) -> [Int]? {
        guard let t = optionalInput(i) else { return nil }
        guard t.dtype.isInteger else { throw fail("input \(i) must be an integer tensor, got \(t.dtype)") }
        return t.int64s().map { Int(truncatingIfNeeded: $0) }
    }

    /// The number of inputs the node lists, counting left-out ones.
    var inputCount: Int { inputs.count }
}


/// A storage offered to one step for its output, taken by the first `makeOutput` of its size.
/// (The offer lets go of it when taken, so the output holds the only reference and the kernel
/// writes it without a copy.)
final class SlabOffer {
    private var storage: TensorStorage?

    init(_ storage: TensorStorage) { self.storage = storage }

    func take(byteCount: Int) -> TensorStorage? {
        guard let s = storage, s.byteCount == byteCount else { return nil }
        storage = nil
        return s
    }
}
