import DLTensor

extension TorchFile {
    /// The tensor `ref` describes, read from its storage: a view into the mapped file when it is
    /// contiguous, aligned and stored little-endian, otherwise a contiguous, native-endian copy
    /// (strided views are gathered, big-endian elements swapped). Complex tensors come out as
    /// their real and imaginary parts, with a trailing dimension of 2.
    /// - Parameter name: the tensor's name, used in errors.
    /// - Throws: `.unsupportedDType`, `.storageTooShort` (naming the tensor and storage), `.invalidTensor`.
    public func tensor(_ ref: TorchTensorRef, name: String) throws(TorchError) -> Tensor {
        let scalar = ref.scalarType
        guard let dtype = scalar.dtype else { throw .unsupportedDType(path: path, tensor: name, dtype: scalar.name) }
        let width = scalar.elementSize
        let rootKey = ref.storage.key
        guard let loc = storages[rootKey] else {
            throw .missingEntry(path: path, entry: format == .legacy ? "storage \(rootKey)" : "data/\(rootKey)")
        }
        guard loc.method == 0 else { throw .compressedEntry(path: path, entry: loc.entry, method: loc.method) }
        // The storage's bytes (a legacy view starts inside its root storage).
        var storageStart = loc.offset
        var storageBytes = loc.byteCount
        if let v = ref.storage.view {
            let (o, of1) = v.offset.multipliedReportingOverflow(by: width)
            let (n, of2) = v.count.multipliedReportingOverflow(by: width)
            guard !of1, !of2, o <= storageBytes, n <= storageBytes - o else {
                throw .storageTooShort(path: path, tensor: name, storage: rootKey, needed: of1 || of2 ? Int.max : o + n, available: storageBytes)
            }
            storageStart += o
            storageBytes = n
        }

        guard let count = ShapeMath.elementCount(ref.size) else {
            throw .invalidTensor(path: path, tensor: name, detail: "size \(ref.size) is too large")
        }
        let shape = ref.shape
        if count == 0 { return Tensor(zeros: dtype, shape: shape) }

        // The furthest element the tensor reaches, in elements from the storage start.
        var last = ref.storageOffset
        for (s, st) in zip(ref.size, ref.stride) {
            let (m, o1) = (s - 1).multipliedReportingOverflow(by: st)
            let (sum, o2) = last.addingReportingOverflow(m)
            guard !o1, !o2 else { throw .invalidTensor(path: path, tensor: name, detail: "size \(ref.size) and stride \(ref.stride) overflow") }
            last = sum
        }
        let (endBytes, o3) = (last + 1).multipliedReportingOverflow(by: width)
        guard !o3, endBytes <= storageBytes else {
            throw .storageTooShort(path: path, tensor: name, storage: rootKey, needed: o3 ? Int.max : endBytes, available: storageBytes)
        }

        let start = storageStart + ref.storageOffset * width
        let contiguous = Self.isContiguous(size: ref.size, stride: ref.stride)
        let address = Int(bitPattern: file.base) &+ start
        if contiguous && !bigEndian && address % dtype.byteWidth == 0 {
            do { return try Tensor(dtype: dtype, shape: shape, viewing: file, offset: start) } catch {
                throw .invalidTensor(path: path, tensor: name, detail: error.description)
            }
        }
        // Strides of 0 repeat elements: bound what a small storage may expand to.
        let (outBytes, o4) = count.multipliedReportingOverflow(by: width)
        guard !o4, outBytes <= max(storageBytes, 0) &* 16 &+ (1 << 30) else {
            throw .invalidTensor(path: path, tensor: name, detail: "size \(ref.size) with stride \(ref.stride) expands \(storageBytes) bytes of storage beyond what DLKit will allocate")
        }
        guard let fileBase = file.bytes.baseAddress else {
            throw .storageTooShort(path: path, tensor: name, storage: rootKey, needed: endBytes, available: 0)
        }
        var out = Tensor(zeros: dtype, shape: shape)
        let base = fileBase + start
        out.withUnsafeMutableBytes { dst in
            guard let d = dst.baseAddress else { return }
            if contiguous {
                d.copyMemory(from: base, byteCount: count * width)
            } else {
                Self.gather(from: base, to: d, size: ref.size, stride: ref.stride, width: width)
            }
            if bigEndian { Self.swapBytes(d, count: dst.count, width: dtype.byteWidth) }
        }
        return out
    }

    /// True when `stride` is the row-major stride of `size` (dimensions of size 1 ignored).
    static func isContiguous(size: [Int], stride: [Int]) -> Bool {
        var expected = 1
        for i in stride.indices.reversed() where size[i] != 1 {
            if stride[i] != expected { return false }
            expected *= size[i]
        }
        return true
    }

    /// Copies a strided tensor into row-major order, element by element along an odometer.
    static func gather(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, size: [Int], stride: [Int], width: Int) {
        var cursor = StridedCursor(shape: size, strides: stride)
        for n in 0..<size.reduce(1, *) {
            (dst + n * width).copyMemory(from: src + cursor.offset * width, byteCount: width)
            cursor.advance()
        }
    }

    static func swapBytes(_ p: UnsafeMutableRawPointer, count: Int, width: Int) {
        guard width > 1 else { return }
        let b = p.assumingMemoryBound(to: UInt8.self)
        var i = 0
        while i + width <= count {
            var lo = i, hi = i + width - 1
            while lo < hi { let t = b[lo]; b[lo] = b[hi]; b[hi] = t; lo += 1; hi -= 1 }
            i += width
        }
    }
}
