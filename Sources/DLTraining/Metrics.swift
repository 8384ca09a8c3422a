import DLTensor
import Foundation

/// The metrics `dltrain --metrics` computes, with scikit-learn's definitions.
///
/// Classification metrics read the predicted class as the arg-max of the output's class axis
/// (`[N, C]`), or, for one output per sample (`[N]` or `[N, 1]`, binary cross-entropy), output > 0.5
/// (> 0 for logits). Targets are class indices, or one-hot/probabilities (their arg-max), or 0/1.
/// `precision`, `recall` and `f1` are macro averages over the classes present in the targets or the
/// predictions (sklearn's `average="macro"`, a class with no predicted samples counts precision 0,
/// as sklearn's `zero_division` default does). `auc` is the binary ROC AUC with ties ranked as
/// sklearn's `roc_auc_score` does. `mae`, `mse`, `rmse` average over every element.
public enum Metric: String, Sendable, CaseIterable {
    case accuracy
    case top5Accuracy = "top5_accuracy"
    case precision, recall, f1
    case mae, mse, rmse
    case auc

    public var isClassification: Bool {
        switch self {
        case .mae, .mse, .rmse: false
        default: true
        }
    }

    /// Whether a larger value is better (the direction `mode=auto` picks).
    public var higherIsBetter: Bool { isClassification }

    /// Parses `a,b,c`; an unknown name is an error listing the known ones.
    public static func list(_ text: String) throws(TrainingError) -> [Metric] {
        var out: [Metric] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let m = Metric(rawValue: part) else {
                throw .badSetting("unknown metric '\(part)'; known: \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(m) { out.append(m) }
        }
        return out
    }

    /// Refuses a metric that does not fit the loss: classification metrics on a regression loss,
    /// regression metrics on class-index targets.
    public static func check(_ metrics: [Metric], loss: Loss) throws(TrainingError) {
        for m in metrics {
            if m.isClassification && !loss.isClassification {
                throw .badSetting("metric '\(m.rawValue)' needs a classification loss (cross_entropy, nll, bce, bce_with_logits), not \(loss.name)")
            }
            if !m.isClassification && loss.takesClassIndices {
                throw .badSetting("metric '\(m.rawValue)' compares outputs with targets of the same shape; \(loss.name) takes class indices")
            }
        }
    }
}

extension Loss {
    /// Losses whose targets are classes (indices, one-hot, or 0/1).
    public var isClassification: Bool {
        switch self {
        case .nll, .bce, .bceWithLogits: true
        default: isCrossEntropy
        }
    }
}

/// Accumulates metrics over the batches of an epoch or an evaluation.
public struct MetricAccumulator: Sendable {
    public let metrics: [Metric]
    let logits: Bool
    var samples = 0
    var correct = 0, correctTop5 = 0
    var truePositive: [Int: Int] = [:], falsePositive: [Int: Int] = [:], falseNegative: [Int: Int] = [:]
    var classesSeen = Set<Int>()
    var absError = 0.0, squaredError = 0.0, elements = 0
    var scores: [Double] = [], positives: [Bool] = []

    /// - Parameter loss: the training loss; it says whether a single output is a logit.
    public init(_ metrics: [Metric], loss: Loss) {
        self.metrics = metrics
        logits = loss == .bceWithLogits
    }

    /// Adds one batch: the model output and its targets.
    public mutating func add(output: Tensor, target: Tensor) throws(TrainingError) {
        guard !metrics.isEmpty else { return }
        guard output.rank >= 1, target.rank >= 1, output.shape[0] == target.shape[0] else {
            throw .badTarget("metrics need outputs and targets with one row per sample; got \(output.shape) and \(target.shape)")
        }
        let n = output.shape[0]
        let y = output.converted(to: .float64).scalars(as: Double.self)
        let t = target.converted(to: .float64).scalars(as: Double.self)
        samples += n
        if metrics.contains(where: { !$0.isClassification }) {
            guard y.count == t.count else {
                throw .badTarget("mae/mse/rmse need targets shaped like the output \(output.shape); got \(target.shape)")
            }
            for (a, b) in zip(y, t) {
                absError += abs(a - b)
                squaredError += (a - b) * (a - b)
            }
            elements += y.count
        }
        guard metrics.contains(where: \.isClassification) else { return }
        let classes = y.count / max(n, 1)
        guard n > 0, classes * n == y.count else { return }
        let single = classes == 1
        let targetWidth = t.count / n
        guard targetWidth == 1 || targetWidth == classes else {
            throw .badTarget("targets \(target.shape) fit neither class indices nor one value per class of the output \(output.shape)")
        }
        for i in 0..<n {
            let row = y[(i * classes)..<((i + 1) * classes)]
            let truth: Int
            if targetWidth == 1 {
                let v = t[i]
                guard v.isFinite, v >= 0, v == v.rounded(), v < Double(max(classes, 2)) else {
                    throw .badTarget("target \(v) of sample \(i) is not a class index below \(max(classes, 2))")
                }
                truth = Int(v)
            } else {
                truth = Self.argmax(t[(i * targetWidth)..<((i + 1) * targetWidth)])
            }
            let predicted: Int
            let score: Double
            if single {
                let v = row[row.startIndex]
                predicted = v > (logits ? 0 : 0.5) ? 1 : 0
                score = v
            } else {
                predicted = Self.argmax(row)
                score = classes == 2 ? row[row.startIndex + 1] - row[row.startIndex] : .nan
                let above = row.filter { $0 > row[row.startIndex + truth] }.count
                if above < min(5, classes) { correctTop5 += 1 }
            }
            if predicted == truth { correct += 1; truePositive[truth, default: 0] += 1 } else {
                falsePositive[predicted, default: 0] += 1
                falseNegative[truth, default: 0] += 1
            }
            classesSeen.insert(truth)
            classesSeen.insert(predicted)
            if metrics.contains(.auc) {
                guard single || classes == 2 else { throw .badTarget("auc is binary: the output has \(classes) classes") }
                scores.append(score)
                positives.append(truth == 1)
            }
        }
    }

