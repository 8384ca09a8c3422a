#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a file descriptor's bytes into lines, reading fixed-size chunks itself.
///
/// A line that fits in the current chunk is handed out in place (no copy); one that spans chunks
/// is gathered in a buffer. A line longer than `maxLineBytes` is never held whole: once it passes
/// the limit its bytes are counted and dropped up to the next newline, and the caller gets
/// `.tooLong(bytes)`. Blank lines (only spaces, tabs, CR) are skipped; a trailing CR is removed.
///
/// Every line handed out is followed in memory by a byte that is not part of it (the newline or a
/// NUL), which the request decoder relies on. When `stopFD` is given, the reader waits on it too
/// and reports `.stopped` as soon as it becomes readable, instead of reading further; lines
/// already read are still handed out first.
package final class LineReader {
    package enum Event {
        /// A line, valid until the next call of `next()`.
        case line(UnsafeRawBufferPointer)
        /// A line over the limit was skipped; this many bytes (without the newline).
        case tooLong(Int)
        case end
        case stopped
        case failed(String)
    }

    package let maxLineBytes: Int
    private let fd: Int32
    private let stopFD: Int32
    private let chunkSize: Int
    private let chunk: UnsafeMutablePointer<UInt8>
    private var start = 0
    private var end = 0
    private var carry: [UInt8] = []
    private var carryHandedOut = false
    private var skipping = false
    private var skipped = 0
    private var atEOF = false

    package init(fd: Int32, stopFD: Int32 = -1, maxLineBytes: Int, chunkSize: Int = 1 << 16) {
        self.fd = fd
        self.stopFD = stopFD
        self.maxLineBytes = max(1, maxLineBytes)
        self.chunkSize = max(16, chunkSize)
        chunk = .allocate(capacity: self.chunkSize + 1)
        chunk[self.chunkSize] = 0
    }

    deinit { chunk.deallocate() }

    package func next() -> Event {
        if carryHandedOut {
            carryHandedOut = false
            if carry.capacity > 1 << 20 { carry = [] } else { carry.removeAll(keepingCapacity: true) }
        }
        while true {
            if start < end {
                let rest = UnsafeMutableRawPointer(chunk + start)
                if let nl = memchr(rest, 0x0A, end - start) {
                    let lineEnd = start + (UnsafeRawPointer(nl) - UnsafeRawPointer(rest))
                    let lineStart = start
                    start = lineEnd + 1
                    if skipping {
                        skipping = false
                        let n = skipped + (lineEnd - lineStart)
                        skipped = 0
                        return .tooLong(n)
                    }
                    if carry.isEmpty {
                        let length = lineEnd - lineStart
                        if length > maxLineBytes { return .tooLong(length) }
                        if let line = trimmed(UnsafeRawBufferPointer(start: chunk + lineStart, count: length)) {
                            return .line(line)
                        }
                        continue
                    }
                    let length = carry.count + (lineEnd - lineStart)
                    if length > maxLineBytes {
                        carry = []
                        return .tooLong(length)
                    }
                    carry.append(contentsOf: UnsafeBufferPointer(start: chunk + lineStart, count: lineEnd - lineStart))
                    if let line = handOutCarry() { return .line(line) }
                    carry.removeAll(keepingCapacity: true)
                    carryHandedOut = false
                    continue
                }
                // No newline in what is left: keep it (or count it) and read on.
                let n = end - start
                if skipping {
                    skipped += n
                } else if carry.count + n > maxLineBytes {
                    skipping = true
                    skipped = carry.count + n
                    carry = []
                } else {
                    carry.append(contentsOf: UnsafeBufferPointer(start: chunk + start, count: n))
                }
                start = end
            }
            if atEOF {
                if skipping {
                    skipping = false
                    let n = skipped
                    skipped = 0
                    return .tooLong(n)
                }
                if !carry.isEmpty, let line = handOutCarry() { return .line(line) }
                carry = []
                carryHandedOut = false
                return .end
            }
            if let event = fill() { return event }
        }
    }

    /// What reading a fixed number of bytes came to.
    package enum BytesEvent: Equatable {
        case done
        /// The input ended after this many of the bytes.
        case end(Int)
        case stopped
        case failed(String)
    }

    /// Reads exactly `out.count` bytes following the last line into `out` (the binary tensor data
    /// after a request line). Invalidates the last line handed out.
    package func readBytes(into out: UnsafeMutableRawBufferPointer) -> BytesEvent {
        transfer(out.count) { offset, bytes in
            if let b = out.baseAddress, let s = bytes.baseAddress { (b + offset).copyMemory(from: s, byteCount: bytes.count) }
        }
    }

    /// The `count` bytes following the last line, in place, when they have been read already (no
    /// copy; valid, like the line, until the next call); nil when reading them would need more
    /// input (then use `readBytes`).
    package func takeBuffered(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, count <= end - start else { return nil }
        defer { start += count }
        return UnsafeRawBufferPointer(start: chunk + start, count: count)
    }

    /// Whether more input is at hand: bytes read but not handed out yet, or input waiting on the
    /// descriptor (a poll that does not block). False at the end of the input.
    package func inputPending() -> Bool {
        if start < end { return true }
        if atEOF { return false }
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        return poll(&fds, 1, 0) != 0  // an error counts as pending: no guess that the input is idle
    }

    /// Reads and drops `count` bytes following the last line.
    package func skipBytes(_ count: Int) -> BytesEvent { transfer(count) { _, _ in } }

    private func transfer(_ count: Int, _ take: (Int, UnsafeRawBufferPointer) -> Void) -> BytesEvent {
        var got = 0
        while got < count {
            if start < end {
                let n = min(end - start, count - got)
                take(got, UnsafeRawBufferPointer(start: chunk + start, count: n))
                start += n
                got += n
                continue
            }
            if atEOF { return .end(got) }
            if let event = fill() {
                switch event {
                case .stopped: return .stopped
                case .failed(let m): return .failed(m)
                default: return .end(got)
                }
            }
        }
        return .done
    }

    /// The gathered line, NUL-terminated in memory, or nil when it is blank.
    private func handOutCarry() -> UnsafeRawBufferPointer? {
        let length = carry.count
        carry.append(0)
        carryHandedOut = true
        let line = carry.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<length]) }
        return trimmed(line)
    }

    /// `line` without a trailing CR, or nil when only whitespace.
    private func trimmed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var n = line.count
        if n > 0 && line[n - 1] == 0x0D { n -= 1 }
        for b in line[0..<n] where b != 0x20 && b != 0x09 && b != 0x0D {
            return UnsafeRawBufferPointer(rebasing: line[0..<n])
        }
        return nil
    }

    /// Reads the next chunk; returns an event when reading cannot go on.
    private func fill() -> Event? {
        if stopFD >= 0 {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            while true {
                let r = poll(&fds, 2, -1)
                if r >= 0 { break }
                if errno != EINTR { return .failed("poll failed: \(String(cString: strerror(errno)))") }
            }
            if fds[1].revents != 0 { return .stopped }
        }
        while true {
            let n = read(fd, chunk, chunkSize)
            if n > 0 {
                start = 0
                end = n
                chunk[n] = 0
                return nil
            }
            if n == 0 {
                atEOF = true
                start = 0
                end = 0
                return nil
            }
            if errno == EINTR { continue }
            return .failed("reading standard input failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// Turns SIGTERM/SIGINT into bytes on a pipe, so a reader can wait for input and for a stop
/// request together (`poll`) without doing anything unsafe in a signal handler: the handler only
/// writes one byte to a non-blocking pipe. Call `install` on the thread that reads (it unblocks
/// the signals there; other threads keep whatever mask they were started with).
package enum SignalPipe {
    /// Installs the handler for `signals`; returns the pipe's read end (readable once a signal
    /// arrived), or nil when no pipe could be made.
    package static func install(_ signals: [Int32]) -> Int32? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        signalPipeWriteFD = fds[1]
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals {
            signal(s, signalPipeHandler)
            sigaddset(&set, s)
        }
        // A parent may have started us with these signals blocked (the mask is inherited), which
        // would leave them pending forever: unblock them for this thread, which then takes them.
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return fds[0]
    }

    /// The signal number written on the pipe `fd`, if one is there.
    package static func received(on fd: Int32) -> Int32? {
        var b: UInt8 = 0
        return read(fd, &b, 1) == 1 ? Int32(b) : nil
    }
}

nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

private let signalPipeHandler: @convention(c) (Int32) -> Void = { sig in
    let saved = errno
    var b = UInt8(truncatingIfNeeded: sig)
    _ = write(signalPipeWriteFD, &b, 1)
    errno = saved
}
