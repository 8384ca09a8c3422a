import DLAutograd
import DLGraph
import DLTensor

/// Inputs and targets, one sample per row of axis 0.
public struct Dataset: Sendable {
    public let inputs: Tensor
    public let targets: Tensor

    public init(inputs: Tensor, targets: Tensor) throws(TrainingError) {
        guard inputs.rank >= 1, targets.rank >= 1 else { throw .badData("inputs and targets need a sample axis") }
        guard inputs.shape[0] == targets.shape[0] else {
            throw .badData("inputs have \(inputs.shape[0]) samples but targets \(targets.shape[0])")
        }
        guard inputs.shape[0] > 0 else { throw .badData("there are no samples") }
        self.inputs = inputs
        self.targets = targets
    }

    public var count: Int { inputs.shape[0] }

    /// The rows `indices` of a tensor, stacked.
    static func rows(_ t: Tensor, _ indices: [Int]) -> Tensor {
        let rowBytes = t.byteCount / max(t.shape[0], 1)
        var out = Tensor(zeros: t.dtype, shape: [indices.count] + t.shape.dropFirst())
        t.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for (k, i) in indices.enumerated() { (d + k * rowBytes).copyMemory(from: s + i * rowBytes, byteCount: rowBytes) }
            }
        }
        return out
    }

    public func batch(_ indices: [Int]) -> (inputs: Tensor, targets: Tensor) {
        (Self.rows(inputs, indices), Self.rows(targets, indices))
    }
}

/// Where training stands: everything a resumed run needs to continue exactly.
public struct TrainingProgress: Sendable, Equatable {
    /// Optimizer steps taken.
    public var step: Int = 0
    /// Completed epochs.
    public var epoch: Int = 0
    /// Batches of the current epoch already trained on.
    public var batchInEpoch: Int = 0
    /// The generator of training-mode ops (dropout).
    public var rng: TrainingRNG
    /// The seed of the per-epoch shuffle; nil when batches come in data order.
    public var shuffleSeed: UInt64?

    public init(seed: UInt64, shuffle: Bool) {
        rng = TrainingRNG(seed: seed ^ 0x5EED_0F_D0_0A)
        shuffleSeed = shuffle ? seed : nil
    }
}

public struct TrainerOptions: Sendable {
    public var inputName: String
    /// The graph output the loss reads; the first output when nil.
    public var outputName: String?
    public var loss: Loss
    public var batchSize: Int
    public var dropLast: Bool = false
    /// Batches whose gradients one optimizer step sums (1: a step per batch).
    public var accumulate: Int = 1
    /// The largest 2-norm of all gradients together; nil: no clipping.
    public var clipGradNorm: Double?

    public init(inputName: String, outputName: String? = nil, loss: Loss, batchSize: Int, dropLast: Bool = false,
                accumulate: Int = 1, clipGradNorm: Double? = nil) {
        self.inputName = inputName
        self.outputName = outputName
        self.loss = loss
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.accumulate = accumulate
        self.clipGradNorm = clipGradNorm
    }
}

/// The training loop: batches in (seeded) order, forward and backward through the graph, the
/// optimizer's update, running statistics written back.
public struct Trainer: Sendable {
    public let differentiator: Differentiator
    public let options: TrainerOptions
    /// Current values of every initializer of the graph (parameters and buffers).
    public var weights: NamedTensors
    /// The parameters being trained, in graph order (all trainable ones minus the frozen).
    public let trainable: [String]
    public var optimizer: Optimizer
    public var progress: TrainingProgress
    /// Samples and the sum of (batch loss x batch samples) of the last step, for epoch means.
    public private(set) var lastStep: (samples: Int, weightedLoss: Double) = (0, 0)
    let outputName: String

    /// - Parameter frozen: name patterns (`encoder.*`) of parameters left unchanged.
    public init(graph: Graph, optimizer: Optimizer, options: TrainerOptions, progress: TrainingProgress,
                frozen: [String] = []) throws(TrainingError) {
        guard options.batchSize > 0 else { throw .badData("batch size must be positive, got \(options.batchSize)") }
        guard options.accumulate >= 1 else { throw .badSetting("accumulate must be at least 1, got \(options.accumulate)") }
        if let c = options.clipGradNorm, !(c > 0) { throw .badSetting("the gradient norm limit must be > 0, got \(c)") }
        let names = Differentiator.trainableParameters(of: graph).filter { n in !frozen.contains { Differentiator.glob($0, matches: n) } }
        for p in frozen where !Differentiator.trainableParameters(of: graph).contains(where: { Differentiator.glob(p, matches: $0) }) {
            throw .badState("--freeze '\(p)' matches no parameter")
        }
        guard graph.inputs.contains(where: { $0.name == options.inputName }) else {
            throw .badData("the model has no input '\(options.inputName)' (inputs: \(graph.inputs.map(\.name).joined(separator: ", ")))")
        }
        guard let out = options.outputName ?? graph.outputs.first?.name else { throw .badState("the model has no outputs") }
        guard graph.outputs.contains(where: { $0.name == out }) else {
            throw .badData("the model has no output '\(out)' (outputs: \(graph.outputs.map(\.name).joined(separator: ", ")))")
        }
        do { differentiator = try Differentiator(graph: graph, wrt: names) } catch { throw .autograd("\(error)") }
        self.options = options
        weights = graph.initializers
        trainable = names
        self.optimizer = optimizer
        self.progress = progress
        outputName = out
    }

