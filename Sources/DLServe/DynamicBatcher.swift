import DLGraph
import DLKit
import DLTensor

/// What must be equal for two inference requests to run as one batch: the model, the outputs
/// asked for, and every input's name, datatype and shape after the batch dimension.
public struct BatchSignature: Hashable, Sendable {
    struct Input: Hashable, Sendable {
        let name: String
        let dtype: DType
        let tail: [Int]
    }

    let model: Int
    let outputs: [String]
    let inputs: [Input]
}

/// Dynamic batching: requests queued back to back for the same model, differing only in the
/// batch dimension, are concatenated along dim 0, run once, and the outputs split by rows.
///
/// A model takes part only when its declared types say the batch dimension is free and shared:
/// every input has rank ≥ 1 with dim 0 the same symbol (`batch`), and every output has dim 0 that
/// same symbol. That is a necessary condition, not a proof that rows are independent (a model that
/// mixes rows, say a softmax over dim 0, has the same signature); `--max-batch` is the user saying
/// the models served treat rows independently, as with Triton's `max_batch_size`. After the run
/// every output must have exactly the summed rows, or the batch is run request by request.
public enum DynamicBatcher {
    /// The symbol of the batch dimension shared by every input and output of `model`, or nil when
    /// the model cannot be batched.
    public static func batchSymbol(of model: Model) -> String? {
        let inferred = (try? model.graph.inferTypes()) ?? [:]
        func dim0(_ v: ValueInfo) -> String? {
            guard let dims = (v.type ?? inferred[v.name])?.dims, let first = dims.first,
                  case .symbolic(let s) = first else { return nil }
            return s
        }
        guard let first = model.inputs.first, let symbol = dim0(first) else { return nil }
        for v in model.inputs + model.outputs where dim0(v) != symbol { return nil }
        return symbol
    }

    /// The signature of `inputs` for `model`, or nil when they cannot join a batch (a rank-0
    /// input, or inputs disagreeing on the number of rows). Also returns that number of rows.
    static func signature(model: Int, outputs: [String], inputs: [String: Tensor]) -> (BatchSignature, Int)? {
        var rows: Int? = nil
        var list: [BatchSignature.Input] = []
        for name in inputs.keys.sorted() {
            guard let t = inputs[name], let r = t.shape.first else { return nil }
            if let rows, rows != r { return nil }
            rows = r
            list.append(.init(name: name, dtype: t.dtype, tail: Array(t.shape.dropFirst())))
        }
        guard let rows else { return nil }
        return (BatchSignature(model: model, outputs: outputs, inputs: list), rows)
    }

    /// Concatenates the inputs of several requests (same signature) along dim 0.
    static func merge(_ requests: [[String: Tensor]]) -> [String: Tensor] {
        guard let first = requests.first else { return [:] }
        var merged: [String: Tensor] = [:]
        for (name, t0) in first {
            let parts = requests.compactMap { $0[name] }
            let rows = parts.reduce(0) { $0 + ($1.shape.first ?? 0) }
            var out = Tensor(zeros: t0.dtype, shape: [rows] + t0.shape.dropFirst())
            out.withUnsafeMutableBytes { dst in
                var offset = 0
                for p in parts {
                    p.withUnsafeBytes { src in
                        if let s = src.baseAddress, let d = dst.baseAddress, src.count > 0 {
                            (d + offset).copyMemory(from: s, byteCount: src.count)
                        }
                        offset += src.count
                    }
                }
            }
            merged[name] = out
        }
        return merged
    }

    /// Splits each output of a batched run into the rows of each request, or nil when an output
    /// does not have exactly `rows.reduce(0, +)` rows.
    static func split(_ outputs: [Tensor], rows: [Int]) -> [[Tensor]]? {
        let total = rows.reduce(0, +)
        var result = [[Tensor]](repeating: [], count: rows.count)
        for t in outputs {
            guard t.dtype != .string, t.shape.first == total else { return nil }
            let rowBytes = total == 0 ? 0 : t.byteCount / total
            let tail = Array(t.shape.dropFirst())
            var start = 0
            var failed = false
            t.withUnsafeBytes { all in
                for (i, r) in rows.enumerated() {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start * rowBytes..<(start + r) * rowBytes])
                    do throws(TensorError) {
                        result[i].append(try Tensor(dtype: t.dtype, shape: [r] + tail, bytes: slice))
                    } catch { failed = true }
                    start += r
                }
            }
            if failed { return nil }
        }
        return result
    }
}
