import DLSafeTensors
import DLSupport
import DLTensor
import DLTorch

extension ModelSummary {
    /// One value inside a PyTorch file, for the nested listing of `dlconvert inspect`.
    public struct ContentLine: Sendable {
        /// The dotted path `--key` takes (`optimizer.state.0.exp_avg`).
        public var path: String
        public var key: String
        public var depth: Int
        /// `tensor`, `dict`, `list`, `tuple`, `object`, or the value itself for scalars.
        public var kind: String
        public var dtype: DType?
        public var shape: [Int]?
        /// Torch's own dtype name where DLKit has none (quantized, float8, ...).
        public var torchDType: String?
    }

    /// The summary of a PyTorch file: its tensors (as `StateDict` would flatten them) and the
    /// nested structure of everything in it. Only the pickle is read, not tensor data.
    static func torch(path: String, format: FileFormat) throws(DLKitError) -> ModelSummary {
        let file: TorchFile
        do { file = try TorchFile(path: path) } catch { throw .torch(error) }
        let refs: [(name: String, ref: TorchTensorRef)]
        let outline: [TorchFile.OutlineEntry]
        do {
            refs = try file.tensorRefs()
            outline = try file.outline()
        } catch { throw .torch(error) }
        var s = ModelSummary(format: format)
        s.producer = file.format == .torchScript ? "torch.jit.save" : (file.format == .legacy ? "torch.save (legacy)" : "torch.save")
        s.tensors = refs.map { Value(name: $0.name, dtype: $0.ref.dtype, dims: [Dim]($0.ref.shape)) }
        s.parameters = refs.reduce(0) { $0 + $1.ref.elementCount }
        // Short lists and tuples of plain values print on one line: betas: (0.9, 0.999).
        func inline(_ v: TorchValue) -> String? {
            let items: [TorchValue]
            let open: String, close: String
            switch v {
            case .list(let a): items = a; open = "["; close = "]"
            case .tuple(let a): items = a; open = "("; close = ")"
            default: return nil
            }
            guard items.count <= 16 else { return nil }
            var parts: [String] = []
            for i in items {
                switch i {
                case .none, .bool, .int, .float, .string: parts.append(i.kindDescription)
                default: return nil
                }
            }
            return open + parts.joined(separator: ", ") + (items.count == 1 && open == "(" ? "," : "") + close
        }
        var folded: [String] = []
        let kept = outline.filter { e in
            if folded.contains(where: { e.path.hasPrefix($0) }) { return false }
            if inline(e.value) != nil { folded.append(e.path + ".") }
            return true
        }
        s.contents = kept.map { e in
            var line = ContentLine(path: e.path, key: e.key, depth: e.depth, kind: "", dtype: nil, shape: nil, torchDType: nil)
            switch e.value {
            case .tensor(let t):
                line.kind = "tensor"
                line.dtype = t.dtype
                line.shape = t.shape
                if t.dtype == nil || t.scalarType.isComplex { line.torchDType = t.scalarType.name }
            case .dict(let d): line.kind = "dict (\(d.count))"
            case .list(let a): line.kind = inline(e.value) ?? "list (\(a.count))"
            case .tuple(let a): line.kind = inline(e.value) ?? "tuple (\(a.count))"
            case .object(let type, _): line.kind = type
            default: line.kind = e.value.kindDescription
            }
            return line
        }
        return s
    }

    /// The summary of a sharded safetensors index: the tensors of all shards.
    static func sharded(path: String) throws(DLKitError) -> ModelSummary {
        let index: ShardedSafeTensors
        do { index = try ShardedSafeTensors(path: path) } catch { throw .safetensors(error) }
        var s = ModelSummary(format: .safetensorsIndex)
        var tensors: [Value] = []
        for name in index.names {
            do {
                let t = try index.tensor(named: name)
                tensors.append(Value(name: name, dtype: t.dtype, dims: [Dim](t.shape)))
            } catch { throw .safetensors(error) }
        }
        s.tensors = tensors
        s.parameters = tensors.reduce(0) { $0 + ($1.dims?.reduce(1) { $0 * ($1.value ?? 0) } ?? 0) }
        return s
    }

    /// The nested listing as text lines, two spaces per level.
    var contentsText: String {
        guard !contents.isEmpty else { return "" }
        var s = "contents:\n"
        for c in contents {
            let pad = String(repeating: "  ", count: c.depth + 1)
            if c.kind == "tensor" {
                let d = c.torchDType ?? c.dtype?.rawValue ?? "?"
                s += "\(pad)\(c.key): \(d) [\((c.shape ?? []).map(String.init).joined(separator: ", "))]\n"
            } else {
                s += "\(pad)\(c.key): \(c.kind)\n"
            }
        }
        return s
    }

    var contentsJSON: JSON {
        .array(contents.map { c in
            var o: [(String, JSON)] = [("path", .string(c.path)), ("kind", .string(c.kind == "tensor" ? "tensor" : c.kind))]
            if let shape = c.shape { o.append(("shape", .array(shape.map { .int($0) }))) }
            if c.kind == "tensor" { o.append(("datatype", c.dtype.map { .string($0.inferenceProtocolName) } ?? .null)) }
            if let t = c.torchDType { o.append(("torch_dtype", .string(t))) }
            return .object(o)
        })
    }
}
