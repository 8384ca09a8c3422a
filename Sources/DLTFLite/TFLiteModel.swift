import DLTensor

/// A `.tflite` file parsed into plain values: the schema's `Model` table and what it holds.
///
/// Field ids from TensorFlow's `schema.fbs` (a union field takes two ids: its type, then its value):
/// - Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 5 metadata_buffer,
///   6 metadata, 7 signature_defs.
/// - OperatorCode: 0 deprecated_builtin_code (i8), 1 custom_code, 2 version, 3 builtin_code (i32).
/// - SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name.
/// - Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 5 is_variable, 6 sparsity,
///   7 shape_signature, 8 has_rank.
/// - QuantizationParameters: 0 min, 1 max, 2 scale, 3 zero_point (i64), 4/5 details, 6 quantized_dimension.
/// - SparsityParameters: 0 traversal_order, 1 block_map, 2 dim_metadata.
/// - DimensionMetadata: 0 format (0 dense, 1 CSR), 1 dense_size, 2/3 array_segments, 4/5 array_indices
///   (union of Int32Vector 1, Uint16Vector 2, Uint8Vector 3; each a table with `values` at 0).
/// - Operator: 0 opcode_index, 1 inputs, 2 outputs, 3/4 builtin_options, 5 custom_options,
///   6 custom_options_format, 7 mutating_variable_inputs, 8 intermediates,
///   9 large_custom_options_offset, 10 large_custom_options_size, 11/12 builtin_options_2.
/// - Buffer: 0 data, 1 offset (u64), 2 size (u64); offset/size are used past 2 GB and only when offset > 1.
/// - SignatureDef: 0 inputs, 1 outputs (TensorMap: 0 name, 1 tensor_index), 2 signature_key, 4 subgraph_index.
public struct TFLiteModel {
    public let path: String
    let file: MappedFile
    public let version: UInt32
    public let description: String
    public let operatorCodes: [OperatorCode]
    public let subgraphs: [Subgraph]
    /// Byte ranges of the buffers in the file (empty for buffer 0 and for tensors without data).
    public let buffers: [Range<Int>]
    public let signatures: [Signature]

    public struct OperatorCode: Sendable {
        /// The builtin operator (the larger of the two code fields, as the schema says).
        public var builtin: Int32
        public var custom: String?
        public var version: Int32
    }

    public struct Quantization: Sendable {
        public var scale: [Float]
        public var zeroPoint: [Int64]
        public var dimension: Int
    }

    /// Sparse storage of a constant tensor (a modified TACO format).
    public struct Sparsity: Sendable {
        public struct Dimension: Sendable {
            public var isSparse: Bool
            public var denseSize: Int
            public var segments: [Int]
            public var indices: [Int]
        }
        public var traversalOrder: [Int]
        public var blockMap: [Int]
        public var dimensions: [Dimension]
    }

    public struct TensorInfo: Sendable {
        public var name: String
        public var shape: [Int]
        /// The shape with -1 for dimensions known only at run time, when the file gives it.
        public var shapeSignature: [Int]?
        public var type: Int8
        public var buffer: Int
        public var quantization: Quantization?
        public var sparsity: Sparsity?
        public var isVariable: Bool
    }

    public struct Operator {
        public var opcodeIndex: Int
        /// Tensor indices; -1 is an optional input left out.
        public var inputs: [Int]
        public var outputs: [Int]
        public var optionsType: UInt8
        /// The builtin options table, when present (read by the op translators).
        var options: FlatTable?
        /// A custom operator's options as stored (their layout is the operator's own).
        var customOptions: [UInt8] = []
    }

    public struct Subgraph {
        public var name: String
        public var tensors: [TensorInfo]
        public var inputs: [Int]
        public var outputs: [Int]
        public var operators: [Operator]
    }

    public struct Signature: Sendable {
        public var key: String
        public var subgraph: Int
        public var inputs: [(name: String, tensor: Int)]
        public var outputs: [(name: String, tensor: Int)]
    }

    /// Reads and checks the structure of the file at `path` (memory-mapped; weights stay in the file).
    /// - Throws: `TFLiteError` naming the object and byte offset at fault.
    public init(path: String) throws(TFLiteError) {
        let f: MappedFile
        do { f = try MappedFile(path: path) } catch let e as MappedFileError { throw .cannotRead(path: path, reason: e.reason) } catch {
            throw .cannotRead(path: path, reason: "\(error)")
        }
        try self.init(file: f)
    }

