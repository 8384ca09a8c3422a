import DLAutograd
import DLGraph
import DLTensor
import Foundation

/// Samples produced on demand instead of held as one tensor: an image folder decodes only the
/// images of the batch asked for, so data larger than memory trains in bounded memory.
public protocol SampleSource: Sendable {
    var count: Int { get }
    var dtype: DType { get }
    /// The shape of one sample (without the sample axis).
    var sampleShape: [Int] { get }
    /// The samples `indices`, stacked along a new axis 0.
    func rows(_ indices: [Int]) throws(TrainingError) -> Tensor
    /// The samples `range` as a source of their own.
    func subset(_ range: Range<Int>) -> any SampleSource
}

/// Inputs and targets, one sample per row of axis 0. A model with several outputs reads
/// further targets by name (`namedTargets`), one per loss; a model with several inputs reads
/// further inputs by name (`namedInputs`, e.g. a text model's `attention_mask` beside its
/// `input_ids`). Inputs are a tensor (in memory or a view of a memory-mapped file) or a
/// `SampleSource` that produces each batch's samples.
public struct Dataset: Sendable {
    enum Inputs: Sendable {
        case tensor(Tensor)
        case source(any SampleSource)
    }

    let storedInputs: Inputs
    public let targets: Tensor
    /// Targets of further outputs, by the name a `OutputLoss.target` gives.
    public let namedTargets: [String: Tensor]
    /// Further inputs of the model, by input name, fed beside the first.
    public let namedInputs: [String: Tensor]
    /// Tells datasets apart for the batch prefetcher (copies of a dataset share it).
    let identity = DatasetIdentity()

    public init(inputs: Tensor, targets: Tensor, namedTargets: [String: Tensor] = [:], namedInputs: [String: Tensor] = [:]) throws(TrainingError) {
        guard inputs.rank >= 1 else { throw .badData("inputs and targets need a sample axis") }
        try self.init(.tensor(inputs), count: inputs.shape[0], targets: targets, namedTargets: namedTargets, namedInputs: namedInputs)
    }

    /// Inputs produced batch by batch by `source`.
    public init(source: any SampleSource, targets: Tensor, namedTargets: [String: Tensor] = [:]) throws(TrainingError) {
        try self.init(.source(source), count: source.count, targets: targets, namedTargets: namedTargets)
    }

    init(_ inputs: Inputs, count: Int, targets: Tensor, namedTargets: [String: Tensor], namedInputs: [String: Tensor] = [:]) throws(TrainingError) {
        guard targets.rank >= 1 else { throw .badData("inputs and targets need a sample axis") }
        guard count == targets.shape[0] else {
            throw .badData("inputs have \(count) samples but targets \(targets.shape[0])")
        }
        for (name, t) in namedTargets.sorted(by: { $0.key < $1.key }) where t.rank < 1 || t.shape[0] != count {
            throw .badData("inputs have \(count) samples but target '\(name)' has shape \(t.shape)")
        }
        for (name, t) in namedInputs.sorted(by: { $0.key < $1.key }) where t.rank < 1 || t.shape[0] != count {
            throw .badData("inputs have \(count) samples but input '\(name)' has shape \(t.shape)")
        }
        guard count > 0 else { throw .badData("there are no samples") }
        self.storedInputs = inputs
        self.targets = targets
        self.namedTargets = namedTargets
        self.namedInputs = namedInputs
    }

    public var count: Int { targets.shape[0] }

    /// Whether the inputs are produced batch by batch (`SampleSource`) rather than held.
    public var isStreamed: Bool { if case .source = storedInputs { true } else { false } }
    /// The source a streamed dataset's inputs come from.
    public var source: (any SampleSource)? { if case .source(let s) = storedInputs { s } else { nil } }

    /// All inputs as one tensor. A streamed dataset produces every sample for this (an image
    /// folder decodes all its images); training reads batches and never asks for it.
    public var inputs: Tensor {
        get throws(TrainingError) {
            switch storedInputs {
            case .tensor(let t): t
            case .source(let s): try s.rows(Array(0..<s.count))
            }
        }
    }

