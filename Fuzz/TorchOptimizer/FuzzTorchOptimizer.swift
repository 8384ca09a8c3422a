import DLKit
import DLTensor
import DLTorch
import FuzzSupport
import Glibc

/// libFuzzer entry, structure-aware: the bytes are decisions (`FuzzChoices`) that build a PyTorch
/// optimizer `state_dict()` from a grammar, written as a real `torch.save` zip by `TorchWriter`:
///
///   state_dict := {'state': {index: {slot: value}}, 'param_groups': [group, ...]} (keys sometimes
///                 missing, renamed or of the wrong type)
///   group      := hyperparameters of SGD / Adam / AdamW / RMSprop (or a mix) with odd values
///                 (negative, zero, huge, NaN, wrong types, betas of any length) and 'params'
///   slot value := a tensor of any dtype and rank 0-3, shaped like its parameter or not (a
///                 `step` may be NaN or infinite), or a number, string, None, list
///
/// It is read back through the import `dltrain` uses (`TrainingSession.importTorch`: TorchFile,
/// TorchOptimizerState, slots by parameter name, hyperparameters) and, when that succeeds,
/// exported again (`TrainingSession.exportTorch`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorchOptimizer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    var c = FuzzChoices(UnsafeRawBufferPointer(start: data, count: size))
    let nParams = c.below(4)
    let names = (0..<nParams).map { "p\($0)" }
    let shapes = Dictionary(uniqueKeysWithValues: names.map { ($0, (0..<c.below(3)).map { _ in c.below(3) + 1 }) })
    let value = TorchOptimizerGrammar.stateDict(&c, names: names, shapes: shapes)
    let dir = FuzzSupport.scratchDirectory()
    let path = dir + "/dlkit-fuzz-optim-\(getpid()).pt"
    do { try TorchWriter.write(value, to: path) } catch { return 0 }
    let passNames = c.oneIn(8) ? names + ["extra"] : names
    guard let state = try? TrainingSession.importTorch(path: path, parameters: passNames, shapes: shapes) else { return 0 }
    _ = try? TrainingSession.exportTorch(state, to: dir + "/dlkit-fuzz-optim-out-\(getpid()).pt")
    return 0
}

enum TorchOptimizerGrammar {
    static let dtypes: [DType] = [.float32, .float32, .float64, .float16, .int64, .int32, .bool, .uint8, .bfloat16]

    static func number(_ c: inout FuzzChoices) -> TorchValue {
        switch c.below(5) {
        case 0: .int(c.oddInt())
        case 1: .bool(c.bool())
        case 2: .none
        default: .float(c.oddDouble())
        }
    }

    static func oddValue(_ c: inout FuzzChoices, shape: [Int]) -> TorchValue {
        switch c.below(8) {
        case 0: return number(&c)
        case 1: return .string(c.pick(["", "x", "step"]))
        case 2: return .list((0..<c.below(3)).map { _ in number(&c) })
        case 3: return .tuple((0..<c.below(4)).map { _ in number(&c) })
        default:
            let dt = c.pick(dtypes)
            let s = c.oneIn(4) ? (0..<c.below(4)).map { _ in c.below(4) } : shape
            let n = s.reduce(1, *)
            let v = (0..<n).map { _ in c.oneIn(3) ? c.oddDouble() : Double(c.below(5)) }
            return .tensorData(Tensor(shape: s, scalars: v).converted(to: dt))
        }
    }

    static let hyper: [(String, @Sendable (inout FuzzChoices) -> TorchValue)] = [
        ("lr", { .float($0.oddDouble()) }), ("momentum", { number(&$0) }), ("dampening", { number(&$0) }),
        ("weight_decay", { number(&$0) }), ("nesterov", { number(&$0) }), ("maximize", { .bool($0.oneIn(4)) }),
        ("betas", { c in .tuple((0..<(c.oneIn(4) ? c.below(4) : 2)).map { _ in number(&c) }) }), ("eps", { number(&$0) }),
        ("amsgrad", { number(&$0) }), ("decoupled_weight_decay", { .bool($0.bool()) }), ("alpha", { number(&$0) }),
        ("centered", { number(&$0) }), ("foreach", { _ in .none }), ("capturable", { .bool($0.bool()) }),
    ]

    static let slotNames = ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg", "other"]

    static func stateDict(_ c: inout FuzzChoices, names: [String], shapes: [String: [Int]]) -> TorchValue {
        // Groups: the keys of one optimizer (picked), perturbed.
        let kind = c.below(4)
        let keysByKind: [[String]] = [["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"],
                                      ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
                                      ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"],
                                      ["lr", "momentum", "alpha", "eps", "centered", "weight_decay", "maximize"]]
        var groups: [TorchValue] = []
        var index = 0
        for g in 0..<(c.oneIn(6) ? c.below(3) : 1) {
            var entries: [TorchDictEntry] = []
            for k in keysByKind[kind] where !c.oneIn(10) {
                let make = hyper.first { $0.0 == k }?.1
                var v: TorchValue = .float(0.01)
                if c.oneIn(3), let make { v = make(&c) } else if k == "betas" { v = .tuple([.float(0.9), .float(0.999)]) } else if ["nesterov", "amsgrad", "centered", "maximize"].contains(k) {
                    v = .bool(false)
                } else if k == "decoupled_weight_decay" { v = .bool(true) }
                entries.append(TorchDictEntry(.string(k), v))
            }
            if c.oneIn(6) { let (k, make) = c.pick(hyper); entries.append(TorchDictEntry(.string(k), make(&c))) }
            let count = g == 0 ? names.count : c.below(3)
            var params: [TorchValue] = (0..<count).map { _ in defer { index += 1 }; return .int(index) }
            if c.oneIn(8) { params.append(c.oneIn(2) ? .int(c.oddInt()) : .string("p")) }
            entries.append(TorchDictEntry(c.oneIn(30) ? .int(0) : .string("params"), c.oneIn(30) ? number(&c) : .list(params)))
            groups.append(c.oneIn(30) ? number(&c) : .dict(entries))
        }
        // State: per parameter index, slots shaped like the parameter (mostly).
        var state: [TorchDictEntry] = []
        for (i, n) in names.enumerated() where !c.oneIn(5) {
            var slots: [TorchDictEntry] = []
            for s in slotNames where c.oneIn(2) {
                let shape = s == "step" ? [] : shapes[n] ?? []
                slots.append(TorchDictEntry(.string(s), c.oneIn(6) ? oddValue(&c, shape: shape)
                                            : .tensorData(Tensor(shape: shape, scalars: [Float](repeating: 1, count: shape.reduce(1, *))))))
            }
            let key: TorchValue = c.oneIn(20) ? .string("\(i)") : .int(c.oneIn(20) ? c.oddInt() : i)
            state.append(TorchDictEntry(key, c.oneIn(20) ? number(&c) : .dict(slots)))
        }
        var root: [TorchDictEntry] = [TorchDictEntry(.string("state"), c.oneIn(30) ? .list([]) : .dict(state)),
                                      TorchDictEntry(.string("param_groups"), c.oneIn(30) ? .dict([]) : .list(groups))]
        if c.oneIn(10) { root.removeLast() }
        return .dict(root)
    }
}
