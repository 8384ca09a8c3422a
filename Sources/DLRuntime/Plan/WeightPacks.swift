#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLKernels
import DLTensor

/// Constant weights packed once for the AVX-512 kernels (see ``PackedMatrix``), shared by the
/// plans of one executor: a server that sees many input shapes keeps one packed copy per weight,
/// not one per plan.
///
/// A node gets packed weights when its weight input is a float32 constant of the plan and the
/// kernels are supported here:
/// - `Gemm`, `FusedGemm`: input 1 (`k × n`, or `n × k` with `transB`) as panels;
/// - `MatMul`, `FusedMatMul`: a rank-2 input 1 as panels;
/// - `Conv`, `FusedConv`, `FusedConvAdd` with strides 1 or 2: the weights of each group as row
///   blocks (1-D and 2-D);
/// - `LSTM`: W and R of each direction as panels (of Wᵀ and Rᵀ), for `FastLSTM`.
/// Everything else, and every node on a machine without AVX-512 (or with `RuntimeOptions.avx512`
/// off), runs as before (OpenBLAS). An executor with `RuntimeOptions.packing` off has none.
///
/// A Gemm/MatMul weight that is a view into a memory-mapped file (`Tensor.isMapped`: a Hugging
/// Face folder's safetensors, ONNX external data) is packed only for a plan whose product has at
/// least `mappedMinRows` rows (`RuntimeOptions.packMappedMinRows`, by default `Int.max`: never):
/// the panels would be a second copy of the file's bytes in anonymous memory. Left unpacked, the
/// product kernels read it in place with the packed panels' bits (`PackedGEMM.multiplyUnpacked`).
/// A weight packed once (by a plan of many rows) is shared with every later plan, as any other.
final class WeightPacks: @unchecked Sendable {
    private struct Entry {
        /// The constant packed (kept alive, so its storage identity stays unique).
        let source: Tensor
        let packed: [PackedMatrix]
    }

    private var entries: [String: Entry] = [:]
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// The fewest product rows for which a memory-mapped Gemm/MatMul weight is packed.
    let mappedMinRows: Int

