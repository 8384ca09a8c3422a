#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLKernels
import DLTensor
import Synchronization

/// float32 LSTM for the form exporters write (default activations, no clip, no peepholes, no
/// input_forget, layout 0, every sequence full length): the input projection of all time steps
/// is one GEMM per direction, each step one GEMM with the recurrent weights into the gate
/// buffer plus one pass over the gates. Anything else returns nil and runs in the general
/// kernel (`RecurrentKernels`, in Double).
enum FastLSTM {
    /// The fast variant of LSTM (see ``KernelRegistry``), in front of `RecurrentKernels`' general one.
    static var fast: [FastEntry] {
        [.init("LSTM", "float32 in the exporters' form: default activations, no clip, peepholes or input_forget, layout 0, full-length sequences", run)]
    }

    static func run(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor]? {
        let X = try ctx.input(0), W = try ctx.input(1), R = try ctx.input(2)
        for t in ctx.inputs.enumerated() where t.offset != 4 && t.element != nil && t.element?.dtype != .float32 { return nil }
        guard X.rank == 3, W.rank == 3, R.rank == 3 else { return nil }
        let node = ctx.node
        guard node.attribute("activations") == nil, node.attribute("clip") == nil,
              try ctx.int("input_forget", 0) == 0, try ctx.int("layout", 0) == 0 else { return nil }
        if let p = ctx.optionalInput(7), p.elementCount > 0 { return nil }
        let direction = try ctx.string("direction", "forward")
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { return nil }
        let dirs = direction == "bidirectional" ? 2 : 1
        let seq = X.shape[0], batch = X.shape[1], input = X.shape[2]
        let hidden = try ctx.int("hidden_size", W.shape[1] / 4)
        guard hidden > 0, W.shape == [dirs, 4 * hidden, input], R.shape == [dirs, 4 * hidden, hidden] else { return nil }
        if let lens = ctx.optionalInput(4) {
            guard lens.dtype.isInteger, lens.shape == [batch], lens.int64s().allSatisfy({ $0 == Int64(seq) }) else { return nil }
        }
        let B = ctx.optionalInput(3), h0 = ctx.optionalInput(5), c0 = ctx.optionalInput(6)
        guard B.map({ $0.shape == [dirs, 8 * hidden] }) ?? true,
              h0.map({ $0.shape == [dirs, batch, hidden] }) ?? true,
              c0.map({ $0.shape == [dirs, batch, hidden] }) ?? true else { return nil }

        let G = 4 * hidden
        // Packed weights (two per direction) from the plan, when it made them for these shapes.
        let packed = ctx.packed.flatMap { $0.count == 2 * dirs ? $0 : nil }
        guard seq > 0, batch > 0 else {
            return [Tensor(zeros: .float32, shape: [seq, dirs, batch, hidden]), Tensor(zeros: .float32, shape: [dirs, batch, hidden]),
                    Tensor(zeros: .float32, shape: [dirs, batch, hidden])]
        }
        // Every element of Y is written by some step; Y_h and Y_c are set from the initial state
        // (or zeros) below, so recycled buffers do.
        var y = ctx.makeOutput(.float32, shape: [seq, dirs, batch, hidden])
        var yh = ctx.makeOutput(.float32, shape: [dirs, batch, hidden])
        var yc = ctx.makeOutput(.float32, shape: [dirs, batch, hidden])
        // The gate rows of every step (2 MB at batch 32): from the scratch pool, not a fresh
        // allocation whose pages fault in on every run.
        let gateBuffer = ConvolutionScratch.shared.take(seq * batch * G)
        defer { ConvolutionScratch.shared.give(gateBuffer) }
        let gates = gateBuffer.pointer
        let bias = UnsafeMutablePointer<Float>.allocate(capacity: G)
        defer { bias.deallocate() }

        // The inputs' pointers are valid only inside their closures: everything runs in there.
        let ran = withFloatPointers([X, W, R, B, h0, c0][...]) { p -> Bool in
        guard let xp = p[0], let wp = p[1], let rp = p[2] else { return false }
        let bp = p[3], h0p = p[4], c0p = p[5]
        y.withUnsafeMutableBufferPointer(as: Float.self) { yb in
        yh.withUnsafeMutableBufferPointer(as: Float.self) { hb in
        yc.withUnsafeMutableBufferPointer(as: Float.self) { cb in
            guard let yo = yb.baseAddress, let H = hb.baseAddress, let C = cb.baseAddress else { return }
            for d in 0..<dirs {
                let Wd = wp + d * G * input, Rd = rp + d * G * hidden
                for j in 0..<G { bias[j] = bp.map { $0[d * 8 * hidden + j] + $0[d * 8 * hidden + G + j] } ?? 0 }
                // Wᵀ and Rᵀ of this direction packed by the plan (see WeightPacks), when they fit.
                let packedW = packed.flatMap { $0[2 * d].rows == input && $0[2 * d].columns == G ? $0[2 * d] : nil }
                let packedR = packed.flatMap { $0[2 * d + 1].rows == hidden && $0[2 * d + 1].columns == G ? $0[2 * d + 1] : nil }
                // gates[t, b, :] = X[t, b, :] · Wdᵀ + bias, all steps at once.
                if let packedW, PackedGEMM.prefers(rows: seq * batch),
                   PackedGEMM.multiply(m: seq * batch, a: xp, lda: input, transA: false, b: packedW, c: gates, ldc: G,
                                       epilogue: GEMMEpilogue(columnBias: UnsafePointer(bias))) {
                } else {
                    for r in 0..<(seq * batch) { (gates + r * G).update(from: bias, count: G) }
                    GEMM.sgemmSplittingColumns(transA: false, transB: true, m: seq * batch, n: G, k: input, alpha: 1,
                               a: xp, lda: input, b: Wd, ldb: input, beta: 1, c: gates, ldc: G)
                }
                let h = H + d * batch * hidden, c = C + d * batch * hidden
                if let h0p { h.update(from: h0p + d * batch * hidden, count: batch * hidden) } else { h.update(repeating: 0, count: batch * hidden) }
                if let c0p { c.update(from: c0p + d * batch * hidden, count: batch * hidden) } else { c.update(repeating: 0, count: batch * hidden) }
                let reverse = direction == "reverse" || (direction == "bidirectional" && d == 1)
                // Batch rows are independent through time: each worker runs the whole sequence
                // for its rows (its slice of h·Rᵀ, then the fused gate math), with no barrier
                // between steps. One GEMM per step and worker; nothing allocated per step.
                let recur: (Int, Int) -> Void = { b0, b1 in
                    let rows = b1 - b0
                    for step in 0..<seq {
                        let t = reverse ? seq - 1 - step : step
                        let g = gates + (t * batch + b0) * G
                        if let packedR, PackedGEMM.multiply(m: rows, a: h + b0 * hidden, lda: hidden, transA: false, b: packedR,
                                                            c: g, ldc: G, epilogue: GEMMEpilogue(accumulate: true)) {
                        } else {
                            GEMM.sgemm(transA: false, transB: true, m: rows, n: G, k: hidden, alpha: 1,
                                       a: h + b0 * hidden, lda: hidden, b: Rd, ldb: hidden, beta: 1, c: g, ldc: G)
                        }
                        Recurrent.lstmCellFloat(gates: g, gateStride: G, c: c + b0 * hidden, h: h + b0 * hidden,
                                                out: yo + ((t * dirs + d) * batch + b0) * hidden, outStride: hidden,
                                                rows: rows, hidden: hidden)
                    }
                }
                // Split only while OpenBLAS is single-threaded (the default, see ComputeThreads);
                // the row cut depends on the worker count alone, so results do not depend on
                // whether another thread holds the pool.
                let workers = GEMM.threadCount == 1 ? min(ParallelFor.workerCount, batch / minRowsPerWorker) : 1
                let slices = GEMM.threadCount == 1 && ParallelFor.canSplit ? min(ParallelFor.workerCount, hidden / 32) : 1
                if workers <= 1, slices > 1, hidden % 32 == 0, let packedR {
                    recurBySlices(slices: slices, seq: seq, batch: batch, hidden: hidden, reverse: reverse, gates: gates, packedR: packedR, r: Rd,
                                  h: h, c: c, y: yo + d * batch * hidden, yStepStride: dirs * batch * hidden)
                } else if workers > 1 {
                    ParallelFor.run(workers, cost: 1 << 20) { lo, hi in
                        for w in lo..<hi {
                            let b0 = w * batch / workers, b1 = (w + 1) * batch / workers
                            if b0 < b1 { recur(b0, b1) }
                        }
                    }
                } else {
                    recur(0, batch)
                }
            }
        }
        }
        }
        return true
        }
        return ran ? [y, yh, yc] : nil
    }