    public init(file: MappedFile) throws(TFLiteError) {
        let path = file.path
        self.path = path
        self.file = file
        let fb = FlatBuffer(bytes: file.bytes)
        guard fb.count >= 8 else { throw .notTFLite(path: path, reason: "\(fb.count) bytes is too short for a FlatBuffer") }
        guard fb.identifier == "TFL3" else {
            throw .notTFLite(path: path, reason: "bytes 4..<8 are not the identifier TFL3")
        }
        do throws(FlatBufferError) {
            let model = try fb.root("model")
            version = try model.scalar(0, UInt32(0))
            description = try model.string(3, "model description") ?? ""
            operatorCodes = try model.tables(1, "operator_codes") { "operator_code \($0)" }.map { t throws(FlatBufferError) in
                let deprecated = Int32(try t.scalar(0, Int8(0)))
                let code = try t.scalar(3, Int32(0))
                return OperatorCode(builtin: max(deprecated, code), custom: try t.string(1, t.object + " custom_code"),
                                    version: try t.scalar(2, Int32(1)))
            }
            var bufs: [Range<Int>] = []
            for (i, t) in try model.tables(4, "buffers", name: { "buffer \($0)" }).enumerated() {
                let offset = try t.scalar(1, UInt64(0)), size = try t.scalar(2, UInt64(0))
                if offset > 1 {
                    guard offset <= UInt64(fb.count), size <= UInt64(fb.count) - offset else {
                        throw FlatBufferError(object: "buffer \(i)", offset: t.position,
                                              reason: "data at offset \(offset) size \(size) runs past the end of the file (\(fb.count) bytes)")
                    }
                    bufs.append(Int(offset)..<Int(offset + size))
                } else if let v = try t.vector(0, elementSize: 1, "buffer \(i) data") {
                    bufs.append(v.start..<(v.start + v.count))
                } else {
                    bufs.append(0..<0)
                }
            }
            buffers = bufs
            var subs: [Subgraph] = []
            for (si, s) in try model.tables(2, "subgraphs", name: { "subgraph \($0)" }).enumerated() {
                subs.append(try Self.subgraph(s, si))
            }
            subgraphs = subs
            signatures = try model.tables(7, "signature_defs") { "signature_def \($0)" }.map { t throws(FlatBufferError) in
                func maps(_ id: Int, _ what: String) throws(FlatBufferError) -> [(name: String, tensor: Int)] {
                    try t.tables(id, "\(t.object) \(what)") { "\(t.object) \(what) \($0)" }.map { m throws(FlatBufferError) in
                        (try m.string(0, m.object + " name") ?? "", Int(try m.scalar(1, UInt32(0))))
                    }
                }
                return Signature(key: try t.string(2, t.object + " key") ?? "", subgraph: Int(try t.scalar(4, UInt32(0))),
                                 inputs: try maps(0, "inputs"), outputs: try maps(1, "outputs"))
            }
        } catch {
            throw .malformed(path: path, error)
        }
        try validate()
    }

