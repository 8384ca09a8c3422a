import DLSupport
import DLTensor
import DLTestSupport
import DLTraining
import Foundation
import Testing

/// Schedules, callbacks and metrics against the libraries whose semantics they follow
/// (fixtures/training/callbacks.json, made by scripts/fixtures/make_training_callbacks.py with
/// torch 2.13, Keras 3 and scikit-learn).
struct CallbackTests {
    /// The reference values, read with our JSON parser: Foundation's on Linux rounds some
    /// doubles in their last bit, and these comparisons are exact.
    nonisolated(unsafe) static let reference: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: TestPackage.fixture("training/callbacks.json")),
              let json = data.withUnsafeBytes({ try? JSONParser.parse($0) }) else { return [:] }
        func plain(_ j: JSON) -> Any {
            switch j {
            case .object(let members): Dictionary(members.map { ($0.key, plain($0.value)) }, uniquingKeysWith: { a, _ in a })
            case .array(let items): items.map(plain)
            case .string(let s): s
            case .number(let n): NSNumber(value: Double(n) ?? .nan)
            case .bool(let b): b
            case .null: NSNull()
            }
        }
        return plain(json) as? [String: Any] ?? [:]
    }()

    static func section(_ name: String) -> [String: [String: Any]] {
        reference[name] as? [String: [String: Any]] ?? [:]
    }

    static func numbers(_ v: Any?) -> [Double] { (v as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.doubleValue } }

    static let scheduleCases = section("schedules").keys.sorted()

    /// Every rate (and onecycle momentum) before each of 40 steps equals torch's, to the bit.
    @Test(arguments: scheduleCases)
    func scheduleMatchesTorch(key: String) throws {
        let entry = try #require(Self.section("schedules")[key])
        let spec = String(key.split(separator: "|")[0])
        let schedule = try LRSchedule.parse(spec)
        let lrs = Self.numbers(entry["lr"]), momenta = Self.numbers(entry["momentum"])
        #expect(lrs.count == 40)
        for k in 0..<lrs.count {
            let (lr, m) = try schedule.state(after: k, base: 0.05, baseMomentum: 0.9)
            #expect(lr == lrs[k], "\(spec): step \(k) lr \(lr), torch \(lrs[k])")
            #expect(m == momenta[k], "\(spec): step \(k) momentum \(m), torch \(momenta[k])")
        }
    }

    @Test func onecyclePastItsTotalStepsIsRefused() throws {
        let s = try LRSchedule.parse("onecycle:max_lr=0.1,total_steps=10")
        #expect(throws: TrainingError.self) { try s.state(after: 10, base: 0.01, baseMomentum: 0) }
    }

    @Test(arguments: ["nope:gamma=1", "step:gamma=0.5", "step:step_size=0", "step:step_size=2,gamma=-1", "cosine:t_max=3,eta_min=-1",
                      "multistep:milestones=5;2", "exponential:gamma=0.9,extra=1", "onecycle:max_lr=0,total_steps=5", "step:step_size"])
    func impossibleSchedulesAreRefused(spec: String) {
        #expect(throws: TrainingError.self) { try LRSchedule.parse(spec) }
    }

    static let plateauCases = section("plateau").keys.sorted()

    @Test(arguments: plateauCases)
    func plateauMatchesTorch(spec: String) throws {
        let entry = try #require(Self.section("plateau")[spec])
        var cb = try ReduceLROnPlateau.parse(spec)
        var lr = 0.1
        for (epoch, (v, want)) in zip(Self.numbers(entry["values"]), Self.numbers(entry["lr_after"])).enumerated() {
            var event = EpochEnd(epoch: epoch, logs: ["val_loss": v, "lr": lr])
            try cb.epochEnded(&event)
            if let new = event.newLearningRate { lr = new }
            #expect(lr == want, "\(spec): epoch \(epoch) lr \(lr), torch \(want)")
        }
    }

    static let earlyCases = section("early_stopping").keys.sorted()

    @Test(arguments: earlyCases)
    func earlyStoppingMatchesKeras(spec: String) throws {
        let entry = try #require(Self.section("early_stopping")[spec])
        var cb = try EarlyStopping.parse(spec)
        var stopped: Int?
        for (epoch, v) in Self.numbers(entry["values"]).enumerated() {
            var event = EpochEnd(epoch: epoch, logs: [cb.monitor: v])
            try cb.epochEnded(&event)
            if event.stopTraining { stopped = epoch; break }
        }
        #expect(stopped == (entry["stopped_epoch"] as? NSNumber)?.intValue, "\(spec)")
        #expect(cb.bestEpoch == (entry["best_epoch"] as? NSNumber)?.intValue, "\(spec)")
    }

    @Test func earlyStoppingStateSurvivesARoundTrip() throws {
        var a = try EarlyStopping.parse("monitor=loss,patience=3,min_delta=0.1")
        for (e, v) in [1.0, 0.5, 0.45].enumerated() {
            var event = EpochEnd(epoch: e, logs: ["loss": v])
            try a.epochEnded(&event)
        }
        var b = try EarlyStopping.parse("monitor=loss,patience=3,min_delta=0.1")
        try b.restore(a.state)
        #expect(b.state == a.state)
        #expect(b.best == 0.5 && b.wait == 1)
    }

    /// Metrics accumulated over two batches equal scikit-learn's on the whole set. An accumulator
    /// saved after the first batch (a checkpoint inside an epoch) and restored ends with the same
    /// values bit for bit; a malformed saved state is refused.
    @Test(arguments: ["multiclass", "binary_logits", "regression"])
    func metricsMatchSklearn(name: String) throws {
        let entry = try #require(Self.section("metrics")[name])
        let rows = entry["output"] as? [Any] ?? []
        let outputs: [Double] = rows.flatMap { ($0 as? [Any]).map(Self.numbers) ?? Self.numbers([$0]) }
        let targets: [Double] = (entry["target"] as? [Any] ?? []).flatMap { ($0 as? [Any]).map(Self.numbers) ?? Self.numbers([$0]) }
        let n = rows.count, width = outputs.count / n, targetWidth = targets.count / n
        let metrics = Metric.allCases.filter { entry[$0.rawValue] != nil }
        let loss: Loss = name == "regression" ? .mse : name == "binary_logits" ? .bceWithLogits : .crossEntropy(labelSmoothing: 0)
        try Metric.check(metrics, loss: loss)
        var acc = MetricAccumulator(metrics, loss: loss)
        var resumed = MetricAccumulator(metrics, loss: loss)
        let half = n / 2
        for (lo, hi) in [(0, half), (half, n)] {
            let outShape = width == 1 ? [hi - lo] : [hi - lo, width]
            let tShape = targetWidth == 1 ? [hi - lo] : [hi - lo, targetWidth]
            let out = Tensor(shape: outShape, scalars: outputs[(lo * width)..<(hi * width)].map { Float($0) })
            let tgt = name == "regression" ? Tensor(shape: tShape, scalars: targets[(lo * targetWidth)..<(hi * targetWidth)].map { Float($0) })
                                           : Tensor(shape: tShape, scalars: targets[lo..<hi].map { Int64($0) })
            try acc.add(output: out, target: tgt)
            if lo > 0 {
                let saved = resumed.state
                for (key, value) in [("counts", "1,2"), ("errors", "x,1"), ("true_positive", "1:-2"), ("scores", "0.5"), ("positives", "2")] {
                    var bad = saved
                    bad[key] = value
                    #expect(throws: TrainingError.self) { _ = try MetricAccumulator(metrics, loss: loss, state: bad) }
                }
                resumed = try MetricAccumulator(metrics, loss: loss, state: saved)
                #expect(resumed.state == saved)
            }
            try resumed.add(output: out, target: tgt)
        }
        let got = try acc.values()
        let again = try resumed.values()
        for m in metrics { #expect(got[m.rawValue]?.bitPattern == again[m.rawValue]?.bitPattern, "\(name) \(m.rawValue) after a resume") }
        for m in metrics {
            let want = try #require((entry[m.rawValue] as? NSNumber)?.doubleValue)
            let have = try #require(got[m.rawValue])
            #expect(abs(have - want) <= 1e-6 * max(1, abs(want)), "\(name) \(m.rawValue): \(have), sklearn \(want)")
        }
    }

    @Test func metricsThatDoNotFitTheLossAreRefused() {
        #expect(throws: TrainingError.self) { try Metric.check([.accuracy], loss: .mse) }
        #expect(throws: TrainingError.self) { try Metric.check([.mae], loss: .crossEntropy(labelSmoothing: 0)) }
        #expect(throws: TrainingError.self) { try Metric.list("accuracy,bogus") }
        #expect((try? Metric.list("accuracy, f1,accuracy")) == [.accuracy, .f1])
    }

    @Test func aucNeedsBothClasses() throws {
        var acc = MetricAccumulator([.auc], loss: .bceWithLogits)
        try acc.add(output: Tensor(shape: [3], scalars: [Float(0.1), 0.2, 0.3]), target: Tensor(shape: [3], scalars: [Float(1), 1, 1]))
        #expect(throws: TrainingError.self) { try acc.values() }
    }

    @Test func csvLogKeepsKerasColumnsWithTheRateLast() {
        let logs = ["val_loss": 0.5, "loss": 0.25, "lr": 0.01, "accuracy": 0.75]
        #expect(CSVLog.header(logs) == "epoch,accuracy,loss,val_loss,lr")
        #expect(CSVLog.row(epoch: 0, logs) == "0,0.75,0.25,0.5,0.01")
    }
}