    public var inputDType: DType {
        switch storedInputs {
        case .tensor(let t): t.dtype
        case .source(let s): s.dtype
        }
    }

    /// The shape of one input sample.
    public var inputSampleShape: [Int] {
        switch storedInputs {
        case .tensor(let t): Array(t.shape.dropFirst())
        case .source(let s): s.sampleShape
        }
    }

    /// The target named `name`; nil names `targets`.
    public func target(_ name: String?) -> Tensor? {
        guard let name else { return targets }
        return namedTargets[name]
    }

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

    /// The rows `indices` of the inputs and of every target.
    /// - Throws: when a streamed sample cannot be produced (an image that no longer decodes).
    public func batch(_ indices: [Int]) throws(TrainingError) -> Batch {
        let x: Tensor
        switch storedInputs {
        case .tensor(let t): x = Self.rows(t, indices)
        case .source(let s): x = try s.rows(indices)
        }
        return Batch(inputs: x, targets: Self.rows(targets, indices),
                     namedTargets: namedTargets.mapValues { Self.rows($0, indices) },
                     namedInputs: namedInputs.mapValues { Self.rows($0, indices) }, count: indices.count)
    }

    /// The rows `range` of a tensor: a view of the same file when `t` is memory-mapped, else a copy.
    static func rows(_ t: Tensor, _ range: Range<Int>) -> Tensor {
        let rowBytes = t.byteCount / max(t.shape[0], 1)
        if let (file, offset) = t.mappedSource,
           let view = try? Tensor(dtype: t.dtype, shape: [range.count] + t.shape.dropFirst(), viewing: file, offset: offset + range.lowerBound * rowBytes) {
            return view
        }
        return rows(t, Array(range))
    }

    /// The samples `range` as a dataset of their own: views of a memory-mapped file stay views
    /// (a validation split of data larger than memory copies nothing), a streamed source stays
    /// streamed, others are copied.
    public func subset(_ range: Range<Int>) throws(TrainingError) -> Dataset {
        let (inputs, count): (Inputs, Int) = switch storedInputs {
        case .tensor(let t): (.tensor(Self.rows(t, range)), range.count)
        case .source(let s): { let sub = s.subset(range); return (.source(sub), sub.count) }()
        }
        return try Dataset(inputs, count: count, targets: Self.rows(targets, range),
                           namedTargets: namedTargets.mapValues { Self.rows($0, range) },
                           namedInputs: namedInputs.mapValues { Self.rows($0, range) })
    }
}

/// One batch: the inputs and targets of its samples.
public struct Batch: Sendable {
    public let inputs: Tensor
    public let targets: Tensor
    public let namedTargets: [String: Tensor]
    public let namedInputs: [String: Tensor]
    public let count: Int

    public func target(_ name: String?) -> Tensor? {
        guard let name else { return targets }
        return namedTargets[name]
    }
}

final class DatasetIdentity: Sendable {}

/// A loss on one output of a model with several (Keras's `compile(loss={...}, loss_weights={...})`):
/// the training loss is the sum of `weight x loss` over the outputs.
public struct OutputLoss: Sendable, Equatable {
    public var output: String
    /// The dataset target the loss reads (`Dataset.namedTargets`); nil reads `Dataset.targets`.
    public var target: String?
    public var loss: Loss
    public var weight: Double

