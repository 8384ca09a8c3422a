import CProtos
import DLSupport
import DLTensor
import Foundation

/// Writes TensorBoard event files: TFRecord framing (each record: its length as a little-endian
/// UInt64, the masked CRC-32C of those 8 bytes, the serialised `Event`, the masked CRC-32C of
/// it) of `Event` messages holding scalar summaries, which `tensorboard --logdir` and its
/// `EventAccumulator` read.
///
/// The file is `events.out.tfevents.<seconds>.<host>.dlkit` in `directory`; the first event names
/// the format (`brain.Event:2`). Each scalar event is written through and flushed at once, so a
/// running tensorboard sees an epoch as soon as it ends and a killed run loses nothing written.
public final class TensorBoardWriter {
    public let path: String
    let handle: FileHandle

    public init(directory: String, clock: Date = Date()) throws(TrainingError) {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw .badSetting("cannot create the log directory \(directory): \(error.localizedDescription)")
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        path = (directory as NSString).appendingPathComponent("events.out.tfevents.\(Int(clock.timeIntervalSince1970)).\(host).dlkit")
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw .badSetting("cannot create the event file \(path)")
        }
        handle = h
        write(event(wallTime: clock.timeIntervalSince1970, step: 0, fileVersion: "brain.Event:2", scalars: [:]))
    }

    deinit { try? handle.close() }

    /// One event at `step` holding a scalar per tag (tags in sorted order).
    public func add(step: Int, scalars: [String: Double], wallTime: Date = Date()) {
        guard !scalars.isEmpty else { return }
        write(event(wallTime: wallTime.timeIntervalSince1970, step: step, fileVersion: nil, scalars: scalars))
    }

    /// The serialised `Event`.
    func event(wallTime: Double, step: Int, fileVersion: String?, scalars: [String: Double]) -> [UInt8] {
        let tags = scalars.keys.sorted()
        var cStrings: [UnsafeMutablePointer<CChar>?] = []
        defer { for p in cStrings { free(p) } }
        var values = [Tensorflow__Summary__Value](repeating: Tensorflow__Summary__Value(), count: tags.count)
        for (i, tag) in tags.enumerated() {
            tensorflow__summary__value__init(&values[i])
            let s = strdup(tag)
            cStrings.append(s)
            values[i].tag = s
            values[i].has_simple_value = 1
            values[i].simple_value = Float(scalars[tag] ?? 0)
        }
        return values.withUnsafeMutableBufferPointer { vbuf -> [UInt8] in
            var pointers: [UnsafeMutablePointer<Tensorflow__Summary__Value>?] = (0..<tags.count).map { i in vbuf.baseAddress.map { $0 + i } }
            var summary = Tensorflow__Summary()
            tensorflow__summary__init(&summary)
            var ev = Tensorflow__Event()
            tensorflow__event__init(&ev)
            ev.has_wall_time = 1
            ev.wall_time = wallTime
            ev.has_step = 1
            ev.step = Int64(step)
            if let fileVersion {
                let s = strdup(fileVersion)
                cStrings.append(s)
                ev.file_version = s
            }
            return pointers.withUnsafeMutableBufferPointer { pbuf -> [UInt8] in
                summary.n_value = tags.count
                summary.value = pbuf.baseAddress
                return withUnsafeMutablePointer(to: &summary) { sp -> [UInt8] in
                    if !tags.isEmpty { ev.summary = sp }
                    let n = tensorflow__event__get_packed_size(&ev)
                    var out = [UInt8](repeating: 0, count: n)
                    out.withUnsafeMutableBufferPointer { b in _ = tensorflow__event__pack(&ev, b.baseAddress) }
                    return out
                }
            }
        }
    }

    /// Frames one record and writes it through.
    func write(_ data: [UInt8]) {
        handle.write(Data(Self.record(data)))
        try? handle.synchronize()
    }

    /// A TFRecord: length, its masked CRC, the data, its masked CRC (all little-endian).
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        out += length
        out += withUnsafeBytes(of: CRC32C.mask(CRC32C.checksum(length)).littleEndian) { Array($0) }
        out += data
        out += withUnsafeBytes(of: CRC32C.mask(CRC32C.checksum(data)).littleEndian) { Array($0) }
        return out
    }
}