    static func subgraph(_ s: FlatTable, _ si: Int) throws(FlatBufferError) -> Subgraph {
        let where_ = "subgraph \(si)"
        var tensors: [TensorInfo] = []
        for (ti, t) in try s.tables(0, "\(where_) tensors", name: { "\(where_) tensor \($0)" }).enumerated() {
            let name = try t.string(3, "\(where_) tensor \(ti) name") ?? ""
            let what = "\(where_) tensor \(ti) ('\(name)')"
            var quant: Quantization?
            if let q = try t.table(4, what + " quantization") {
                let scale = try q.floats(2, what + " scale") ?? []
                if !scale.isEmpty {
                    quant = Quantization(scale: scale, zeroPoint: try q.ints(3, as: Int64.self, what + " zero_point") ?? [],
                                         dimension: Int(try q.scalar(6, Int32(0))))
                }
            }
            var sparsity: Sparsity?
            if let sp = try t.table(6, what + " sparsity") {
                var dims: [Sparsity.Dimension] = []
                for d in try sp.tables(2, what + " dim_metadata", name: { "\(what) dim_metadata \($0)" }) {
                    func indexVector(_ typeId: Int) throws(FlatBufferError) -> [Int] {
                        let kind = try d.scalar(typeId, UInt8(0))
                        guard kind != 0, let v = try d.table(typeId + 1, d.object + " index vector") else { return [] }
                        switch kind {
                        case 1: return (try v.ints(0, as: Int32.self, v.object) ?? []).map(Int.init)
                        case 2: return (try v.ints(0, as: UInt16.self, v.object) ?? []).map(Int.init)
                        case 3: return (try v.ints(0, as: UInt8.self, v.object) ?? []).map(Int.init)
                        default: throw FlatBufferError(object: d.object, offset: d.position, reason: "unknown index vector type \(kind)")
                        }
                    }
                    dims.append(Sparsity.Dimension(isSparse: try d.scalar(0, Int8(0)) == 1, denseSize: Int(try d.scalar(1, Int32(0))),
                                                   segments: try indexVector(2), indices: try indexVector(4)))
                }
                sparsity = Sparsity(traversalOrder: (try sp.ints(0, as: Int32.self, what + " traversal_order") ?? []).map(Int.init),
                                    blockMap: (try sp.ints(1, as: Int32.self, what + " block_map") ?? []).map(Int.init),
                                    dimensions: dims)
            }
            tensors.append(TensorInfo(
                name: name,
                shape: (try t.ints(0, as: Int32.self, what + " shape") ?? []).map(Int.init),
                shapeSignature: try t.ints(7, as: Int32.self, what + " shape_signature").map { $0.map(Int.init) },
                type: try t.scalar(1, Int8(0)), buffer: Int(try t.scalar(2, UInt32(0))),
                quantization: quant, sparsity: sparsity, isVariable: try t.bool(5)))
        }
        var ops: [Operator] = []
        for (oi, o) in try s.tables(3, "\(where_) operators", name: { "\(where_) operator \($0)" }).enumerated() {
            let what = "\(where_) operator \(oi)"
            let optionsType = try o.scalar(3, UInt8(0))
            ops.append(Operator(
                opcodeIndex: Int(try o.scalar(0, UInt32(0))),
                inputs: (try o.ints(1, as: Int32.self, what + " inputs") ?? []).map(Int.init),
                outputs: (try o.ints(2, as: Int32.self, what + " outputs") ?? []).map(Int.init),
                optionsType: optionsType,
                options: optionsType == 0 ? nil : try o.table(4, what + " builtin_options"),
                customOptions: try o.ints(5, as: UInt8.self, what + " custom_options") ?? []))
        }
        return Subgraph(name: try s.string(4, "\(where_) name") ?? "", tensors: tensors,
                        inputs: (try s.ints(1, as: Int32.self, "\(where_) inputs") ?? []).map(Int.init),
                        outputs: (try s.ints(2, as: Int32.self, "\(where_) outputs") ?? []).map(Int.init),
                        operators: ops)
    }

    /// Every index (tensor, buffer, operator code, subgraph) in range; shapes non-negative.
    func validate() throws(TFLiteError) {
        for (si, s) in subgraphs.enumerated() {
            let n = s.tensors.count
            for (ti, t) in s.tensors.enumerated() {
                let what = "subgraph \(si) tensor \(ti) ('\(t.name)')"
                guard t.buffer < buffers.count else {
                    throw .invalid(path: path, object: what, reason: "buffer index \(t.buffer) is out of range (\(buffers.count) buffers)")
                }
                guard t.shape.allSatisfy({ $0 >= 0 }) else {
                    throw .invalid(path: path, object: what, reason: "shape \(t.shape) has a negative dimension")
                }
            }
            for (label, list) in [("inputs", s.inputs), ("outputs", s.outputs)] {
                for i in list where i < 0 || i >= n {
                    throw .invalid(path: path, object: "subgraph \(si) \(label)", reason: "tensor index \(i) is out of range (\(n) tensors)")
                }
            }
            for (oi, o) in s.operators.enumerated() {
                guard o.opcodeIndex < operatorCodes.count else {
                    throw .invalid(path: path, object: "subgraph \(si) operator \(oi)",
                                   reason: "opcode index \(o.opcodeIndex) is out of range (\(operatorCodes.count) operator codes)")
                }
                for i in o.inputs + o.outputs where i < -1 || i >= n {
                    throw .invalid(path: path, object: "subgraph \(si) operator \(oi) (\(TFLiteOps.name(operatorCodes[o.opcodeIndex])))",
                                   reason: "tensor index \(i) is out of range (\(n) tensors)")
                }
            }
        }
        for sig in signatures {
            guard sig.subgraph < subgraphs.count else {
                throw .invalid(path: path, object: "signature '\(sig.key)'", reason: "subgraph \(sig.subgraph) is out of range")
            }
            let n = subgraphs[sig.subgraph].tensors.count
            for m in sig.inputs + sig.outputs where m.tensor >= n {
                throw .invalid(path: path, object: "signature '\(sig.key)' '\(m.name)'", reason: "tensor index \(m.tensor) is out of range (\(n) tensors)")
            }
        }
    }

    /// The bytes of a buffer (valid while the model is alive).
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[range])
    }
}
