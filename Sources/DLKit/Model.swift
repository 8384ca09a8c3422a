import DLCheckpoint
import DLGraph
import DLHuggingFace
import DLONNX
import DLOpenVINO
import DLRuntime
import DLTFLite
import DLTensor
import DLTensorFlow
import Foundation

/// A model loaded for inference: its graph and an executor for it.
///
/// ```swift
/// let model = try Model(contentsOf: URL(fileURLWithPath: "mlp.onnx"))   // or .ckpt
/// let y = try model.run(["x": Tensor(shape: [1, 784], scalars: pixels)])
/// ```
public final class Model: Sendable {
    public let name: String
    public let format: FileFormat
    public let graph: Graph
    let executor: Executor

    /// Loads an ONNX model or a DLKit checkpoint; the format is told by the file's first bytes.
    /// - Parameters:
    ///   - url: the model file (or folder, for a SavedModel or Hugging Face model).
    ///   - options: how the model runs (threads, plans, passes, kernel paths); each model has its own.
    /// - Throws: `DLKitError` naming the file and what is wrong (unsupported ops all at once).
    public convenience init(contentsOf url: URL, options: RuntimeOptions = .default) throws(DLKitError) {
        let path = url.path
        let (read, format) = try Self.loadGraph(path: path)
        let graph = HFFolder.droppingCarriedWeights(read)  // weights a Hugging Face graph only carries
        // A TF.js model.json is named by its folder (every one is called model.json).
        let base = format == .tfjs ? url.deletingLastPathComponent().lastPathComponent : url.deletingPathExtension().lastPathComponent
        try self.init(graph: graph, name: base, format: format, options: options)
    }

    public init(graph: Graph, name: String, format: FileFormat = .unknown,
                allocationBudget: Int = Graph.defaultAllocationBudget, options: RuntimeOptions = .default) throws(DLKitError) {
        self.allocationBudget = allocationBudget
        do { executor = try Executor(graph: graph, options: options) } catch { throw .runtime(error) }
        self.graph = executor.graph
        self.name = name
        self.format = format
        // Shapes fixed in the file alone must fit the budget; symbolic ones are checked per run.
        do { try self.graph.checkAllocation(budget: allocationBudget) } catch { throw .runtime(.invalidGraph(error)) }
        hasSymbolicInputs = self.graph.inputs.contains { v in v.type?.dims?.contains { $0.value == nil } ?? true }
    }

    /// The most bytes a run may hold at once (`Graph.checkAllocation`); a model or request
    /// that would pass it is refused before anything is allocated.
    public let allocationBudget: Int
    /// Whether some input's shape is known only at run time (then each run checks the budget).
    private let hasSymbolicInputs: Bool
    /// Input shape lists that passed the budget check (at most 256 remembered).
    private let checkedShapes = ShapeSet()

    /// How this model runs.
    public var options: RuntimeOptions { executor.options }

    public var inputs: [ValueInfo] { graph.inputs }
    public var outputs: [ValueInfo] { graph.outputs }

    /// Runs the model.
    /// - Parameters:
    ///   - inputs: one tensor per model input, by name.
    ///   - outputs: names of the outputs wanted; all when nil.
    /// - Throws: `DLKitError.runtime` naming the input or node at fault.
    public func run(_ inputs: [String: Tensor], outputs: [String]? = nil) throws(DLKitError) -> [String: Tensor] {
        try checkShapes(inputs)
        do { return try executor.run(inputs, outputs: outputs) } catch { throw .runtime(error) }
    }

    /// Runs the model as ``run(_:outputs:)`` does and times every node as it runs (after the
    /// runtime's fusions, in execution order). The first run with new input shapes also builds
    /// their plan: profile a warmed-up model for steady-state numbers.
    public func profile(_ inputs: [String: Tensor], outputs: [String]? = nil) throws(DLKitError) -> (outputs: [String: Tensor], timings: [NodeTiming]) {
        try checkShapes(inputs)
        do { return try executor.profile(inputs, outputs: outputs) } catch { throw .runtime(error) }
    }

