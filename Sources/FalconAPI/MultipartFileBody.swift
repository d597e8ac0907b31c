import AsyncHTTPClient
import Foundation
import Hashing
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `multipart/form-data` body for UploadSampleV3 (and the QuickScan Pro upload) whose file
/// part streams from disk.
///
/// Form fields come first, then the file part: `sample` for Sample Uploads v3 (as FalconPy sends
/// it, reference §4.1), `file` for QuickScan Pro (quickscan-pro.md §2.1). The
/// file is read in chunks on NIO's blocking thread pool as the connection asks for more, so a
/// 256 MiB sample never sits in memory. The bytes sent are hashed on the way.
struct MultipartFileBody: Sendable {
    let boundary: String
    let prefix: [UInt8]
    let suffix: [UInt8]
    let path: String
    let fileSize: Int64
    let chunkSize: Int

    init(
        path: String, fileSize: Int64, fields: [(String, String)], fileName: String, filePartName: String = "sample",
        chunkSize: Int = 256 * 1024
    ) {
        let boundary = "quickscan-" + (0..<24).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        var head = ""
        for (name, value) in fields {
            head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(filePartName)\"; filename=\"\(Self.quoted(fileName))\"\r\n"
        head += "Content-Type: application/octet-stream\r\n\r\n"
        self.boundary = boundary
        self.prefix = Array(head.utf8)
        self.suffix = Array("\r\n--\(boundary)--\r\n".utf8)
        self.path = path
        self.fileSize = fileSize
        self.chunkSize = chunkSize
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
    var contentLength: Int64 { Int64(prefix.count) + fileSize + Int64(suffix.count) }

    /// Escapes a file name for a quoted multipart parameter (HTML's form-data rules).
    static func quoted(_ name: String) -> String {
        name.replacingOccurrences(of: "\"", with: "%22").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }

    /// A fresh body for one attempt; `digest` receives the SHA-256 of the file bytes sent.
    func makeBody(digest: NIOLockedValueBox<String?>) throws(FalconError) -> HTTPClientRequest.Body {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FalconError(kind: .localFile, message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        let source = FileChunkSource(fd: fd, path: path, size: fileSize, chunkSize: chunkSize, prefix: prefix, suffix: suffix, digest: digest)
        return .stream(source, length: .known(contentLength))
    }
}

/// Reads the file part chunk by chunk, framed by the multipart prefix and suffix.
final class FileChunkSource: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    /// Only touched under `state`'s lock, so the non-Sendable hasher never crosses threads unguarded.
    private struct State: @unchecked Sendable {
        var stage = 0  // 0 prefix, 1 file, 2 suffix, 3 done
        var offset: Int64 = 0
        var hasher: SHA256Hasher? = SHA256Hasher()
    }

    private let fd: Int32
    private let path: String
    private let size: Int64
    private let chunkSize: Int
    private let prefix: [UInt8]
    private let suffix: [UInt8]
    private let digest: NIOLockedValueBox<String?>
    private let state = NIOLockedValueBox(State())

    init(fd: Int32, path: String, size: Int64, chunkSize: Int, prefix: [UInt8], suffix: [UInt8], digest: NIOLockedValueBox<String?>) {
        self.fd = fd
        self.path = path
        self.size = size
        self.chunkSize = chunkSize
        self.prefix = prefix
        self.suffix = suffix
        self.digest = digest
    }

    deinit { close(fd) }

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: FileChunkSource
        mutating func next() async throws -> ByteBuffer? { try await source.nextChunk() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }

    private func nextChunk() async throws -> ByteBuffer? {
        let stage = state.withLockedValue { $0.stage }
        switch stage {
        case 0:
            state.withLockedValue { $0.stage = 1 }
            return ByteBuffer(bytes: prefix)
        case 1:
            let offset = state.withLockedValue { $0.offset }
            if offset >= size {
                let hex = state.withLockedValue { s -> String? in
                    s.stage = 2
                    defer { s.hasher = nil }
                    return s.hasher?.finalize()
                }
                digest.withLockedValue { $0 = hex }
                return ByteBuffer(bytes: suffix)
            }
            let want = Int(Swift.min(Int64(chunkSize), size - offset))
            let (fd, path) = (self.fd, self.path)
            let buffer = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                var buffer = ByteBufferAllocator().buffer(capacity: want)
                let got = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { ptr -> Int in
                    var n: Int
                    repeat { n = pread(fd, ptr.baseAddress, want, off_t(offset)) } while n < 0 && errno == EINTR
                    if n < 0 {
                        throw FalconError(kind: .localFile, message: "cannot read \(path): \(String(cString: strerror(errno)))")
                    }
                    return n
                }
                if got == 0 {
                    throw FalconError(kind: .localFile, message: "\(path) shrank while it was being uploaded")
                }
                return buffer
            }
            state.withLockedValue { s in
                s.offset += Int64(buffer.readableBytes)
                buffer.withUnsafeReadableBytes { s.hasher?.update($0) }
            }
            return buffer
        case 2:
            state.withLockedValue { $0.stage = 3 }
            return nil
        default:
            return nil
        }
    }
}
