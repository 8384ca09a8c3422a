import DLSupport
import DLTensor

extension ServePipeline {
    /// Why reading requests stopped.
    public enum ReadEnding: Equatable, Sendable {
        /// The input ended (also in the middle of a request's binary data, which is answered).
        case end
        /// The reader's stop descriptor fired (a signal).
        case stopped
        /// The answers' output closed.
        case outputClosed
        /// Reading failed (message), or the binary framing was lost; either is an exit status 1.
        case failed(String)
    }

    /// Reads request lines, each with the binary tensor data its inputs declare, from `reader`
    /// and submits them until the input ends (see formats/serve-protocol.md, "Binary tensor data").
    /// Binary data over `maxBinaryBytes` is skipped as it arrives and the request answered with
    /// an error; a line whose sizes cannot be read is answered and ends reading.
    package func read(from reader: LineReader, maxBinaryBytes: Int) -> ReadEnding {
        let idle = { !reader.inputPending() }
        while true {
            switch reader.next() {
            case .line(let bytes):
                let (framing, scanned) = server.framing(line: bytes)
                switch framing {
                case .none:
                    guard submit(cost: bytes.count, inputIdle: idle, { prepare(bytes, scanned: scanned) }) else { return .outputClosed }
                case .bytes(let size):
                    if let ending = submitBinary(
                        line: bytes, scanned: scanned, size: size, reader: reader, limit: maxBinaryBytes, idle: idle
                    ) {
                        return ending
                    }
                case .broken(let why):
                    // Where the next request starts is unknown: answer, then stop reading.
                    let message = "\(why); the binary framing of the input is lost, no further requests are read"
                    _ = submit(cost: 0, { refusal(bytes, message) })
                    return .failed("binary framing lost (\(why)); stopped reading")
                }
            case .tooLong(let n):
                guard submit(cost: 0, { InferenceServer.lineTooLong(bytes: n, limit: reader.maxLineBytes) }) else { return .outputClosed }
            case .end: return .end
            case .stopped: return .stopped
            case .failed(let message): return .failed(message)
            }
        }
    }

    /// Reads the `size` bytes of binary data after `line` and submits the request; nil to go on
    /// reading, else why reading ends.
    private func submitBinary(
        line: UnsafeRawBufferPointer, scanned: ScannedRequest?, size: Int, reader: LineReader, limit: Int, idle: () -> Bool
    ) -> ReadEnding? {
        func ended(_ event: LineReader.BytesEvent, _ line: UnsafeRawBufferPointer) -> ReadEnding {
            switch event {
            case .done: return .end  // not reached: callers handle .done
            case .end(let got):
                let message = "the input ended after \(got) of the \(size) bytes of binary data the request declares"
                _ = submit(cost: 0, { refusal(line, message) })
                return .end
            case .stopped: return .stopped
            case .failed(let m): return .failed(m)
            }
        }
        guard size <= limit else {
            let job = refusal(line, "the request has \(size) bytes of binary data, over the server's binary-data limit of \(limit); it was skipped")
            let event = reader.skipBytes(size)
            guard event == .done else { return ended(event, line) }
            return submit(cost: 0, { job }) ? nil : .outputClosed
        }
        // Read with the line already (a small request): both stay in the reader's buffer.
        if let binary = reader.takeBuffered(size) {
            return submit(cost: line.count + size, inputIdle: idle, { prepare(line, scanned: scanned, binary: binary) }) ? nil : .outputClosed
        }
        // The line's bytes live in the reader's buffer, which reading the binary data reuses.
        var header = Array(line)
        header.append(0)
        var event = LineReader.BytesEvent.done
        let binary = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            event = reader.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
            count = size  // bytes are plain values; only read when `event` is .done (all written)
        }
        return header.withUnsafeBytes { h -> ReadEnding? in
            let copy = UnsafeRawBufferPointer(rebasing: h.dropLast())
            guard event == .done else { return ended(event, copy) }
            let ok = binary.withUnsafeBytes { b in
                submit(cost: copy.count + size, inputIdle: idle, { prepare(copy, scanned: scanned, binary: b) })
            }
            return ok ? nil : .outputClosed
        }
    }

    /// The parse stage for `line` and its binary data, reusing the framing's scan when there was one.
    private func prepare(
        _ line: UnsafeRawBufferPointer, scanned: ScannedRequest?,
        binary: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
    ) -> ServeJob {
        scanned.map { server.prepare(scanned: $0, line: line, binary: binary) } ?? server.prepare(line: line, binary: binary)
    }

    /// An error answer to a request whose binary data could not be taken (with its id when the
    /// line reads as a request).
    private func refusal(_ line: UnsafeRawBufferPointer, _ message: String) -> ServeJob {
        var id = JSON.null
        if case .answer(let a) = server.prepare(line: line), let i = a["id"] { id = i }
        return .answer(.object([("id", id), ("error", .string(message))]))
    }
}