    /// Holds symbolic input shapes to the allocation budget (once per new set of shapes).
    private func checkShapes(_ inputs: [String: Tensor]) throws(DLKitError) {
        // Input shapes already found within the budget skip the inference (serving repeats them).
        guard hasSymbolicInputs else { return }
        let signature = graph.inputs.map { inputs[$0.name]?.shape ?? [-1] }
        guard !checkedShapes.contains(signature) else { return }
        var types: [String: TensorType] = [:]
        for v in graph.inputs { if let t = inputs[v.name] { types[v.name] = TensorType(dtype: t.dtype, shape: t.shape) } }
        do { try graph.checkAllocation(budget: allocationBudget, inputTypes: types) } catch { throw .runtime(.invalidGraph(error)) }
        checkedShapes.insert(signature)
    }

    /// Reads the graph of an ONNX file, checkpoint, Keras file, TensorFlow SavedModel folder, TF.js
    /// model, TFLite file, OpenVINO IR (`.xml`) or Hugging Face folder (`signature`: which SavedModel signature, default
    /// `serving_default`; `hfCache`: a decoder's graph with its KV cache inputs and outputs and a
    /// `position_ids` input, optimum's layout).
    public static func loadGraph(contentsOf url: URL, checkOps: Bool = true, signature: String? = nil,
                                 hfCache: Bool = false) throws(DLKitError) -> (Graph, FileFormat) {
        try loadGraph(path: url.path, checkOps: checkOps, signature: signature, hfCache: hfCache)
    }

    /// ``loadGraph(contentsOf:checkOps:signature:hfCache:)`` by path, for the tools and the other targets of the package.
    package static func loadGraph(path: String, checkOps: Bool = true, signature: String? = nil,
                                  hfCache: Bool = false) throws(DLKitError) -> (Graph, FileFormat) {
        let format = try FileFormat.detect(path: path)
        switch format {
        case .onnx:
            do { return (try ONNXReader.read(path: path, checkOps: checkOps), format) } catch { throw .onnx(error) }
        case .checkpoint:
            do { return (try Checkpoint(contentsOf: path, checkOps: checkOps).graph, format) } catch { throw .checkpoint(error) }
        case .safetensors:
            throw .unsupportedFormat(path: path, format: format, purpose: "as a model: it holds weights but no graph (bind it to one with an ONNX model)")
        case .hdf5, .keras:
            return (try KerasSupport.graph(path: path), format)
        case .openvino:
            do { return (try OpenVINOReader.read(path: path, checkOps: checkOps), format) } catch { throw .openvino(error) }
        case .savedModel:
            do { return (try SavedModelReader.read(path: path, signature: signature, checkOps: checkOps), format) } catch { throw .tensorflow(error) }
        case .tfjs:
            return (try TFJSSupport.graph(path: path, checkOps: checkOps), format)
        case .tensorflowCheckpoint:
            throw .unsupportedFormat(path: path, format: format, purpose: "as a model: a checkpoint holds weights but no graph (convert the SavedModel folder)")
        case .tflite:
            do { return (try TFLiteImporter.graph(from: try TFLiteModel(path: path)), format) } catch { throw .tflite(error) }
        case .huggingFace:
            do {
                let folder = try HFFolder(path: path)
                let cache = hfCache && folder.isDecoder
                return (try folder.graph(cache: cache, positionIds: cache), format)
            } catch { throw .huggingFace(error) }
        default:
            throw .unsupportedFormat(path: path, format: format, purpose: "as a model")
        }
    }
}

/// A small thread-safe set of input shape lists (the shapes a model's budget check passed).
final class ShapeSet: @unchecked Sendable {
    private let lock = NSLock()
    private var set: Set<[[Int]]> = []

    func contains(_ s: [[Int]]) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return set.contains(s)
    }

    func insert(_ s: [[Int]]) {
        lock.lock(); defer { lock.unlock() }
        if set.count >= 256 { set.removeAll() }
        set.insert(s)
    }
}
