import DLGraph
import DLSupport
import DLTensor

/// Layers that combine several inputs: Add, Subtract, Multiply, Maximum, Minimum, Average,
/// Concatenate, Dot.
extension GraphBuilder {
    static func broadcast(_ a: [Int?], _ b: [Int?]) -> [Int?] {
        let n = max(a.count, b.count)
        let pa = [Int?](repeating: 1, count: n - a.count) + a, pb = [Int?](repeating: 1, count: n - b.count) + b
        return zip(pa, pb).map { x, y in x == 1 ? y : x }
    }

    /// Merge layers: Add, Subtract, Multiply, Maximum, Minimum, Average, Concatenate.
    mutating func mergingLayer(_ s: LayerSpec, _ xs: [Value]) throws(KerasError) -> [Value] {
        guard let x = xs.first else { throw fail(s, "no inputs") }
        switch s.className {
        case "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average":
            guard xs.count >= 2 else { throw fail(s, "needs at least two inputs") }
            let opName = ["Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min", "Average": "Add"][s.className] ?? "Add"
            if s.className == "Subtract", xs.count != 2 { throw fail(s, "needs exactly two inputs") }
            var acc = xs[0]
            for v in xs.dropFirst() {
                acc = Value(name: op1(opName, [acc.name, v.name], name: s.name), shape: Self.broadcast(acc.shape, v.shape))
            }
            if s.className == "Average" {
                let n = constant("\(s.name)/count", Tensor(scalar: Float(xs.count)))
                acc = Value(name: op1("Div", [acc.name, n], name: s.name), shape: acc.shape)
            }
            return [acc]
        case "Concatenate":
            var axis = s.config["axis"]?.intValue ?? -1
            if axis < 0 { axis += x.rank }
            guard axis >= 0, axis < x.rank, xs.allSatisfy({ $0.rank == x.rank }) else {
                throw fail(s, "axis \(s.config["axis"]?.intValue ?? -1) for inputs of ranks \(xs.map(\.rank))")
            }
            let y = op1("Concat", xs.map(\.name), [Attribute(name: "axis", value: .int(axis))], name: s.name)
            var shape = x.shape
            if axis < shape.count { shape[axis] = xs.reduce(0) { a, v in a.flatMap { a in v.shape[axis].map { a + $0 } } } }
            return [Value(name: y, shape: shape, dtype: x.dtype)]
        default:
            throw .unsupportedLayers(path: path, layers: ["\(s.className) '\(s.name)'"])
        }
    }

    mutating func dot(_ s: LayerSpec, _ xs: [Value]) throws(KerasError) -> Value {
        guard xs.count == 2 else { throw fail(s, "needs two inputs") }
        var a = xs[0], b = xs[1]
        let ax = s.config["axes"]
        var axes: [Int] = ax?.intValue.map { [$0, $0] } ?? ax?.arrayValue?.compactMap(\.intValue) ?? []
        guard axes.count == 2 else { throw fail(s, "bad axes") }
        axes = [axes[0] < 0 ? axes[0] + a.rank : axes[0], axes[1] < 0 ? axes[1] + b.rank : axes[1]]
        guard (1..<a.rank).contains(axes[0]), (1..<b.rank).contains(axes[1]) else { throw fail(s, "axes \(axes) outside the inputs' ranks \(a.rank) and \(b.rank)") }
        if bool(s, "normalize", false) {
            for (i, v) in [a, b].enumerated() {
                let n = op1("LpNormalization", [v.name], [Attribute(name: "axis", value: .int(axes[i])), Attribute(name: "p", value: .int(2))], name: s.name)
                if i == 0 { a = Value(name: n, shape: v.shape) } else { b = Value(name: n, shape: v.shape) }
            }
        }
        if a.rank == 2, b.rank == 2, axes == [1, 1] {
            let m = op1("Mul", [a.name, b.name], name: s.name)
            let r = op1("ReduceSum", [m, ints("\(s.name)/axes", [1])], [Attribute(name: "keepdims", value: .int(1))], name: s.name)
            return Value(name: r, shape: [a.shape[0], 1])
        }
        guard a.rank == 3, b.rank == 3 else { throw fail(s, "only rank 2 (axes 1) and rank 3 inputs are supported") }
        if axes[0] == 1 { a = transpose(a, [0, 2, 1], name: s.name) }
        if axes[1] == 2 { b = transpose(b, [0, 2, 1], name: s.name) }
        return Value(name: op1("MatMul", [a.name, b.name], name: s.name), shape: [a.shape[0], a.shape[1], b.shape[2]])
    }
}
