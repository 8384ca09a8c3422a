import CKernels

/// The C library's heap, for a process that allocates and frees the same large blocks again and
/// again (a training step's activations and gradients).
public enum Heap {
    /// Keeps freed memory for the next allocations: blocks under 32 MiB come from the heap rather
    /// than their own mappings, and up to 512 MiB of free memory at the heap's top stays mapped,
    /// so a block freed by one step is reused by the next instead of being returned to the kernel,
    /// faulted in and zeroed again. Process-wide; once, at start-up.
    /// - Returns: false when the C library has no such settings (nothing changed).
    @discardableResult
    public static func keepFreedMemory() -> Bool {
        dlk_heap_keep_freed(32 << 20, 512 << 20) == 1
    }
}
