import DLTensor

extension Graph {
    /// Checks that the graph is well formed: every value defined once, every node input defined,
    /// every graph output produced, no cycles. Reorders nodes topologically when the source listed
    /// them out of order (ONNX requires order, but some exporters do not keep it).
    ///
    /// The sort is iterative (deep graphs do not overflow the stack) and deterministic: among ready
    /// nodes the one listed first goes first.
    public mutating func verifyAndSort() throws(GraphError) {
        var producer: [String: Int] = [:]
        var defined = Set<String>()
        for v in inputs {
            guard defined.insert(v.name).inserted else { throw .duplicateValue(v.name) }
        }
        for n in initializers.names {
            if !defined.insert(n).inserted && !inputs.contains(where: { $0.name == n }) {
                throw .duplicateValue(n)
            }
        }
        for (i, node) in nodes.enumerated() {
            for o in node.outputs where !o.isEmpty {
                guard !defined.contains(o), producer.updateValue(i, forKey: o) == nil else {
                    throw .duplicateValue(o)
                }
            }
        }
        // Kahn's algorithm over node indices, picking the smallest ready index each time.
        var pending = [Int](repeating: 0, count: nodes.count)
        var consumers: [Int: [Int]] = [:]
        for (i, node) in nodes.enumerated() {
            var seen = Set<Int>()
            for inp in node.inputs where !inp.isEmpty {
                if let p = producer[inp] {
                    if seen.insert(p).inserted {
                        pending[i] += 1
                        consumers[p, default: []].append(i)
                    }
                } else if !defined.contains(inp) {
                    throw .undefinedValue(node: node.displayName, value: inp)
                }
            }
        }
        var ready = MinHeap()
        for i in nodes.indices where pending[i] == 0 { ready.push(i) }
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        while let i = ready.pop() {
            order.append(i)
            for c in consumers[i] ?? [] {
                pending[c] -= 1
                if pending[c] == 0 { ready.push(c) }
            }
        }
        guard order.count == nodes.count else {
            let stuck = nodes.indices.filter { pending[$0] > 0 }.map { nodes[$0].displayName }
            throw .cycle(nodes: stuck)
        }
        if order != Array(nodes.indices) { nodes = order.map { nodes[$0] } }
        for o in outputs where producer[o.name] == nil && !defined.contains(o.name) {
            throw .missingOutput(o.name)
        }
    }
}

/// A binary min-heap of Ints, enough for deterministic topological sorting.
struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ v: Int) {
        items.append(v)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p] <= items[i] { break }
            items.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(m, i)
                i = m
            }
        }
        return top
    }
}
