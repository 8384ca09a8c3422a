import CHDF5
import DLTensor
import Foundation

/// A failure inside libhdf5 or a value of a kind we do not read, with the object it concerns.
struct H5Failure: Error {
    var object: String
    var reason: String
    /// Where in the file, when our own structural check (`HDF5Check`) found the fault.
    var offset: Int? = nil
}

/// Serialises every libhdf5 call: the Debian library is built without thread safety, and tests
/// and servers open files from several threads.
enum HDF5 {
    private static let lock = NSRecursiveLock()

    static func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        // Every time: a thread-safe libhdf5 (Debian's is) keeps the automatic error printing per
        // thread, so silencing it once left other threads printing their error stacks.
        _ = dlk_silence_errors()
        return try body()
    }

    /// The text of libhdf5's error stack for the failed call (cleared afterwards).
    static func lastError(_ fallback: String) -> String {
        var buf = [CChar](repeating: 0, count: 600)
        buf.withUnsafeMutableBufferPointer { p in
            if let base = p.baseAddress { dlk_error_message(base, p.count) }
        }
        let s = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? fallback : s
    }
}

/// Closes an HDF5 identifier when the value goes away.
final class H5ID {
    let id: hid_t
    private let closer: (hid_t) -> herr_t

    init(_ id: hid_t, _ closer: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.closer = closer
    }

    deinit { _ = closer(id) }
}

/// An HDF5 file opened for reading. Create and use only inside `HDF5.locked`.
final class H5Reader {
    let file: H5ID
    /// The file's bytes and what `HDF5Check` found in them, for the checks made while reading.
    let bytes: H5Bytes
    let layout: H5Layout

    init(path: String) throws(H5Failure) {
        // Our structural checks first: libhdf5 sees only files whose heaps are consistent.
        let mapped: MappedFile
        do { mapped = try MappedFile(path: path) } catch { throw H5Failure(object: "/", reason: "cannot read the file: \(error)") }
        bytes = H5Bytes(mapped: mapped)
        layout = try bytes.with { b throws(H5Failure) in try HDF5Check.check(b) }
        let fapl = H5Pcreate(dlk_H5P_FILE_ACCESS())
        defer { if fapl >= 0 { _ = H5Pclose(fapl) } }
        let id = H5Fopen(path, dlk_H5F_ACC_RDONLY(), fapl >= 0 ? fapl : dlk_H5P_DEFAULT())
        guard id >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot open the file as HDF5")) }
        file = H5ID(id, H5Fclose)
    }

    /// Opens an HDF5 image held in memory (a `.keras` archive's `model.weights.h5`).
    init(image: [UInt8]) throws(H5Failure) {
        bytes = H5Bytes(owned: image)
        layout = try bytes.with { b throws(H5Failure) in try HDF5Check.check(b) }
        let fapl = H5Pcreate(dlk_H5P_FILE_ACCESS())
        guard fapl >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot create file access properties")) }
        defer { _ = H5Pclose(fapl) }
        guard H5Pset_fapl_core(fapl, 1 << 20, false) >= 0 else {
            throw H5Failure(object: "/", reason: HDF5.lastError("cannot use the in-memory driver"))
        }
        let ok = image.withUnsafeBytes { b in H5Pset_file_image(fapl, UnsafeMutableRawPointer(mutating: b.baseAddress), b.count) }
        guard ok >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot hand the image over")) }
        let id = H5Fopen("dlkit-memory-image.h5", dlk_H5F_ACC_RDONLY(), fapl)
        guard id >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot open the image as HDF5")) }
        file = H5ID(id, H5Fclose)
    }

