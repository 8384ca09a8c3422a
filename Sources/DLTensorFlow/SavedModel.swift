import CTensorFlowProtos
import DLGraph
import DLTensor

/// Reads TensorFlow SavedModel folders (`saved_model.pb` + `variables/`) into the IR.
///
/// One signature becomes the graph (`serving_default` unless named): its inputs and outputs
/// keep the signature's keys; `StatefulPartitionedCall`/`PartitionedCall` function bodies are
/// inlined; resource variables are followed through the captured inputs of the concrete
/// functions and the object graph to their checkpoint entries, which become initializers.
/// Ops without a translation are listed all at once.
public enum SavedModelReader {
    /// The limit on `saved_model.pb` (protobuf's own).
    public static let maxBytes = 2_147_483_647

    /// The signature keys of the SavedModel at `path`, sorted.
    public static func signatures(path: String) throws(TensorFlowError) -> [String] {
        try withModel(path) { model, _ in model.signatures.keys.sorted() }
    }

    /// Reads signature `signature` (default `serving_default`, or the only one) as a graph.
    public static func read(path: String, signature: String? = nil, checkOps: Bool = true) throws(TensorFlowError) -> Graph {
        try withModel(path) { model, pbPath throws(TensorFlowError) in
            let key: String
            if let signature {
                guard model.signatures[signature] != nil else {
                    throw .signature(path: pbPath, reason: "has no signature '\(signature)' (it has \(model.signatures.keys.sorted().joined(separator: ", ")))")
                }
                key = signature
            } else if model.signatures["serving_default"] != nil {
                key = "serving_default"
            } else if model.signatures.count == 1, let only = model.signatures.keys.first {
                key = only
            } else {
                throw .signature(path: pbPath, reason: model.signatures.isEmpty ? "has no signatures to serve"
                    : "has no serving_default signature; pick one by name (\(model.signatures.keys.sorted().joined(separator: ", ")))")
            }
            let bundlePrefix = path + "/variables/variables"
            let bundle: TensorBundle?
            do throws(TensorFlowError) { bundle = try TensorBundle(path: bundlePrefix) } catch {
                // A SavedModel without variables has no index; any other problem is reported.
                if case .cannotRead(let p, _) = error, p == bundlePrefix + ".index", !model.usesVariables { bundle = nil } else { throw error }
            }
            var importer = GraphImporter(path: pbPath, model: model, bundle: bundle)
            var g = try importer.build(signature: key)
            if checkOps {
                do throws(GraphError) { try g.verifyAndSort() } catch { throw .graph(path: pbPath, error) }
            }
            return g
        }
    }

    /// Decodes `saved_model.pb` into the parts the importer uses.
    static func withModel<R>(_ path: String, _ body: (SavedModelParts, String) throws(TensorFlowError) -> R) throws(TensorFlowError) -> R {
        let pbPath = path + "/saved_model.pb"
        let file: MappedFile
        do { file = try MappedFile(path: pbPath) } catch let e as MappedFileError { throw .cannotRead(path: pbPath, reason: e.reason) } catch {
            throw .cannotRead(path: pbPath, reason: "\(error)")
        }
        guard file.byteCount <= maxBytes else { throw .notSavedModel(path: pbPath, reason: "\(file.byteCount) bytes is over the 2 GiB protobuf limit") }
        guard file.byteCount > 0 else { throw .notSavedModel(path: pbPath, reason: "the file is empty") }
        if let at = TFProtoNesting.tooDeep(file.bytes) {
            throw .notSavedModel(path: pbPath, reason: "messages nest more than \(TFProtoNesting.maxDepth) deep at byte \(at)")
        }
        guard let sm = unpack(file.bytes, tensorflow__saved_model__unpack) else {
            throw .notSavedModel(path: pbPath, reason: "the bytes are not a valid protobuf SavedModel; truncated or another format")
        }
        defer { tensorflow__saved_model__free_unpacked(sm, nil) }
        guard let mg = PB.messages(sm.pointee.meta_graphs, sm.pointee.n_meta_graphs).first else {
            throw .notSavedModel(path: pbPath, reason: "it holds no MetaGraphDef")
        }
        return try body(SavedModelParts(mg.pointee), pbPath)
    }
}

/// What the importer needs of a `MetaGraphDef`, copied out of protobuf-c.
struct SavedModelParts {
    struct TensorInfo { var name: String; var dtype: Tensorflow__DataType; var shape: [Int]? }
    struct Signature { var inputs: [(String, TensorInfo)]; var outputs: [(String, TensorInfo)] }

    var nodes: [TFNode] = []
    var functions: [String: TFFunction] = [:]
    var signatures: [String: Signature] = [:]
    /// Concrete function name -> object-graph node ids of its captured inputs.
    var boundInputs: [String: [Int]] = [:]
    /// Object-graph node id -> the variable's name, for variable nodes.
    var variableNames: [Int: String] = [:]

    init() {}

    var usesVariables: Bool { !variableNames.isEmpty || nodes.contains { $0.op == "VarHandleOp" || $0.op == "VariableV2" } }

    init(_ mg: Tensorflow__MetaGraphDef) {
        if let g = mg.graph_def?.pointee {
            nodes = ProtoCopy.nodes(g.node, g.n_node)
            if let lib = g.library?.pointee {
                for f in PB.messages(lib.function, lib.n_function) {
                    let fn = ProtoCopy.function(f.pointee)
                    functions[fn.name] = fn
                }
            }
        }
        func info(_ t: Tensorflow__TensorInfo?) -> TensorInfo {
            TensorInfo(name: t?.encoding_case == TENSORFLOW__TENSOR_INFO__ENCODING_NAME ? PB.string(t?.name) : "",
                       dtype: t?.dtype ?? TENSORFLOW__DATA_TYPE__DT_INVALID, shape: t.flatMap { $0.tensor_shape == nil ? nil : PB.dims($0.tensor_shape) })
        }
        for e in PB.messages(mg.signature_def, mg.n_signature_def) {
            // `__saved_model_init_op` and the like are TensorFlow's own, not served.
            guard let s = e.pointee.value?.pointee, !PB.string(e.pointee.key).hasPrefix("__") else { continue }
            let ins = PB.messages(s.inputs, s.n_inputs).map { (PB.string($0.pointee.key), info($0.pointee.value?.pointee)) }
            let outs = PB.messages(s.outputs, s.n_outputs).map { (PB.string($0.pointee.key), info($0.pointee.value?.pointee)) }
            signatures[PB.string(e.pointee.key)] = Signature(inputs: ins.sorted { $0.0 < $1.0 }, outputs: outs.sorted { $0.0 < $1.0 })
        }
        if let og = mg.object_graph_def?.pointee {
            for e in PB.messages(og.concrete_functions, og.n_concrete_functions) {
                boundInputs[PB.string(e.pointee.key)] = e.pointee.value.map { PB.scalars($0.pointee.bound_inputs, $0.pointee.n_bound_inputs).map { Int($0) } } ?? []
            }
            for (i, n) in PB.messages(og.nodes, og.n_nodes).enumerated() where n.pointee.kind_case == TENSORFLOW__SAVED_OBJECT__KIND_VARIABLE {
                variableNames[i] = PB.string(n.pointee.variable?.pointee.name)
            }
        }
    }
}