    /// The sample order of an epoch: a seeded shuffle, or data order.
    public func order(epoch: Int, count: Int) -> [Int] {
        var idx = Array(0..<count)
        guard let seed = progress.shuffleSeed else { return idx }
        var rng = TrainingRNG(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                idx.swapAt(i, j)
            }
        }
        return idx
    }

    public func batchesPerEpoch(count: Int) -> Int {
        options.dropLast ? count / options.batchSize : (count + options.batchSize - 1) / options.batchSize
    }

    /// Checks the data against the model input (dtype and per-sample shape) before training.
    public func check(_ data: Dataset) throws(TrainingError) {
        guard let info = differentiator.graph.inputs.first(where: { $0.name == options.inputName }), let type = info.type else { return }
        guard data.inputs.dtype == type.dtype else {
            throw .badData("input '\(options.inputName)' is \(type.dtype) in the model, the data has \(data.inputs.dtype)")
        }
        if let dims = type.dims {
            let sample = Array(data.inputs.shape.dropFirst())
            let ok = dims.count == sample.count + 1 && zip(dims.dropFirst(), sample).allSatisfy { d, s in
                if case .fixed(let v) = d { return v == s }
                return true
            }
            guard ok else { throw .badData("input '\(options.inputName)' is \(type) in the model; data samples have shape \(sample)") }
        }
        guard batchesPerEpoch(count: data.count) > 0 else {
            throw .badData("\(data.count) samples make no full batch of \(options.batchSize) with --drop-last")
        }
        guard progress.batchInEpoch < batchesPerEpoch(count: data.count) else {
            throw .badData("the run stopped after batch \(progress.batchInEpoch) of an epoch, but these \(data.count) samples make only \(batchesPerEpoch(count: data.count)) batches; resume with the same data")
        }
    }

    /// Trains on the next batch. Returns the batch loss (before the update).
    /// - Throws: `.nonFiniteLoss` (nothing updated) when the loss is NaN or infinite.
    @discardableResult
    public mutating func step(_ data: Dataset) throws(TrainingError) -> Double {
        var none: MetricAccumulator?
        return try step(data, metrics: &none)
    }

    /// Takes the next optimizer step and adds each batch's output (before the update) to `metrics`.
    /// With `accumulate` K the step sums the gradients of the next K batches, each batch's loss
    /// divided by K (torch's `(loss / K).backward()`), never past the end of the epoch; with
    /// `clipGradNorm` the summed gradients are scaled as `torch.nn.utils.clip_grad_norm_` does.
    /// - Returns: the mean loss of the step's batches (before the update).
    @discardableResult
    public mutating func step(_ data: Dataset, metrics: inout MetricAccumulator?) throws(TrainingError) -> Double {
        let count = data.count
        let perEpoch = batchesPerEpoch(count: count)
        let batches = min(options.accumulate, perEpoch - progress.batchInEpoch)
        guard batches >= 1 else { throw .badData("batch \(progress.batchInEpoch) is past the \(perEpoch) batches of an epoch") }
        let order = order(epoch: progress.epoch, count: count)
        var rng = progress.rng
        var grads: [String: Tensor] = [:]
        var lossSum = 0.0, weightedSum = 0.0, samples = 0
        for j in 0..<batches {
            let lo = (progress.batchInEpoch + j) * options.batchSize
            guard lo < count else { throw .badData("batch \(progress.batchInEpoch + j) starts at sample \(lo), past the \(count) samples") }
            let indices = Array(order[lo..<min(lo + options.batchSize, count)])
            let (x, y) = data.batch(indices)
            let batchGrads: [String: Tensor]
            let updatedState: [String: Tensor]
            // The tape (and the feed) hold references to the weights; they end with this block so
            // the optimizer below updates each weight's buffer in place instead of copying it.
            do {
                var feed: [String: Tensor] = [options.inputName: x]
                for (name, t) in weights { feed[name] = t }
                let tape: Tape
                do { tape = try differentiator.forward(feed, training: true, rng: &rng) } catch { throw .autograd("\(error)") }
                guard let output = tape.value(outputName) else { throw .badState("output '\(outputName)' was not computed") }
                var (l, seed) = try options.loss.evaluate(output: output, target: y)
                try metrics?.add(output: output, target: y)
                guard l.isFinite else { throw .nonFiniteLoss(step: progress.step + 1, loss: l) }
                lossSum += l
                weightedSum += l * Double(indices.count)
                samples += indices.count
                if options.accumulate > 1 { Self.scale(&seed, by: 1 / Float(options.accumulate)) }
                do { batchGrads = try differentiator.backward(tape, seeds: [outputName: seed]) } catch { throw .autograd("\(error)") }
                updatedState = tape.updatedState
            }
            for (name, t) in updatedState { weights[name] = t }
            for name in trainable {
                guard let g = batchGrads[name] else { continue }
                if var sum = grads.removeValue(forKey: name) { Self.add(g, into: &sum); grads[name] = sum } else { grads[name] = g }
            }
        }
        for name in trainable {
            guard let g = grads[name] else { continue }
            let finite = g.withUnsafeBufferPointer(as: Float.self) { b in b.allSatisfy { $0.isFinite } }
            guard finite else { throw .nonFiniteGradient(step: progress.step + 1, parameter: name) }
        }
        if let maxNorm = options.clipGradNorm { Self.clip(&grads, names: trainable, maxNorm: maxNorm) }
        for name in trainable {
            guard let g = grads[name], var p = weights[name] else { continue }
            // A placeholder (same position) while `p` is updated, so `p` holds the only reference.
            weights[name] = Tensor(zeros: .float32, shape: [0])
            optimizer.update(name: name, param: &p, grad: g)
            weights[name] = p
        }
        progress.rng = rng
        progress.step += 1
        progress.batchInEpoch += batches
        if progress.batchInEpoch >= perEpoch {
            progress.batchInEpoch = 0
            progress.epoch += 1
        }
        lastStep = (samples, weightedSum)
        return lossSum / Double(batches)
    }

    /// Optimizer steps an epoch takes, and those left from batch `from` on.
    public func stepsPerEpoch(count: Int, from batch: Int = 0) -> Int {
        let left = max(batchesPerEpoch(count: count) - batch, 0)
        return (left + options.accumulate - 1) / options.accumulate
    }

    static func scale(_ t: inout Tensor, by f: Float) {
        t.withUnsafeMutableBytes { raw in
            let b = raw.bindMemory(to: Float.self)
            for i in b.indices { b[i] *= f }
        }
    }

    static func add(_ g: Tensor, into sum: inout Tensor) {
        g.withUnsafeBytes { src in
            sum.withUnsafeMutableBytes { dst in
                let a = src.bindMemory(to: Float.self), b = dst.bindMemory(to: Float.self)
                for i in 0..<min(a.count, b.count) { b[i] += a[i] }
            }
        }
    }

    /// torch's `clip_grad_norm_(max_norm, norm_type=2)`: the 2-norm of the per-parameter 2-norms,
    /// and every gradient times min(max_norm / (norm + 1e-6), 1), in float32.
    static func clip(_ grads: inout [String: Tensor], names: [String], maxNorm: Double) {
        var squares = 0.0
        for name in names {
            guard let g = grads[name] else { continue }
            let n = g.withUnsafeBufferPointer(as: Float.self) { b in Float(b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) }
            squares += Double(n) * Double(n)
        }
        let total = Float(squares.squareRoot())
        let coef = min(Float(maxNorm) / (total + 1e-6), 1)
        for name in names {
            guard var g = grads.removeValue(forKey: name) else { continue }
            scale(&g, by: coef)
            grads[name] = g
        }
    }

    /// The loss and metrics of the model on `data` in inference mode (dropout off, batch norm on
    /// its running statistics), in batches of the training batch size. The loss is the mean over
    /// samples (each batch's mean weighted by its size).
    public func evaluate(_ data: Dataset, metrics: [Metric]) throws(TrainingError) -> [String: Double] {
        var acc = MetricAccumulator(metrics, loss: options.loss)
        var total = 0.0
        var rng = progress.rng
        var lo = 0
        while lo < data.count {
            let hi = min(lo + options.batchSize, data.count)
            let (x, y) = data.batch(Array(lo..<hi))
            var feed: [String: Tensor] = [options.inputName: x]
            for (name, t) in weights { feed[name] = t }
            let tape: Tape
            do { tape = try differentiator.forward(feed, training: false, rng: &rng) } catch { throw .autograd("\(error)") }
            guard let output = tape.value(outputName) else { throw .badState("output '\(outputName)' was not computed") }
            total += try options.loss.evaluate(output: output, target: y).loss * Double(hi - lo)
            try acc.add(output: output, target: y)
            lo = hi
        }
        var out = try acc.values()
        out["loss"] = total / Double(data.count)
        return out
    }

    /// Splits off the last fraction `f` of the samples (before any shuffling) as the validation
    /// set, as Keras's `validation_split` does.
    public static func split(_ data: Dataset, validationFraction f: Double) throws(TrainingError) -> (train: Dataset, validation: Dataset) {
        guard f > 0, f < 1 else { throw .badSetting("the validation split must be in (0, 1), got \(f)") }
        let cut = Int(Double(data.count) * (1 - f))
        guard cut > 0, cut < data.count else {
            throw .badSetting("a validation split of \(f) leaves \(cut) of \(data.count) samples for training; both parts need samples")
        }
        let head = Array(0..<cut), tail = Array(cut..<data.count)
        let a = data.batch(head), b = data.batch(tail)
        return (try Dataset(inputs: a.inputs, targets: a.targets), try Dataset(inputs: b.inputs, targets: b.targets))
    }
}
