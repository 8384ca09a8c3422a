import DLTensor

/// One tensor as a safetensors header describes it, after validation.
public struct SafeTensorsEntry: Sendable, Hashable {
    public let name: String
    public let dtype: DType
    /// Row-major sizes; `[]` for a 0-rank tensor (one element).
    public let shape: [Int]
    /// The header's `data_offsets`: the byte range relative to the start of the data section.
    public let dataOffsets: Range<Int>
    /// The same bytes as absolute offsets in the file (`dataOffsets` shifted by 8 + header length).
    public let fileRange: Range<Int>

    /// Bytes of element data: element count × `dtype.byteWidth`.
    public var byteCount: Int { dataOffsets.count }

    init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>, fileRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
        self.fileRange = fileRange
    }
}
