#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes behind a tensor: either an owned, 64-byte-aligned allocation, or a read-only window
/// into a memory-mapped file (kept alive by holding the mapping).
@usableFromInline package final class TensorStorage: @unchecked Sendable {
    /// Alignment of owned allocations, enough for any SIMD width DLKit uses.
    public static let alignment = 64

    public let byteCount: Int
    let pointer: UnsafeMutableRawPointer
    /// True for views into a mapped file: those bytes must not be written.
    public let isReadOnly: Bool
    private let owner: AnyObject?
    private let owned: Bool

    /// An owned, zero-filled allocation of `byteCount` bytes.
    public init(zeroedByteCount byteCount: Int) {
        self.byteCount = byteCount
        maker = nil
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: Self.alignment)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        pointer = p
        isReadOnly = false
        owner = nil
        owned = true
    }

    /// Who made an owned allocation, as its maker chose to mark it (nil when unmarked): the
    /// runtime's buffer pools take back only the storages they made.
    package let maker: ObjectIdentifier?

    /// An owned allocation of `byteCount` bytes whose contents the caller fills at once, marked
    /// as made by `maker`.
    public init(uninitializedByteCount byteCount: Int, maker: ObjectIdentifier? = nil) {
        self.byteCount = byteCount
        self.maker = maker
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: Self.alignment)
        isReadOnly = false
        owner = nil
        owned = true
    }

    /// A read-only view of `count` bytes at `offset` in `file`. The caller has checked the range.
    public init(view file: MappedFile, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= file.byteCount - count, "view outside the mapping")
        byteCount = count
        maker = nil
        if let base = file.base {
            pointer = UnsafeMutableRawPointer(mutating: base + offset)
        } else {
            // An empty file only allows empty views; point at something valid that is never read.
            pointer = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: Self.alignment)
        }
        isReadOnly = true
        owner = file
        owned = file.base == nil
    }

    /// A view of `count` bytes at `offset` in `parent`, which it keeps alive: the slab of a
    /// Concat's output that a runtime plan hands the step producing that input, so the step
    /// writes there and the Concat copies nothing. Writable when `parent` is.
    package init(slabOf parent: TensorStorage, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= parent.byteCount - count, "slab outside its parent")
        byteCount = count
        maker = nil
        pointer = parent.pointer + offset
        isReadOnly = parent.isReadOnly
        owner = parent
        owned = false
    }

    deinit {
        if owned { pointer.deallocate() }
    }

    /// The first byte, for package code that holds the storage while it uses it (a view's bytes
    /// must not be written: see `isReadOnly`).
    package var start: UnsafeMutableRawPointer { pointer }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: byteCount) }

    /// For a view: the mapped file and the offset of the first byte in it.
    var mappedSource: (file: MappedFile, offset: Int)? {
        guard isReadOnly, let file = owner as? MappedFile, let base = file.base else { return nil }
        return (file, UnsafeRawPointer(pointer) - base)
    }
}
