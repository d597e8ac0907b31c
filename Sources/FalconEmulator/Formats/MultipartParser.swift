#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `multipart/form-data` body that cannot be read.
struct MultipartError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "malformed multipart body: \(reason)" }
}

/// The headers of one multipart part that matter for form data.
struct MultipartPartHeaders: Sendable, Equatable {
    /// `name` of `Content-Disposition: form-data`.
    var name: String?
    /// `filename` of `Content-Disposition`, present for file parts.
    var fileName: String?
    /// The part's `Content-Type`.
    var contentType: String?
}

/// Incremental `multipart/form-data` (RFC 7578) reader that never holds more than the chunk
/// fed plus one delimiter's worth of bytes, so a 256 MiB sample streams through.
struct MultipartParser {
    /// What the parser found, in order.
    enum Event {
        case partBegin(MultipartPartHeaders)
        case partData(ArraySlice<UInt8>)
        case partEnd
    }

    /// Where the parser is in the body.
    private enum State {
        case preamble
        case afterDelimiter
        case headers
        case body
        case epilogue
    }

    /// Longest header block accepted for one part.
    static let maxHeaderBytes = 16 * 1024

    private let dashBoundary: [UInt8]
    private let delimiter: [UInt8]
    private var state = State.preamble
    private var pending: [UInt8] = []
    private var start = 0

    init(boundary: String) {
        dashBoundary = Array("--\(boundary)".utf8)
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// True once the closing delimiter has been read.
    var isFinished: Bool {
        if case .epilogue = state { return true }
        return false
    }

    /// Feeds the next bytes of the body; `handle` receives the events they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws {
        if case .epilogue = state { return }
        if start > 0, start >= pending.count / 2 {
            pending.removeFirst(start)
            start = 0
        }
        pending.append(contentsOf: bytes)
        try process(handle)
    }

    /// Call at the end of the body: fails when the closing delimiter never came.
    func finish() throws {
        guard isFinished else { throw MultipartError(reason: "the body ended before the closing boundary") }
    }

    private mutating func process(_ handle: (Event) throws -> Void) throws {
        while true {
            switch state {
            case .preamble:
                if let found = find(dashBoundary, from: start) {
                    start = found + dashBoundary.count
                    state = .afterDelimiter
                } else {
                    if pending.count - start > 64 * 1024 { throw MultipartError(reason: "no opening boundary") }
                    return
                }
            case .afterDelimiter:
                guard pending.count - start >= 2 else { return }
                if pending[start] == UInt8(ascii: "-"), pending[start + 1] == UInt8(ascii: "-") {
                    state = .epilogue
                    pending.removeAll()
                    start = 0
                    return
                }
                // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
                var index = start
                while index < pending.count, pending[index] == 0x20 || pending[index] == 0x09 { index += 1 }
                guard pending.count - index >= 2 else { return }
                guard pending[index] == 0x0D, pending[index + 1] == 0x0A else {
                    throw MultipartError(reason: "boundary not followed by CRLF")
                }
                start = index + 2
                state = .headers
            case .headers:
                let headerEnd: Int
                let blockEnd: Int
                if pending.count - start >= 2, pending[start] == 0x0D, pending[start + 1] == 0x0A {
                    headerEnd = start
                    blockEnd = start + 2
                } else if let found = find([0x0D, 0x0A, 0x0D, 0x0A], from: start) {
                    headerEnd = found
                    blockEnd = found + 4
                } else {
                    if pending.count - start > Self.maxHeaderBytes { throw MultipartError(reason: "part headers too long") }
                    return
                }
                let headers = Self.parseHeaders(pending[start..<headerEnd])
                start = blockEnd
                state = .body
                try handle(.partBegin(headers))
            case .body:
                if let found = find(delimiter, from: start) {
                    if found > start { try handle(.partData(pending[start..<found])) }
                    try handle(.partEnd)
                    start = found + delimiter.count
                    state = .afterDelimiter
                } else {
                    // Keep a tail that could be the start of the delimiter.
                    let safeEnd = pending.count - (delimiter.count - 1)
                    if safeEnd > start {
                        try handle(.partData(pending[start..<safeEnd]))
                        start = safeEnd
                    }
                    return
                }
            case .epilogue:
                return
            }
        }
    }

    /// First index of `needle` in `pending[from...]`, scanning with memchr for its first byte.
    private func find(_ needle: [UInt8], from: Int) -> Int? {
        let count = pending.count
        guard count - from >= needle.count else { return nil }
        return pending.withUnsafeBufferPointer { haystack -> Int? in
            needle.withUnsafeBufferPointer { needleBuffer -> Int? in
                guard let base = haystack.baseAddress, let needleBase = needleBuffer.baseAddress else { return nil }
                var position = from
                let last = count - needle.count
                while position <= last {
                    guard let hit = memchr(base + position, Int32(needle[0]), last - position + 1) else { return nil }
                    let index = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + index, needleBase, needle.count) == 0 { return index }
                    position = index + 1
                }
                return nil
            }
        }
    }

    private static func parseHeaders(_ bytes: ArraySlice<UInt8>) -> MultipartPartHeaders {
        var headers = MultipartPartHeaders()
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\r\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased().trimmingSpaces
            let value = String(line[line.index(after: colon)...]).trimmingSpaces
            switch name {
            case "content-disposition":
                let pieces = MediaType.splitParameters(value)
                for piece in pieces.dropFirst() {
                    guard let equals = piece.firstIndex(of: "=") else { continue }
                    let key = String(piece[..<equals]).trimmingSpaces.lowercased()
                    var parameter = String(piece[piece.index(after: equals)...]).trimmingSpaces
                    if parameter.count >= 2, parameter.hasPrefix("\""), parameter.hasSuffix("\"") {
                        parameter = String(parameter.dropFirst().dropLast()).replacingBackslashEscapes
                    }
                    if key == "name" { headers.name = parameter }
                    if key == "filename" { headers.fileName = parameter }
                    if key == "filename*", headers.fileName == nil { headers.fileName = parameter }
                }
            case "content-type":
                headers.contentType = value
            default:
                break
            }
        }
        return headers
    }
}
