import Foundation

/// Learning-rate schedules with the numbers of `torch.optim.lr_scheduler`.
///
/// torch updates most schedulers recursively (each step multiplies or shifts the previous rate);
/// `learningRates` replays the same recursion in Double, so the rate after k steps equals torch's
/// bit for bit, and resuming only needs k (which the run's progress already holds).
/// Per-epoch schedules (`step`, `multistep`, `exponential`, `cosine`) step after each epoch;
/// `onecycle` and `linear_warmup` step after each optimizer step.
public enum LRSchedule: Sendable, Equatable {
    /// StepLR(step_size, gamma).
    case step(stepSize: Int, gamma: Double)
    /// MultiStepLR(milestones, gamma).
    case multistep(milestones: [Int], gamma: Double)
    /// ExponentialLR(gamma).
    case exponential(gamma: Double)
    /// CosineAnnealingLR(T_max, eta_min).
    case cosine(tMax: Int, etaMin: Double)
    /// OneCycleLR(max_lr, total_steps) with torch's defaults: pct_start 0.3, cosine annealing,
    /// div_factor 25, final_div_factor 1e4, and momentum (SGD/RMSprop `momentum`, Adam `beta1`)
    /// cycled between 0.95 and 0.85.
    case onecycle(maxLR: Double, totalSteps: Int)
    /// LinearLR(start_factor, end_factor = 1, total_iters = steps): a linear warm-up.
    case linearWarmup(steps: Int, startFactor: Double)

    /// Whether the schedule steps after each optimizer step (else after each epoch).
    public var perStep: Bool {
        switch self {
        case .onecycle, .linearWarmup: true
        default: false
        }
    }

