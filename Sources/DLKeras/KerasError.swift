/// What can go wrong reading or writing Keras files. Each message is one line naming the file and
/// the object (HDF5 path, layer, weight) at fault.
public enum KerasError: Error, CustomStringConvertible, Sendable {
    /// libhdf5 refused the file or an object in it (truncated, corrupt, not HDF5).
    case hdf5(path: String, object: String, reason: String)
    /// DLKit's own structural check found the HDF5 file inconsistent (before libhdf5 read it).
    case malformedHDF5(path: String, offset: Int, reason: String)
    /// The helper process reading the file (DLKit's `KerasIsolation`) died: libhdf5 crashed.
    case readerCrashed(path: String, how: String)
    /// The helper process refused the file with this one-line message (it names the file).
    case helperRefused(path: String, message: String)
    /// The helper process could not be run or gave back nothing readable.
    case helperFailed(path: String, reason: String)
    /// A valid HDF5 file that holds no Keras model or weights.
    case notKeras(path: String, reason: String)
    /// Weights without a model config where a model is needed.
    case weightsOnly(path: String)
    /// The model configuration cannot be understood.
    case invalidConfig(path: String, reason: String)
    /// Layers DLKit cannot translate, as "Class 'name'", all of them.
    case unsupportedLayers(path: String, layers: [String])
    /// Weights missing, extra, or of a shape the configuration does not give.
    case weights(path: String, reason: String)
    /// A `.keras` archive that is not a readable zip or lacks its parts.
    case archive(path: String, reason: String)
    /// Writing failed, or the weights do not fit the layout being written.
    case write(path: String, reason: String)

    public var description: String {
        switch self {
        case .hdf5(let p, let o, let r): "\(p): HDF5 object '\(o)': \(r)"
        case .malformedHDF5(let p, let o, let r): "\(p): malformed HDF5 at byte \(o): \(r)"
        case .readerCrashed(let p, let how): "libhdf5 crashed reading \(p) (\(how)): the file is malformed"
        case .helperRefused(_, let m): m
        case .helperFailed(let p, let r): "\(p): cannot read it in a helper process: \(r)"
        case .notKeras(let p, let r): "\(p): not a Keras file: \(r)"
        case .weightsOnly(let p): "\(p): holds Keras weights but no model config; give the model (a .h5 with a config, or .keras) as the graph to bind them onto"
        case .invalidConfig(let p, let r): "\(p): Keras model config: \(r)"
        case .unsupportedLayers(let p, let l): "\(p): unsupported Keras layer\(l.count == 1 ? "" : "s"): \(l.joined(separator: ", "))"
        case .weights(let p, let r): "\(p): Keras weights: \(r)"
        case .archive(let p, let r): "\(p): .keras archive: \(r)"
        case .write(let p, let r): "\(p): cannot write: \(r)"
        }
    }
}