    static func argmax(_ v: ArraySlice<Double>) -> Int {
        var best = v.startIndex
        for i in v.indices where v[i] > v[best] { best = i }
        return best - v.startIndex
    }

    /// The metrics by name (`accuracy`, `f1`, ...).
    public func values() throws(TrainingError) -> [String: Double] {
        var out: [String: Double] = [:]
        let classes = classesSeen.sorted()
        func macro(_ f: (Int) -> Double) -> Double {
            classes.isEmpty ? 0 : classes.map(f).reduce(0, +) / Double(classes.count)
        }
        func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }
        for m in metrics {
            switch m {
            case .accuracy: out[m.rawValue] = ratio(correct, samples)
            case .top5Accuracy: out[m.rawValue] = ratio(correctTop5, samples)
            case .precision: out[m.rawValue] = macro { c in ratio(truePositive[c] ?? 0, (truePositive[c] ?? 0) + (falsePositive[c] ?? 0)) }
            case .recall: out[m.rawValue] = macro { c in ratio(truePositive[c] ?? 0, (truePositive[c] ?? 0) + (falseNegative[c] ?? 0)) }
            case .f1:
                out[m.rawValue] = macro { c in
                    let tp = truePositive[c] ?? 0
                    return ratio(2 * tp, 2 * tp + (falsePositive[c] ?? 0) + (falseNegative[c] ?? 0))
                }
            case .mae: out[m.rawValue] = elements == 0 ? 0 : absError / Double(elements)
            case .mse: out[m.rawValue] = elements == 0 ? 0 : squaredError / Double(elements)
            case .rmse: out[m.rawValue] = elements == 0 ? 0 : (squaredError / Double(elements)).squareRoot()
            case .auc: out[m.rawValue] = try Self.rocAUC(scores: scores, positives: positives)
            }
        }
        return out
    }

    /// The area under the ROC curve: the probability that a positive outranks a negative, ties
    /// counting one half (average ranks), which is what the trapezoids of sklearn's curve add up to.
    static func rocAUC(scores: [Double], positives: [Bool]) throws(TrainingError) -> Double {
        let p = positives.filter { $0 }.count, q = positives.count - p
        guard p > 0, q > 0 else { throw .badTarget("auc needs samples of both classes; the targets hold only \(p > 0 ? "positives" : "negatives")") }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j + 2) / 2
            for k in i...j where positives[order[k]] { rankSum += rank }
            i = j + 1
        }
        return (rankSum - Double(p) * Double(p + 1) / 2) / (Double(p) * Double(q))
    }
}

extension MetricAccumulator {
    /// The running sums as text (doubles in their shortest exact form), so a checkpoint taken
    /// inside an epoch resumes the epoch's metrics where they were.
    public var state: [String: String] {
        func counts(_ d: [Int: Int]) -> String { d.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",") }
        return [
            "counts": [samples, correct, correctTop5, elements].map(String.init).joined(separator: ","),
            "errors": "\(absError),\(squaredError)",
            "true_positive": counts(truePositive), "false_positive": counts(falsePositive), "false_negative": counts(falseNegative),
            "classes": classesSeen.sorted().map(String.init).joined(separator: ","),
            "scores": scores.map { "\($0)" }.joined(separator: ","),
            "positives": String(positives.map { $0 ? "1" : "0" }),
        ]
    }

    /// Continues from `state` (what `state` gave for the same metrics and loss).
    public init(_ metrics: [Metric], loss: Loss, state s: [String: String]) throws(TrainingError) {
        self.init(metrics, loss: loss)
        func bad(_ key: String) -> TrainingError { .badState("the checkpoint's epoch metrics: '\(key)' is malformed") }
        func list(_ key: String) -> [Substring] { (s[key] ?? "").split(separator: ",") }
        func ints(_ key: String) throws(TrainingError) -> [Int] {
            var out: [Int] = []
            for part in list(key) {
                guard let v = Int(part), v >= 0 else { throw bad(key) }
                out.append(v)
            }
            return out
        }
        func counts(_ key: String) throws(TrainingError) -> [Int: Int] {
            var out: [Int: Int] = [:]
            for part in list(key) {
                let kv = part.split(separator: ":")
                guard kv.count == 2, let k = Int(kv[0]), let v = Int(kv[1]), v >= 0 else { throw bad(key) }
                out[k] = v
            }
            return out
        }
        let c = try ints("counts")
        guard c.count == 4 else { throw bad("counts") }
        (samples, correct, correctTop5, elements) = (c[0], c[1], c[2], c[3])
        let e = list("errors").compactMap { Double($0) }
        guard e.count == 2 else { throw bad("errors") }
        (absError, squaredError) = (e[0], e[1])
        truePositive = try counts("true_positive")
        falsePositive = try counts("false_positive")
        falseNegative = try counts("false_negative")
        for part in list("classes") {
            guard let v = Int(part) else { throw bad("classes") }
            classesSeen.insert(v)
        }
        for part in list("scores") {
            guard let v = Double(part) else { throw bad("scores") }
            scores.append(v)
        }
        for ch in s["positives"] ?? "" {
            guard ch == "0" || ch == "1" else { throw bad("positives") }
            positives.append(ch == "1")
        }
        guard scores.count == positives.count else { throw bad("scores") }
    }
}
