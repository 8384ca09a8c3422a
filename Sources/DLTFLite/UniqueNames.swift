/// Names handed out once each: `base`, or `base_k` with the first free k. The next k is kept per
/// base, so a file repeating one name a million times costs linear time. A reference: the
/// builders of a model's subgraphs (WHILE/IF bodies, inlined many times) share one without
/// copying it.
final class UniqueNames {
    private var used: Set<String> = []
    private var nextSuffix: [String: Int] = [:]

    init(reserving names: some Sequence<String> = []) { used = Set(names) }

    /// Takes `name` as it is. - Returns: false when it was taken already.
    func reserve(_ name: String) -> Bool { used.insert(name).inserted }

    func make(_ base: String) -> String {
        var n = base, k = nextSuffix[base] ?? 1
        while used.contains(n) { n = "\(base)_\(k)"; k += 1 }
        nextSuffix[base] = k
        used.insert(n)
        return n
    }
}
