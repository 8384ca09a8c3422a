import DLTensor

extension Graph {
    /// Checks that the graph is well formed: every value defined once, every node input defined,
    /// every graph output produced, no cycles. Reorders nodes topologically when the source listed
    /// them out of order (ONNX requires order, but some exporters do not keep it).
    ///
    /// The sort is iterative (deep graphs do not overflow the stack) and deterministic: among ready
    /// nodes the one listed first goes first.
    ///
    /// - Parameter outerScope: for a subgraph (If/Loop/Scan bodies), the names the enclosing
    ///   graphs define; its nodes and outputs may read them.
    public mutating func verifyAndSort(outerScope: Set<String> = []) throws(GraphError) {
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
                } else if !defined.contains(inp) && !outerScope.contains(inp) {
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
        for o in outputs where producer[o.name] == nil && !defined.contains(o.name) && !outerScope.contains(o.name) {
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

extension Graph {
    /// Every name this graph defines: inputs, initializers and node outputs.
    public var definedNames: Set<String> {
        var s = Set(inputs.map(\.name)).union(initializers.names)
        for n in nodes { for o in n.outputs where !o.isEmpty { s.insert(o) } }
        return s
    }

    /// Names the graph reads but does not define (its nodes' inputs, its nested subgraphs' free
    /// names, its outputs): what it needs from the enclosing scope.
    public var outerNames: Set<String> {
        let defined = definedNames
        var out = Set<String>()
        for n in nodes {
            for i in n.inputs where !i.isEmpty && !defined.contains(i) { out.insert(i) }
            for name in n.subgraphOuterNames where !defined.contains(name) { out.insert(name) }
        }
        for o in outputs where !defined.contains(o.name) { out.insert(o.name) }
        return out
    }
}

extension Node {
    /// The graph-valued attributes of the node (If branches, Loop/Scan bodies), by attribute name.
    public var subgraphs: [(name: String, graph: Graph)] {
        var out: [(String, Graph)] = []
        for a in attributes {
            switch a.value {
            case .graph(let g): out.append((a.name, g))
            case .graphs(let gs): for g in gs { out.append((a.name, g)) }
            default: break
            }
        }
        return out
    }

    /// Applies `body` to every graph-valued attribute of the node, in place.
    package mutating func rewriteSubgraphs(_ body: (inout Graph) -> Void) {
        for i in attributes.indices {
            switch attributes[i].value {
            case .graph(var g):
                body(&g)
                attributes[i].value = .graph(g)
            case .graphs(var gs):
                for k in gs.indices { body(&gs[k]) }
                attributes[i].value = .graphs(gs)
            default: break
            }
        }
    }

    /// Names the node's subgraphs read from the enclosing scope (implicit inputs of the node).
    public var subgraphOuterNames: Set<String> {
        var out = Set<String>()
        for (_, g) in subgraphs { out.formUnion(g.outerNames) }
        return out
    }
}