    /// Fewest batch rows worth a worker of their own (below this the per-step GEMM is too thin).
    static let minRowsPerWorker = 4

    /// One direction's recurrence for a batch too small to split by rows (batch 1 at serving
    /// time), on several workers: the hidden units are cut into `slices` slices, whole panels
    /// of each gate's columns. Step t's slice s is ticket t·slices + s; workers take tickets in
    /// order from one counter, and a ticket waits until every ticket of the step before is
    /// done (its product reads the whole h of that step). A worker waits only on tickets that
    /// others have taken and are computing, so when the pool is busy and one thread runs every
    /// chunk, it simply takes every ticket: no barrier that could wait for a worker that never
    /// comes. h lives in two buffers, one read and one written per step. Each cell and each gate
    /// column is computed by the same kernels as on one worker, so the bits do not depend on the
    /// split. `r` is R as stored (`4·hidden × hidden`), for OpenBLAS when the packed kernel cannot
    /// run. `h` and `c` hold the initial state and get the final one; `y` is step 0's output
    /// rows, `yStepStride` apart per step.
    static func recurBySlices(slices: Int, seq: Int, batch: Int, hidden: Int, reverse: Bool,
                              gates: UnsafeMutablePointer<Float>, packedR: PackedMatrix, r: UnsafePointer<Float>,
                              h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>,
                              y: UnsafeMutablePointer<Float>, yStepStride: Int) {
        let G = 4 * hidden, panels = hidden / 32
        let states = UnsafeMutablePointer<Float>.allocate(capacity: 2 * batch * hidden)
        defer { states.deallocate() }
        states.update(from: h, count: batch * hidden)
        let taken = Atomic<Int>(0), done = Atomic<Int>(0)
        ParallelFor.split(slices, parts: slices) { _, _ in
            while true {
                let ticket = taken.wrappingAdd(1, ordering: .relaxed).oldValue
                guard ticket < seq * slices else { return }
                let step = ticket / slices, s = ticket % slices
                var spins = 0
                while done.load(ordering: .acquiring) < step * slices {
                    spins += 1
                    if spins % 1024 == 0 { sched_yield() }
                }
                let t = reverse ? seq - 1 - step : step
                let u0 = s * panels / slices * 32, u1 = (s + 1) * panels / slices * 32
                let read = states + (step % 2) * batch * hidden, write = states + ((step + 1) % 2) * batch * hidden
                let g = gates + t * batch * G
                for gate in 0..<4 {
                    let j0 = gate * hidden + u0
                    if !PackedGEMM.multiply(m: batch, a: read, lda: hidden, transA: false, b: packedR, columns: j0..<(gate * hidden + u1),
                                            c: g, ldc: G, epilogue: GEMMEpilogue(accumulate: true)) {
                        // No scratch for the packed kernel: OpenBLAS on R's rows of these columns.
                        GEMM.sgemm(transA: false, transB: true, m: batch, n: u1 - u0, k: hidden, alpha: 1, a: read, lda: hidden,
                                   b: r + j0 * hidden, ldb: hidden, beta: 1, c: g + j0, ldc: G)
                    }
                }
                Recurrent.lstmCellFloat(gates: g + u0, gateStride: G, c: c + u0, h: write + u0,
                                        out: y + t * yStepStride + u0, outStride: hidden, rows: batch, hidden: hidden, units: u1 - u0)
                done.wrappingAdd(1, ordering: .releasing)
            }
        }
        h.update(from: states + (seq % 2) * batch * hidden, count: batch * hidden)
    }

    /// Calls `body` with the float32 base address of each tensor (nil for a missing or empty
    /// one), every pointer valid for the whole call.
    static func withFloatPointers<R>(_ tensors: ArraySlice<Tensor?>, _ done: [UnsafePointer<Float>?] = [],
                                     _ body: ([UnsafePointer<Float>?]) -> R) -> R {
        guard let first = tensors.first else { return body(done) }
        guard let t = first else { return withFloatPointers(tensors.dropFirst(), done + [nil], body) }
        return t.withUnsafeBufferPointer(as: Float.self) { withFloatPointers(tensors.dropFirst(), done + [$0.baseAddress], body) }
    }

}