    init(mappedMinRows: Int = RuntimeOptions.defaultPackMappedMinRows) {
        self.mappedMinRows = mappedMinRows
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// The packed weights for `node`, or nil when it takes none (empty: a mapped product weight
    /// left unpacked on purpose, which the kernel reads in place); `consts` are the plan's constants,
    /// `inputs` the plan's shape of each node input (nil where it is not known before a run),
    /// `outputType` the node's first output's type where the plan knows it (a strided
    /// convolution whose known rows are too short for the direct kernel packs nothing).
    func packed(for node: Node, consts: [String: Tensor], inputs: [[Int]?] = [], outputType: TensorType? = nil) -> [PackedMatrix]? {
        guard PackedMatrix.isSupported, let how = Self.plan(node, consts: consts, outputType: outputType) else { return nil }
        let key = "\(how.kind)|\(how.name)"
        pthread_mutex_lock(lock)
        if let e = entries[key], e.source.sharedStorage === how.tensor.sharedStorage {
            pthread_mutex_unlock(lock)
            return e.packed
        }
        pthread_mutex_unlock(lock)
        // No packs, but not nil: the kernel reads this weight in place where it would have read the packs.
        if how.product, how.tensor.isMapped, (Self.rows(node, inputs: inputs) ?? 0) < mappedMinRows { return [] }
        guard let packed = how.make() else { return nil }
        pthread_mutex_lock(lock)
        entries[key] = Entry(source: how.tensor, packed: packed)
        pthread_mutex_unlock(lock)
        return packed
    }

    private struct How {
        let kind: String
        let name: String
        let tensor: Tensor
        /// A Gemm/MatMul weight (B of a product whose rows are ``rows(_:inputs:)``).
        var product = false
        let make: () -> [PackedMatrix]?
    }

    /// The rows (m) of a Gemm or MatMul's product at the plan's shapes: A's rows, or for MatMul all
    /// of A's leading dims (its batch entries share one B); nil when A's shape is unknown.
    static func rows(_ node: Node, inputs: [[Int]?]) -> Int? {
        guard let first = inputs.first, let a = first, !a.isEmpty else { return nil }
        if node.opType == "Gemm" || node.opType == "FusedGemm" {
            guard a.count == 2, let t = try? node.int("transA", default: 0) else { return nil }
            return t != 0 ? a[1] : a[0]
        }
        return a.dropLast().reduce(1, *)
    }

    private static func plan(_ node: Node, consts: [String: Tensor], outputType: TensorType?) -> How? {
        let fused = node.domain == FusedOps.domain
        guard OpSet.isDefaultDomain(node) || fused, node.inputs.count >= 2,
              let w = consts[node.inputs[1]], w.dtype == .float32, w.elementCount > 0 else { return nil }
        let name = node.inputs[1]
        switch node.opType {
        case "Gemm", "FusedGemm":
            guard w.rank == 2, let t = try? node.int("transB", default: 0) else { return nil }
            let transB = t != 0
            let k = transB ? w.shape[1] : w.shape[0], n = transB ? w.shape[0] : w.shape[1]
            return How(kind: transB ? "panelsT" : "panels", name: name, tensor: w, product: true) {
                w.withUnsafeBufferPointer(as: Float.self) { p in
                    p.baseAddress.flatMap { PackedMatrix.panels($0, k: k, n: n, ldb: w.shape[1], transposed: transB) }.map { [$0] }
                }
            }
        case "MatMul", "FusedMatMul":
            guard w.rank == 2 else { return nil }
            let k = w.shape[0], n = w.shape[1]
            return How(kind: "panels", name: name, tensor: w, product: true) {
                w.withUnsafeBufferPointer(as: Float.self) { p in
                    p.baseAddress.flatMap { PackedMatrix.panels($0, k: k, n: n, ldb: n, transposed: false) }.map { [$0] }
                }
            }
        case "Conv", "FusedConv", "FusedConvAdd", "FusedConvPool":
            guard w.rank == 3 || w.rank == 4, let window = try? WindowAttributes(node: node), w.shape[0] % window.group == 0 else { return nil }
            let dims = outputType?.dims.flatMap { $0.count >= 3 ? $0 : nil }
            let batch = dims?[0].value, plane = dims.flatMap { Array($0.dropFirst(2)).concrete }.map { $0.reduce(1, *) }
            // Convolutions run as the transposed product Xᵀ·Wᵀ, their weight [outChannels, K] that
            // product's B: a pointwise one (stride 1, unpadded) on a plane the direct kernel's tiles
            // fill poorly (`Convolution.pointwiseByPixels`), and one with a kernel, at any stride,
            // whose output planes hold a few pixels (`Convolution.smallPlaneByPixels`).
            func byPixels(_ plane: Int) -> Bool {
                guard w.shape.dropFirst(2).allSatisfy({ $0 == 1 }) else {
                    return batch.map { Convolution.smallPlanePays(pixels: plane, batch: $0) } ?? false
                }
                return (window.strides ?? []).allSatisfy { $0 == 1 } && (window.pads ?? []).allSatisfy { $0 == 0 }
                    && Convolution.pointwiseByPixelsPays(pixels: plane)
            }
            if window.group == 1, node.opType != "FusedConvPool", let plane, byPixels(plane) {
                let k = w.elementCount / w.shape[0], cout = w.shape[0]
                return How(kind: "pixels", name: name, tensor: w) {
                    w.withUnsafeBufferPointer(as: Float.self) { p in
                        p.baseAddress.flatMap { PackedMatrix.panels($0, k: k, n: cout, ldb: k, transposed: true) }.map { [$0] }
                    }
                }
            }
            // Strides absent (all 1), 1 or 2 (`Convolution.directApplies`); attributes the node
            // refuses pack nothing.
            guard (window.strides ?? []).allSatisfy({ (1...2).contains($0) }) else { return nil }
            if (window.strides ?? []).contains(2), node.opType != "FusedConvPool", let dims = outputType?.dims,
               let outW = dims.last?.value {
                // The phase planes' rows: the output's width plus the kernel's overhang at stride 2.
                let kernelW = w.shape[w.rank - 1], strideW = window.strides?.last ?? 1
                let outH = dims.count == 4 ? dims[2].value ?? 1 : 1
                if !Convolution.stridedDirectPays(outH: outH, outW: outW, rowWidth: outW + (kernelW + strideW - 2) / strideW,
                                                  kernelH: w.rank == 4 ? w.shape[2] : 1, kernelW: kernelW) {
                    return nil
                }
            }
            let groups = window.group
            let m = w.shape[0] / groups, k = w.elementCount / w.shape[0]
            return How(kind: "rows\(groups)", name: name, tensor: w) {
                w.withUnsafeBufferPointer(as: Float.self) { p -> [PackedMatrix]? in
                    guard let base = p.baseAddress else { return nil }
                    var out: [PackedMatrix] = []
                    for g in 0..<groups {
                        guard let pm = PackedMatrix.rowBlocks(base + g * m * k, m: m, k: k) else { return nil }
                        out.append(pm)
                    }
                    return out
                }
            }
        case "LSTM":
            // Per direction: W (4H × input) and R (4H × H) as the transposed B of the input
            // projection and of each step's recurrent product.
            guard node.inputs.count >= 3, let r = consts[node.inputs[2]], r.dtype == .float32,
                  w.rank == 3, r.rank == 3, w.shape[0] == r.shape[0], w.shape[1] == r.shape[1], r.elementCount > 0 else { return nil }
            let dirs = w.shape[0], g = w.shape[1], input = w.shape[2], hidden = r.shape[2]
            return How(kind: "lstm|\(node.inputs[2])", name: name, tensor: w) {
                w.withUnsafeBufferPointer(as: Float.self) { pw -> [PackedMatrix]? in
                    r.withUnsafeBufferPointer(as: Float.self) { pr -> [PackedMatrix]? in
                        guard let wb = pw.baseAddress, let rb = pr.baseAddress else { return nil }
                        var out: [PackedMatrix] = []
                        for d in 0..<dirs {
                            guard let pw = PackedMatrix.panels(wb + d * g * input, k: input, n: g, ldb: input, transposed: true),
                                  let pr = PackedMatrix.panels(rb + d * g * hidden, k: hidden, n: g, ldb: hidden, transposed: true)
                            else { return nil }
                            out += [pw, pr]
                        }
                        return out
                    }
                }
            }
        default:
            return nil
        }
    }
}