    /// True when every component of `path` exists (H5Lexists needs the parents to exist).
    func exists(_ path: String) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(file.id, prefix, dlk_H5P_DEFAULT()) > 0 else { return false }
        }
        return true
    }

    private func open(_ path: String) throws(H5Failure) -> H5ID {
        guard exists(path) else { throw H5Failure(object: path, reason: "no such object") }
        let id = H5Oopen(file.id, path, dlk_H5P_DEFAULT())
        guard id >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot open the object")) }
        return H5ID(id, H5Oclose)
    }

    func isGroup(_ path: String) -> Bool {
        guard path == "/" || exists(path), let o = try? open(path) else { return false }
        return H5Iget_type(o.id) == H5I_GROUP
    }

    /// The file address of the object at `path` (links followed): two paths name the same
    /// object when their addresses match. Nil when it cannot be opened.
    func address(_ path: String) -> UInt64? {
        guard path == "/" || exists(path), let o = try? open(path) else { return nil }
        var info = H5O_info_t()
        guard H5Oget_info2(o.id, &info, UInt32(H5O_INFO_BASIC)) >= 0 else { return nil }
        return UInt64(info.addr)
    }

    func isDataset(_ path: String) -> Bool {
        guard exists(path), let o = try? open(path) else { return false }
        return H5Iget_type(o.id) == H5I_DATASET
    }

    /// The names of a group's members, in libhdf5's name order.
    func children(_ path: String) throws(H5Failure) -> [String] {
        let g = H5Gopen2(file.id, path, dlk_H5P_DEFAULT())
        guard g >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("not a group")) }
        let group = H5ID(g, H5Gclose)
        var info = H5G_info_t()
        guard H5Gget_info(group.id, &info) >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot list the group")) }
        guard info.nlinks < 1_000_000 else { throw H5Failure(object: path, reason: "\(info.nlinks) members is too many") }
        var names: [String] = []
        for i in 0..<info.nlinks {
            let n = H5Lget_name_by_idx(group.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, dlk_H5P_DEFAULT())
            guard n >= 0, n < 65_536 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot read member \(i)")) }
            var buf = [CChar](repeating: 0, count: Int(n) + 1)
            _ = H5Lget_name_by_idx(group.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, buf.count, dlk_H5P_DEFAULT())
            names.append(String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    func hasAttribute(_ path: String, _ name: String) -> Bool {
        guard path == "/" || exists(path) else { return false }
        return H5Aexists_by_name(file.id, path, name, dlk_H5P_DEFAULT()) > 0
    }

    /// An attribute holding strings (fixed- or variable-length, scalar or 1-D). A numeric attribute
    /// with no elements (how h5py stores an empty list) reads as no strings.
    func strings(_ path: String, _ name: String) throws(H5Failure) -> [String] {
        let object = "\(path == "/" ? "" : path)@\(name)"
        let a = H5Aopen_by_name(file.id, path, name, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
        guard a >= 0 else { throw H5Failure(object: object, reason: HDF5.lastError("no such attribute")) }
        let attr = H5ID(a, H5Aclose)
        let t = H5Aget_type(attr.id)
        guard t >= 0 else { throw H5Failure(object: object, reason: HDF5.lastError("cannot read its type")) }
        let type = H5ID(t, H5Tclose)
        let s = H5Aget_space(attr.id)
        guard s >= 0 else { throw H5Failure(object: object, reason: HDF5.lastError("cannot read its shape")) }
        let space = H5ID(s, H5Sclose)
        let count = Int(H5Sget_simple_extent_npoints(space.id))
        guard count >= 0, count <= 10_000_000 else { throw H5Failure(object: object, reason: "\(count) elements is not a string list") }
        let cls = H5Tget_class(type.id)
        if cls != H5T_STRING {
            if count == 0 && (cls == H5T_FLOAT || cls == H5T_INTEGER) { return [] }
            throw H5Failure(object: object, reason: "expected strings, found a numeric attribute")
        }
        if count == 0 { return [] }
        let mem = H5ID(H5Tcopy(dlk_H5T_C_S1()), H5Tclose)
        _ = H5Tset_cset(mem.id, H5Tget_cset(type.id))
        if H5Tis_variable_str(type.id) > 0 {
            // libhdf5 copies each value's heap object by the object's size: check them first.
            guard let header = address(path) else {
                throw H5Failure(object: object, reason: "cannot locate the object header to check the strings")
            }
            try bytes.with { b throws(H5Failure) in
                try HDF5Check.variableLengthAttribute(b, layout, header: Int(clamping: header), name: name)
            }
            _ = H5Tset_size(mem.id, dlk_H5T_VARIABLE())
            var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attr.id, mem.id, &ptrs) >= 0 else {
                throw H5Failure(object: object, reason: HDF5.lastError("cannot read the strings"))
            }
            let out = ptrs.map { $0.map { String(cString: $0) } ?? "" }
            _ = H5Dvlen_reclaim(mem.id, space.id, dlk_H5P_DEFAULT(), &ptrs)
            return out
        }
        let width = H5Tget_size(type.id)
        guard width > 0, width < 1 << 20, count.multipliedReportingOverflow(by: width).overflow == false,
              count * width <= 1 << 28 else {
            throw H5Failure(object: object, reason: "string width \(width) is out of range")
        }
        _ = H5Tset_size(mem.id, width)
        _ = H5Tset_strpad(mem.id, H5T_STR_NULLPAD)
        var buf = [UInt8](repeating: 0, count: count * width)
        guard H5Aread(attr.id, mem.id, &buf) >= 0 else {
            throw H5Failure(object: object, reason: HDF5.lastError("cannot read the strings"))
        }
        return (0..<count).map { i in
            let slice = buf[(i * width)..<((i + 1) * width)]
            return String(decoding: slice.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// An optional string attribute: nil when it is missing or libhdf5 cannot read it, but a
    /// fault our structural check finds (the file is malformed) is thrown, not taken for absence.
    func optionalString(_ path: String, _ name: String) throws(H5Failure) -> String? {
        guard hasAttribute(path, name) else { return nil }
        do { return try string(path, name) } catch {
            if error.offset != nil { throw error }
            return nil
        }
    }

    /// A string attribute holding one string (the first when it holds a list).
    func string(_ path: String, _ name: String) throws(H5Failure) -> String {
        let all = try strings(path, name)
        guard let first = all.first else {
            throw H5Failure(object: "\(path)@\(name)", reason: "the attribute is empty")
        }
        return first
    }

    /// Reads a whole dataset. Floats and integers of every width, bool (h5py's enum) as bool.
    func dataset(_ path: String) throws(H5Failure) -> Tensor {
        let d = H5Dopen2(file.id, path, dlk_H5P_DEFAULT())
        guard d >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("not a dataset")) }
        let ds = H5ID(d, H5Dclose)
        let s = H5Dget_space(ds.id)
        guard s >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot read its shape")) }
        let space = H5ID(s, H5Sclose)
        let rank = Int(H5Sget_simple_extent_ndims(space.id))
        guard rank >= 0, rank <= 16 else { throw H5Failure(object: path, reason: "rank \(rank) is out of range") }
        var dims = [hsize_t](repeating: 0, count: rank)
        if rank > 0 { _ = H5Sget_simple_extent_dims(space.id, &dims, nil) }
        var shape: [Int] = []
        var count = 1
        for v in dims {
            guard v <= hsize_t(Int.max) else { throw H5Failure(object: path, reason: "dimension \(v) is out of range") }
            let (c, o) = count.multipliedReportingOverflow(by: Int(v))
            guard !o else { throw H5Failure(object: path, reason: "shape \(dims) overflows") }
            count = c
            shape.append(Int(v))
        }
        let t = H5Dget_type(ds.id)
        guard t >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot read its type")) }
        let type = H5ID(t, H5Tclose)
        let cls = H5Tget_class(type.id)
        let width = H5Tget_size(type.id)
        var dtype: DType
        let mem: H5ID
        switch cls {
        case H5T_FLOAT:
            switch width {
            case 2: dtype = .float16
            case 4: dtype = .float32
            case 8: dtype = .float64
            default: throw H5Failure(object: path, reason: "\(width)-byte floats are not supported")
            }
            mem = H5ID(H5Tcopy(type.id), H5Tclose)
            _ = H5Tset_order(mem.id, H5T_ORDER_LE)
        case H5T_INTEGER:
            let signed = H5Tget_sign(type.id) == H5T_SGN_2
            switch (width, signed) {
            case (1, true): dtype = .int8
            case (1, false): dtype = .uint8
            case (2, true): dtype = .int16
            case (2, false): dtype = .uint16
            case (4, true): dtype = .int32
            case (4, false): dtype = .uint32
            case (8, true): dtype = .int64
            case (8, false): dtype = .uint64
            default: throw H5Failure(object: path, reason: "\(width)-byte integers are not supported")
            }
            mem = H5ID(H5Tcopy(type.id), H5Tclose)
            _ = H5Tset_order(mem.id, H5T_ORDER_LE)
        case H5T_OPAQUE where width == 2:
            // Keras 3 stores bfloat16 as 2-byte opaque values marked by a dtype attribute (below).
            dtype = .uint16
            mem = H5ID(H5Tcopy(type.id), H5Tclose)
        case H5T_ENUM where width == 1:
            dtype = .bool
            mem = H5ID(H5Tcopy(dlk_H5T_NATIVE_INT8()), H5Tclose)
        default:
            throw H5Failure(object: path, reason: "datasets of HDF5 type class \(cls.rawValue) are not supported")
        }
        let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !o, bytes <= 1 << 36 else { throw H5Failure(object: path, reason: "\(count) elements is too large") }
        // The shape is the file's word: before allocating for it, the data must be there. Without
        // filters the dataset stores every byte; compressed data may expand, but not past what
        // deflate can give from the whole file (about 1032 to 1).
        let (fileBytes, o2) = count.multipliedReportingOverflow(by: width)
        let stored = Int(clamping: H5Dget_storage_size(ds.id))
        let dcpl = H5Dget_create_plist(ds.id)
        let filters = dcpl >= 0 ? Int(H5Pget_nfilters(dcpl)) : 0
        if dcpl >= 0 { _ = H5Pclose(dcpl) }
        let limit = filters == 0 ? stored : layout.end.multipliedReportingOverflow(by: 1032).partialValue
        guard !o2, fileBytes <= limit else {
            throw H5Failure(object: path, reason: "shape \(shape) needs \(o2 ? "too many" : String(fileBytes)) bytes but the dataset stores \(stored)")
        }
        var buf = [UInt8](repeating: 0, count: bytes)
        if count > 0 {
            let ok = buf.withUnsafeMutableBytes { b in
                H5Dread(ds.id, mem.id, dlk_H5S_ALL(), dlk_H5S_ALL(), dlk_H5P_DEFAULT(), b.baseAddress)
            }
            guard ok >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot read the data")) }
        }
        // Keras 3 stores bfloat16 variables as their 16-bit patterns with a dtype attribute.
        if let tag = try optionalString(path, "dtype"), tag == "bfloat16", dtype.byteWidth == 2 {
            dtype = .bfloat16
        } else if cls == H5T_OPAQUE {
            throw H5Failure(object: path, reason: "2-byte opaque data without dtype=\"bfloat16\" is not a tensor we read")
        }
        do { return try buf.withUnsafeBytes { b throws(TensorError) in try Tensor(dtype: dtype, shape: shape, bytes: b) } } catch {
            throw H5Failure(object: path, reason: "\(error)")
        }
    }
}

/// Builds an HDF5 file in memory (libhdf5's core driver, no backing file) and hands its bytes
/// out, so the caller writes them atomically. Create and use only inside `HDF5.locked`.
final class H5Writer {
    let file: H5ID

    init() throws(H5Failure) {
        let fapl = H5Pcreate(dlk_H5P_FILE_ACCESS())
        guard fapl >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot create file access properties")) }
        defer { _ = H5Pclose(fapl) }
        guard H5Pset_fapl_core(fapl, 1 << 16, false) >= 0 else {
            throw H5Failure(object: "/", reason: HDF5.lastError("cannot use the in-memory driver"))
        }
        let id = H5Fcreate("dlkit-memory-output.h5", dlk_H5F_ACC_TRUNC(), dlk_H5P_DEFAULT(), fapl)
        guard id >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot create the file")) }
        file = H5ID(id, H5Fclose)
    }

    /// Creates the group `path` and any missing parents.
    func group(_ path: String) throws(H5Failure) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if H5Lexists(file.id, prefix, dlk_H5P_DEFAULT()) > 0 { continue }
            let g = H5Gcreate2(file.id, prefix, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
            guard g >= 0 else { throw H5Failure(object: prefix, reason: HDF5.lastError("cannot create the group")) }
            _ = H5Gclose(g)
        }
    }

    func dataset(_ path: String, _ tensor: Tensor) throws(H5Failure) {
        let memType: hid_t
        var storedDType = tensor.dtype
        switch tensor.dtype {
        case .float32: memType = dlk_H5T_NATIVE_FLOAT()
        case .float64: memType = dlk_H5T_NATIVE_DOUBLE()
        case .int8: memType = dlk_H5T_NATIVE_INT8()
        case .uint8: memType = dlk_H5T_NATIVE_UINT8()
        case .int16: memType = dlk_H5T_NATIVE_INT16()
        case .uint16, .bfloat16: memType = dlk_H5T_NATIVE_UINT16(); storedDType = .uint16
        case .int32: memType = dlk_H5T_NATIVE_INT32()
        case .uint32: memType = dlk_H5T_NATIVE_UINT32()
        case .int64: memType = dlk_H5T_NATIVE_INT64()
        case .uint64: memType = dlk_H5T_NATIVE_UINT64()
        case .float16:
            // IEEE half as h5py and numpy write it: 16 bits, exponent 5, mantissa 10.
            let f = H5Tcopy(dlk_H5T_IEEE_F32LE())
            _ = H5Tset_fields(f, 15, 10, 5, 0, 10)
            _ = H5Tset_size(f, 2)
            _ = H5Tset_ebias(f, 15)
            memType = f
        default: throw H5Failure(object: path, reason: "\(tensor.dtype) tensors cannot be written to HDF5")
        }
        _ = storedDType
        defer { if tensor.dtype == .float16 { _ = H5Tclose(memType) } }
        var dims = tensor.shape.map { hsize_t($0) }
        let s = tensor.rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(tensor.rank), &dims, nil)
        guard s >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot create the dataspace")) }
        let space = H5ID(s, H5Sclose)
        let d = H5Dcreate2(file.id, path, memType, space.id, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
        guard d >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot create the dataset")) }
        let ds = H5ID(d, H5Dclose)
        if tensor.elementCount > 0 {
            let ok = tensor.withUnsafeBytes { b in
                H5Dwrite(ds.id, memType, dlk_H5S_ALL(), dlk_H5S_ALL(), dlk_H5P_DEFAULT(), b.baseAddress)
            }
            guard ok >= 0 else { throw H5Failure(object: path, reason: HDF5.lastError("cannot write the data")) }
        }
        if tensor.dtype == .bfloat16 { try setString(path, "dtype", "bfloat16") }
    }

    /// A string attribute: one variable-length UTF-8 string (h5py's default for `str`).
    func setString(_ path: String, _ name: String, _ value: String) throws(H5Failure) {
        let type = H5ID(H5Tcopy(dlk_H5T_C_S1()), H5Tclose)
        _ = H5Tset_size(type.id, dlk_H5T_VARIABLE())
        _ = H5Tset_cset(type.id, H5T_CSET_UTF8)
        let space = H5ID(H5Screate(H5S_SCALAR), H5Sclose)
        let a = H5Acreate_by_name(file.id, path, name, type.id, space.id, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
        guard a >= 0 else { throw H5Failure(object: "\(path)@\(name)", reason: HDF5.lastError("cannot create the attribute")) }
        let attr = H5ID(a, H5Aclose)
        let ok = value.withCString { p -> herr_t in
            var ptr: UnsafePointer<CChar>? = p
            return H5Awrite(attr.id, type.id, &ptr)
        }
        guard ok >= 0 else { throw H5Failure(object: "\(path)@\(name)", reason: HDF5.lastError("cannot write the attribute")) }
    }

    /// A list of strings as one fixed-length byte-string array (`|S<n>`, as Keras's legacy writer
    /// stores `layer_names` and `weight_names`); an empty list as a float64 array of shape (0,).
    func setStrings(_ path: String, _ name: String, _ values: [String]) throws(H5Failure) {
        let object = "\(path)@\(name)"
        if values.isEmpty {
            var dims: [hsize_t] = [0]
            let space = H5ID(H5Screate_simple(1, &dims, nil), H5Sclose)
            let a = H5Acreate_by_name(file.id, path, name, dlk_H5T_IEEE_F64LE(), space.id, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
            guard a >= 0 else { throw H5Failure(object: object, reason: HDF5.lastError("cannot create the attribute")) }
            _ = H5Aclose(a)
            return
        }
        let width = max(1, values.map { $0.utf8.count }.max() ?? 1)
        let type = H5ID(H5Tcopy(dlk_H5T_C_S1()), H5Tclose)
        _ = H5Tset_size(type.id, width)
        _ = H5Tset_strpad(type.id, H5T_STR_NULLPAD)
        var dims: [hsize_t] = [hsize_t(values.count)]
        let space = H5ID(H5Screate_simple(1, &dims, nil), H5Sclose)
        let a = H5Acreate_by_name(file.id, path, name, type.id, space.id, dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT(), dlk_H5P_DEFAULT())
        guard a >= 0 else { throw H5Failure(object: object, reason: HDF5.lastError("cannot create the attribute")) }
        let attr = H5ID(a, H5Aclose)
        var buf = [UInt8](repeating: 0, count: width * values.count)
        for (i, v) in values.enumerated() {
            for (j, c) in v.utf8.enumerated() { buf[i * width + j] = c }
        }
        guard H5Awrite(attr.id, type.id, &buf) >= 0 else {
            throw H5Failure(object: object, reason: HDF5.lastError("cannot write the attribute"))
        }
    }

    /// The finished file's bytes.
    func image() throws(H5Failure) -> [UInt8] {
        guard H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot flush")) }
        let n = H5Fget_file_image(file.id, nil, 0)
        guard n > 0 else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot take the file image")) }
        var bytes = [UInt8](repeating: 0, count: n)
        let got = bytes.withUnsafeMutableBytes { b in H5Fget_file_image(file.id, b.baseAddress, b.count) }
        guard got == n else { throw H5Failure(object: "/", reason: HDF5.lastError("cannot take the file image")) }
        return bytes
    }
}
