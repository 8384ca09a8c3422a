import Foundation
import DLTensor

/// Values made from a model's constant tensors (packed 8-bit weights, the integer form of a
/// requantization), made on a plan's first run rather than on every run and found again by the
/// storages they were made from. Storages are held weakly: an entry goes when one of its
/// storages has (with the model that held it), so the cache keeps nothing alive; `key` holds
/// what else the value depends on.
final class StorageCache<Key: Equatable, Value>: @unchecked Sendable {
    private struct Source {
        weak var storage: TensorStorage?
        let present: Bool
    }

    private struct Entry {
        let sources: [Source]
        let key: Key
        let value: Value

        var alive: Bool { sources.allSatisfy { !$0.present || $0.storage != nil } }

        func matches(_ storages: [TensorStorage?], _ key: Key) -> Bool {
            sources.count == storages.count && self.key == key
                && zip(sources, storages).allSatisfy { $0.present == ($1 != nil) && $0.storage === $1 }
        }
    }

    private var entries: [ObjectIdentifier: [Entry]] = [:]
    private let lock = NSLock()

    /// The value made from `storages` (the first one present names the entry; nil ones stand
    /// for absent inputs) and `key`, else `make()`'s, kept unless nil.
    func value<E: Error>(for storages: [TensorStorage?], key: Key, make: () throws(E) -> Value?) throws(E) -> Value? {
        if let hit = find(storages, key) { return hit }
        guard let made = try make() else { return nil }
        insert(storages, key, made)
        return made
    }

    /// The value made from `storages` and `key`, else `make()`'s, kept.
    func value<E: Error>(for storages: [TensorStorage?], key: Key, make: () throws(E) -> Value) throws(E) -> Value {
        if let hit = find(storages, key) { return hit }
        let made = try make()
        insert(storages, key, made)
        return made
    }

    private func find(_ storages: [TensorStorage?], _ key: Key) -> Value? {
        guard let first = storages.compactMap({ $0 }).first else { return nil }
        lock.lock()
        defer { lock.unlock() }
        return entries[ObjectIdentifier(first)]?.first { $0.matches(storages, key) }?.value
    }

    private func insert(_ storages: [TensorStorage?], _ key: Key, _ value: Value) {
        guard let first = storages.compactMap({ $0 }).first else { return }
        lock.lock()
        defer { lock.unlock() }
        // Entries whose storages are gone leave with this insertion.
        entries = entries.compactMapValues { list in
            let kept = list.filter(\.alive)
            return kept.isEmpty ? nil : kept
        }
        entries[ObjectIdentifier(first), default: []].append(Entry(sources: storages.map { Source(storage: $0, present: $0 != nil) }, key: key, value: value))
    }
}