    /// Parses `step:step_size=S,gamma=G`, `multistep:milestones=a;b,gamma=G`, `exponential:gamma=G`,
    /// `cosine:t_max=T,eta_min=E`, `onecycle:max_lr=X,total_steps=N`,
    /// `linear_warmup:steps=N[,start_factor=F]` (F defaults to 1/N).
    public static func parse(_ text: String) throws(TrainingError) -> LRSchedule {
        let (kind, rest) = text.firstIndex(of: ":").map { (String(text[..<$0]), String(text[text.index(after: $0)...])) } ?? (text, "")
        var args: [String: String] = [:]
        for part in rest.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw .badSetting("lr schedule '\(text)': '\(part)' is not key=value") }
            args[kv[0]] = kv[1]
        }
        var used: Set<String> = []
        func number(_ key: String, default d: Double? = nil) throws(TrainingError) -> Double {
            used.insert(key)
            guard let s = args[key] else {
                if let d { return d }
                throw .badSetting("lr schedule '\(kind)' needs \(key)=")
            }
            guard let v = Double(s), v.isFinite else { throw .badSetting("lr schedule '\(kind)': \(key)=\(s) is not a number") }
            return v
        }
        func count(_ key: String) throws(TrainingError) -> Int {
            let v = try number(key)
            guard v == v.rounded(), v >= 1, v <= 1e9 else { throw .badSetting("lr schedule '\(kind)': \(key) must be a whole number >= 1, got \(args[key] ?? "")") }
            return Int(v)
        }
        let schedule: LRSchedule
        switch kind {
        case "step":
            schedule = .step(stepSize: try count("step_size"), gamma: try number("gamma", default: 0.1))
        case "multistep":
            used.insert("milestones")
            guard let m = args["milestones"] else { throw .badSetting("lr schedule 'multistep' needs milestones=a;b;...") }
            var ms: [Int] = []
            for p in m.split(separator: ";") {
                guard let v = Int(p.trimmingCharacters(in: .whitespaces)), v >= 1 else {
                    throw .badSetting("lr schedule 'multistep': milestone '\(p)' is not a whole number >= 1")
                }
                ms.append(v)
            }
            guard !ms.isEmpty, ms == ms.sorted() else { throw .badSetting("lr schedule 'multistep': milestones must be increasing, got \(m)") }
            schedule = .multistep(milestones: ms, gamma: try number("gamma", default: 0.1))
        case "exponential":
            schedule = .exponential(gamma: try number("gamma"))
        case "cosine":
            schedule = .cosine(tMax: try count("t_max"), etaMin: try number("eta_min", default: 0))
        case "onecycle":
            let maxLR = try number("max_lr")
            guard maxLR > 0 else { throw .badSetting("lr schedule 'onecycle': max_lr must be > 0") }
            let total = try count("total_steps")
            guard total >= 2 else { throw .badSetting("lr schedule 'onecycle': total_steps must be at least 2") }
            schedule = .onecycle(maxLR: maxLR, totalSteps: total)
        case "linear_warmup":
            let steps = try count("steps")
            let f = try number("start_factor", default: 1 / Double(steps))
            guard f > 0, f <= 1 else { throw .badSetting("lr schedule 'linear_warmup': start_factor must be in (0, 1], got \(f)") }
            schedule = .linearWarmup(steps: steps, startFactor: f)
        default:
            throw .badSetting("unknown lr schedule '\(kind)'; known: step, multistep, exponential, cosine, onecycle, linear_warmup")
        }
        if let extra = args.keys.sorted().first(where: { !used.contains($0) }) {
            throw .badSetting("lr schedule '\(kind)' has no parameter '\(extra)'")
        }
        switch schedule {
        case .step(_, let g), .multistep(_, let g), .exponential(let g):
            guard g > 0 else { throw .badSetting("lr schedule '\(kind)': gamma must be > 0, got \(g)") }
        case .cosine(_, let e):
            guard e >= 0 else { throw .badSetting("lr schedule 'cosine': eta_min must be >= 0, got \(e)") }
        default: break
        }
        return schedule
    }

    /// The rate (and, for `onecycle`, the momentum) in force after `steps` scheduler steps, from
    /// the optimizer's initial rate `base` and momentum: torch's recursion replayed.
    /// - Throws: past `onecycle`'s total steps, as torch does.
    public func state(after steps: Int, base: Double, baseMomentum: Double) throws(TrainingError) -> (lr: Double, momentum: Double) {
        switch self {
        case .onecycle(let maxLR, let total):
            guard steps <= total - 1 else {
                throw .badSetting("onecycle schedule: step \(steps + 1) is past total_steps=\(total); give a larger total_steps")
            }
            return Self.oneCycle(step: steps, maxLR: maxLR, total: total)
        default:
            var lr = try initial(base: base)
            if steps > 0 { for k in 1...steps { lr = next(lr, epoch: k, base: base) } }
            return (lr, baseMomentum)
        }
    }

    func initial(base: Double) throws(TrainingError) -> Double {
        if case .linearWarmup(_, let f) = self { return base * f }
        return base
    }

    /// torch's `get_lr` for step `k` (its `last_epoch`) from the previous rate.
    func next(_ lr: Double, epoch k: Int, base: Double) -> Double {
        switch self {
        case .step(let size, let gamma):
            return k % size == 0 ? lr * gamma : lr
        case .multistep(let milestones, let gamma):
            let hits = milestones.filter { $0 == k }.count
            return hits == 0 ? lr : lr * pow(gamma, Double(hits))
        case .exponential(let gamma):
            return lr * gamma
        case .cosine(let tMax, let etaMin):
            let t = Double(tMax)
            if (k - 1 - tMax) % (2 * tMax) == 0 {
                return lr + (base - etaMin) * (1 - cos(Double.pi / t)) / 2
            }
            return (1 + cos(Double.pi * Double(k) / t)) / (1 + cos(Double.pi * Double(k - 1) / t)) * (lr - etaMin) + etaMin
        case .linearWarmup(let steps, let f):
            if k > steps { return lr }
            return lr * (1 + (1 - f) / (Double(steps) * f + Double(k - 1) * (1 - f)))
        case .onecycle:
            return lr
        }
    }

    /// OneCycleLR's two cosine phases for the rate and the momentum at step `k`.
    static func oneCycle(step k: Int, maxLR: Double, total: Int) -> (lr: Double, momentum: Double) {
        let initial = maxLR / 25, minLR = initial / 1e4
        let maxMomentum = 0.95, baseMomentum = 0.85
        let end1 = 0.3 * Double(total) - 1, end2 = Double(total - 1)
        func anneal(_ start: Double, _ end: Double, _ pct: Double) -> Double {
            end + (start - end) / 2 * (cos(Double.pi * pct) + 1)
        }
        let s = Double(k)
        if s <= end1 {
            let pct = s / end1
            return (anneal(initial, maxLR, pct), anneal(maxMomentum, baseMomentum, pct))
        }
        let pct = (s - end1) / (end2 - end1)
        return (anneal(maxLR, minLR, pct), anneal(baseMomentum, maxMomentum, pct))
    }
}