    public init(output: String, target: String?, loss: Loss, weight: Double = 1) {
        self.output = output
        self.target = target
        self.loss = loss
        self.weight = weight
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
    /// Several outputs, each with its loss and weight; when empty, `loss` on `outputName`
    /// against `Dataset.targets`. Metrics read the first.
    public var outputLosses: [OutputLoss] = []
    /// tf.data's `shuffle(buffer_size)`: samples are drawn at random from a buffer of this many
    /// that refills in data order, so reads stay near each other in a memory-mapped file. nil:
    /// a full shuffle of the epoch.
    public var shuffleBuffer: Int?
    /// Gather the next batch on a background thread while a step runs.
    public var prefetch: Bool = true

    public init(inputName: String, outputName: String? = nil, loss: Loss, batchSize: Int, dropLast: Bool = false,
                accumulate: Int = 1, clipGradNorm: Double? = nil, outputLosses: [OutputLoss] = [],
                shuffleBuffer: Int? = nil, prefetch: Bool = true) {
        self.inputName = inputName
        self.outputName = outputName
        self.loss = loss
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.accumulate = accumulate
        self.clipGradNorm = clipGradNorm
        self.outputLosses = outputLosses
        self.shuffleBuffer = shuffleBuffer
        self.prefetch = prefetch
    }
}

/// The training loop: batches in (seeded) order, forward and backward through the graph, the
/// optimizer's update, running statistics written back.
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
    /// Samples and the sum of (batch loss x batch samples) of the last step, for epoch means;
    /// with several output losses, `headLosses` holds each one's sum (unweighted) in `heads` order.
    public private(set) var lastStep: (samples: Int, weightedLoss: Double, headLosses: [Double]) = (0, 0, [])
    /// The losses the trainer computes: `options.outputLosses`, or `options.loss` on one output.
    public let heads: [OutputLoss]
    /// The sample order of the epoch being trained, computed once per epoch.
    private var cachedOrder: (epoch: Int, count: Int, order: [Int])?
    private let prefetcher = BatchPrefetcher()

    /// - Parameter frozen: name patterns (`encoder.*`) of parameters left unchanged.
    public init(graph: Graph, optimizer: Optimizer, options: TrainerOptions, progress: TrainingProgress,
                frozen: [String] = []) throws(TrainingError) {
        guard options.batchSize > 0 else { throw .badData("batch size must be positive, got \(options.batchSize)") }
        guard options.accumulate >= 1 else { throw .badSetting("accumulate must be at least 1, got \(options.accumulate)") }
        if let c = options.clipGradNorm, !(c > 0) { throw .badSetting("the gradient norm limit must be > 0, got \(c)") }
        if let b = options.shuffleBuffer, b < 1 { throw .badSetting("the shuffle buffer must hold at least 1 sample, got \(b)") }
        let names = Differentiator.trainableParameters(of: graph).filter { n in !frozen.contains { Differentiator.glob($0, matches: n) } }
        for p in frozen where !Differentiator.trainableParameters(of: graph).contains(where: { Differentiator.glob(p, matches: $0) }) {
            throw .badState("the frozen pattern '\(p)' matches no parameter")
        }
        guard graph.inputs.contains(where: { $0.name == options.inputName }) else {
            throw .badData("the model has no input '\(options.inputName)' (inputs: \(graph.inputs.map(\.name).joined(separator: ", ")))")
        }
        let outputs = graph.outputs.map(\.name)
        if options.outputLosses.isEmpty {
            guard let out = options.outputName ?? outputs.first else { throw .badState("the model has no outputs") }
            guard outputs.contains(out) else {
                throw .badData("the model has no output '\(out)' (outputs: \(outputs.joined(separator: ", ")))")
            }
            heads = [OutputLoss(output: out, target: nil, loss: options.loss, weight: 1)]
        } else {
            for h in options.outputLosses {
                guard outputs.contains(h.output) else {
                    throw .badData("a loss names output '\(h.output)', which the model does not have (outputs: \(outputs.joined(separator: ", ")))")
                }
                guard h.weight.isFinite, h.weight >= 0 else { throw .badSetting("the loss weight of output '\(h.output)' must be >= 0, got \(h.weight)") }
            }
            heads = options.outputLosses
        }
        do { differentiator = try Differentiator(graph: graph, wrt: names) } catch { throw .autograd(error) }
        self.options = options
        weights = graph.initializers
        trainable = names
        self.optimizer = optimizer
        self.progress = progress
    }

    /// The sample order of an epoch: a seeded shuffle (of the whole epoch, or through a shuffle
    /// buffer), or data order.
    public func order(epoch: Int, count: Int) -> [Int] {
        Self.order(seed: progress.shuffleSeed, buffer: options.shuffleBuffer, epoch: epoch, count: count)
    }

    static func order(seed: UInt64?, buffer: Int?, epoch: Int, count: Int) -> [Int] {
        guard let seed else { return Array(0..<count) }
        var rng = TrainingRNG(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        if let buffer { return bufferedShuffle(count: count, buffer: buffer, rng: &rng) }
        var idx = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                idx.swapAt(i, j)
            }
        }
        return idx
    }

    /// tf.data's shuffle buffer: fill a buffer with the first `buffer` samples; each output is a
    /// uniformly drawn buffer slot, refilled with the next sample in data order (once the data
    /// runs out, the slot is closed by moving the buffer's last sample into it). Output k is
    /// therefore always one of samples 0 ..< k + buffer.
    static func bufferedShuffle(count: Int, buffer size: Int, rng: inout TrainingRNG) -> [Int] {
        var buffer = Array(0..<min(size, count))
        var next = buffer.count
        var out: [Int] = []
        out.reserveCapacity(count)
        while !buffer.isEmpty {
            let i = Int(rng.next() % UInt64(buffer.count))
            out.append(buffer[i])
            if next < count {
                buffer[i] = next
                next += 1
            } else {
                buffer[i] = buffer[buffer.count - 1]
                buffer.removeLast()
            }
        }
        return out
    }

    public func batchesPerEpoch(count: Int) -> Int {
        options.dropLast ? count / options.batchSize : (count + options.batchSize - 1) / options.batchSize
    }

    /// Checks the data against the model input (dtype and per-sample shape) and the losses'
    /// targets before training; training data (not `validation`) also against where the epoch stands.
    public func check(_ data: Dataset, validation: Bool = false) throws(TrainingError) {
        for h in heads where data.target(h.target) == nil {
            throw .badData("the loss of output '\(h.output)' reads target '\(h.target ?? "")', which the data does not have (targets: \(data.namedTargets.keys.sorted().joined(separator: ", ")))")
        }
        for input in differentiator.graph.inputs where input.name != options.inputName && !differentiator.graph.initializers.contains(input.name) {
            guard let t = data.namedInputs[input.name] else {
                throw .badData("the model's input '\(input.name)' is not in the data (each input beside '\(options.inputName)' is fed from the data array of its name)")
            }
            if let dtype = input.type?.dtype, dtype != t.dtype { throw .badData("input '\(input.name)' is \(dtype) in the model, the data has \(t.dtype)") }
        }
        guard let info = differentiator.graph.inputs.first(where: { $0.name == options.inputName }), let type = info.type else { return }
        guard data.inputDType == type.dtype else {
            throw .badData("input '\(options.inputName)' is \(type.dtype) in the model, the data has \(data.inputDType)")
        }
        if let dims = type.dims {
            let sample = data.inputSampleShape
            let ok = dims.count == sample.count + 1 && zip(dims.dropFirst(), sample).allSatisfy { d, s in
                if case .fixed(let v) = d { return v == s }
                return true
            }
            guard ok else { throw .badData("input '\(options.inputName)' is \(type) in the model; data samples have shape \(sample)") }
        }
        if validation { return }
        guard batchesPerEpoch(count: data.count) > 0 else {
            throw .badData("\(data.count) samples make no full batch of \(options.batchSize) when the last partial batch is dropped")
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

    /// The batch `batch` of epoch `epoch`, gathered on a background thread when it was prefetched;
    /// then the batch after it is started in the background (`options.prefetch`).
    mutating func batch(_ data: Dataset, epoch: Int, batch: Int) throws(TrainingError) -> Batch {
        if cachedOrder?.epoch != epoch || cachedOrder?.count != data.count {
            cachedOrder = (epoch, data.count, order(epoch: epoch, count: data.count))
        }
        let order = cachedOrder?.order ?? []
        let size = options.batchSize, count = data.count
        let key = BatchPrefetcher.Key(data: ObjectIdentifier(data.identity), seed: progress.shuffleSeed, epoch: epoch, batch: batch)
        let b = prefetcher.take(key) {
            let lo = batch * size
            return Result { () throws(TrainingError) in try data.batch(Array(order[lo..<min(lo + size, count)])) }
        }
        guard options.prefetch else { return try b.get() }
        let perEpoch = batchesPerEpoch(count: count)
        let (ne, nb) = batch + 1 < perEpoch ? (epoch, batch + 1) : (epoch + 1, 0)
        let seed = progress.shuffleSeed, buffer = options.shuffleBuffer
        prefetcher.start(BatchPrefetcher.Key(data: key.data, seed: seed, epoch: ne, batch: nb)) {
            let o = ne == epoch ? order : Self.order(seed: seed, buffer: buffer, epoch: ne, count: count)
            let lo = nb * size
            return Result { () throws(TrainingError) in try data.batch(Array(o[lo..<min(lo + size, count)])) }
        }
        return try b.get()
    }

    /// Takes the next optimizer step and adds each batch's output (before the update) to `metrics`.
    /// With `accumulate` K the step sums the gradients of the next K batches, each batch's loss
    /// divided by K (torch's `(loss / K).backward()`), never past the end of the epoch; with
    /// `clipGradNorm` the summed gradients are scaled as `torch.nn.utils.clip_grad_norm_` does.
    /// With several output losses, the loss is the sum of weight x loss (Keras's total loss,
    /// torch's `sum(w * l).backward()`), each output seeded with its weighted gradient.
    /// - Returns: the mean loss of the step's batches (before the update).
    /// - Throws: a `TrainingError` (a NaN or infinite loss or gradient among them) before anything
    ///   changes: weights, running statistics, optimizer state and progress stay as they were
    ///   (`metrics` may hold the outputs of the batches before the failure).
    @discardableResult
    public mutating func step(_ data: Dataset, metrics: inout MetricAccumulator?) throws(TrainingError) -> Double {
        let count = data.count
        let perEpoch = batchesPerEpoch(count: count)
        let batches = min(options.accumulate, perEpoch - progress.batchInEpoch)
        guard batches >= 1 else { throw .badData("batch \(progress.batchInEpoch) is past the \(perEpoch) batches of an epoch") }
        var rng = progress.rng
        var grads: [String: Tensor] = [:]
        // Running statistics the batches update (BatchNormalization's), kept aside until the
        // step is known to be finite: a step that throws leaves the trainer as it was, so a
        // caller needs no copy of it to roll back (which made every update copy its weights).
        var staged: [String: Tensor] = [:]
        var lossSum = 0.0, weightedSum = 0.0, samples = 0
        var headSums = [Double](repeating: 0, count: heads.count)
        for j in 0..<batches {
            let lo = (progress.batchInEpoch + j) * options.batchSize
            guard lo < count else { throw .badData("batch \(progress.batchInEpoch + j) starts at sample \(lo), past the \(count) samples") }
            let b = try batch(data, epoch: progress.epoch, batch: progress.batchInEpoch + j)
            let batchGrads: [String: Tensor]
            let updatedState: [String: Tensor]
            // The tape (and the feed) hold references to the weights; they end with this block so
            // the optimizer below updates each weight's buffer in place instead of copying it.
            do {
                var feed = b.namedInputs
                feed[options.inputName] = b.inputs
                for (name, t) in weights { feed[name] = staged[name] ?? t }
                let tape: Tape
                do { tape = try differentiator.forward(feed, training: true, rng: &rng) } catch { throw .autograd(error) }
                var seeds: [String: Tensor] = [:]
                var l = 0.0
                for (k, h) in heads.enumerated() {
                    guard let output = tape.value(h.output) else { throw .badState("output '\(h.output)' was not computed") }
                    guard let y = b.target(h.target) else { throw .badData("the data has no target '\(h.target ?? "")'") }
                    var (hl, seed) = try h.loss.evaluate(output: output, target: y)
                    if k == 0 { try metrics?.add(output: output, target: y) }
                    headSums[k] += hl * Double(b.count)
                    l += h.weight * hl
                    if options.accumulate > 1 { Self.scale(&seed, by: 1 / Float(options.accumulate)) }
                    if h.weight != 1 { Self.scale(&seed, by: Float(h.weight)) }
                    if var s = seeds.removeValue(forKey: h.output) { Self.add(seed, into: &s); seeds[h.output] = s } else { seeds[h.output] = seed }
                }
                guard l.isFinite else { throw .nonFiniteLoss(step: progress.step + 1, loss: l) }
                lossSum += l
                weightedSum += l * Double(b.count)
                samples += b.count
                do { batchGrads = try differentiator.backward(tape, seeds: seeds) } catch { throw .autograd(error) }
                updatedState = tape.updatedState
            }
            for (name, t) in updatedState { staged[name] = t }
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
        for (name, t) in staged { weights[name] = t }
        staged = [:]
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
        lastStep = (samples, weightedSum, headSums)
        return lossSum / Double(batches)
    }

    /// Optimizer steps an epoch takes, and those left from batch `from` on.
    public func stepsPerEpoch(count: Int, from batch: Int = 0) -> Int {
        let left = max(batchesPerEpoch(count: count) - batch, 0)
        return (left + options.accumulate - 1) / options.accumulate
    }

    /// The names of the per-output losses in the logs (Keras's `<output>_loss`); empty with one loss.
    public var headLossNames: [String] { heads.count > 1 ? heads.map { "\($0.output)_loss" } : [] }

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

    /// The loss and metrics of the model on `data` in inference mode (dropout off, batch norm on
    /// its running statistics), in batches of the training batch size. The loss is the mean over
    /// samples (each batch's mean weighted by its size); with several outputs it is the weighted
    /// sum, and each output's own loss is `<output>_loss`.
    public func evaluate(_ data: Dataset, metrics: [Metric]) throws(TrainingError) -> [String: Double] {
        var acc = MetricAccumulator(metrics, loss: heads[0].loss)
        var total = 0.0
        var headSums = [Double](repeating: 0, count: heads.count)
        var rng = progress.rng
        var lo = 0
        while lo < data.count {
            let hi = min(lo + options.batchSize, data.count)
            let b = try data.batch(Array(lo..<hi))
            var feed = b.namedInputs
            feed[options.inputName] = b.inputs
            for (name, t) in weights { feed[name] = t }
            let tape: Tape
            do { tape = try differentiator.forward(feed, training: false, rng: &rng) } catch { throw .autograd(error) }
            for (k, h) in heads.enumerated() {
                guard let output = tape.value(h.output) else { throw .badState("output '\(h.output)' was not computed") }
                guard let y = b.target(h.target) else { throw .badData("the data has no target '\(h.target ?? "")'") }
                let l = try h.loss.evaluate(output: output, target: y).loss
                headSums[k] += l * Double(hi - lo)
                total += h.weight * l * Double(hi - lo)
                if k == 0 { try acc.add(output: output, target: y) }
            }
            lo = hi
        }
        var out = try acc.values()
        out["loss"] = total / Double(data.count)
        for (name, sum) in zip(headLossNames, headSums) { out[name] = sum / Double(data.count) }
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
        return (try data.subset(0..<cut), try data.subset(cut..<data.count))
    }
}

/// Gathers the next batch on a background thread while the current step runs. Keyed by dataset,
/// shuffle seed, epoch and batch, so a step that asks for anything else gathers it itself; copies of a trainer
/// share it, and a stale prefetch is never used.
final class BatchPrefetcher: @unchecked Sendable {
    struct Key: Equatable {
        let data: ObjectIdentifier
        let seed: UInt64?
        let epoch: Int
        let batch: Int
    }

    private let condition = NSCondition()
    private var pending: Key?
    private var running = false
    private var result: Result<Batch, TrainingError>?

    /// The batch for `key`: the prefetched one when it is that batch, else `gather()` here.
    func take(_ key: Key, gather: () -> Result<Batch, TrainingError>) -> Result<Batch, TrainingError> {
        condition.lock()
        while running { condition.wait() }
        let hit = pending == key ? result : nil
        pending = nil
        result = nil
        condition.unlock()
        return hit ?? gather()
    }

    /// Starts gathering `key` in the background.
    func start(_ key: Key, gather: @escaping @Sendable () -> Result<Batch, TrainingError>) {
        condition.lock()
        while running { condition.wait() }
        pending = key
        running = true
        result = nil
        condition.unlock()
        DispatchQueue.global().async {
            let b = gather()
            self.condition.lock()
            self.result = b
            self.running = false
            self.condition.broadcast()
            self.condition.unlock()
        }
    }
}
