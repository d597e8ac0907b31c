#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why hashing a file failed: carries the path and the OS error, for a human.
public struct FileHashError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let operation: String
    public let errno: Int32

    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "cannot \(operation) \(path): \(String(cString: strerror(errno)))"
    }
}

/// The result of hashing one file: its digest and the number of bytes read.
public struct FileDigest: Sendable, Equatable {
    public let sha256: String
    public let size: Int64
}

/// Streams a file through SHA-256 with large sequential reads; not thread-safe (one per thread).
public final class FileHasher {
    public static let defaultChunkSize = 1 << 20
    private let hasher = SHA256Hasher()
    private let buffer: UnsafeMutableRawBufferPointer

    public init(chunkSize: Int = FileHasher.defaultChunkSize) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// Hashes the file at `path`, reading it in chunks. Symlinks are refused (O_NOFOLLOW) unless
    /// `followSymlinks` is set: the pipeline never follows them, `quickscan hash` does.
    public func hashFile(atPath path: String, followSymlinks: Bool = false) throws(FileHashError) -> FileDigest {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { throw FileHashError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        return try hash(fd: fd, path: path)
    }

    /// Files smaller than this get no readahead hint: it cannot help a read or two, and it is
    /// one system call per file (100,000 of them in an ingest of 4 KiB files).
    public static let sequentialHintBytes: Int64 = 1 << 20

    /// Hashes an open file from its current offset; with `copyTo`, writes every byte read
    /// there too, so the copy holds exactly the bytes hashed (one pass: custody). `path` only
    /// names the file in errors. `size`: the size the caller found with `fstat`, if it did.
    public func hash(fd: Int32, path: String, size: Int64? = nil, copyTo output: Int32? = nil, copyPath: String = "") throws(FileHashError) -> FileDigest {
        #if os(Linux)
        if (size ?? Self.sequentialHintBytes) >= Self.sequentialHintBytes {
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        }
        #endif
        hasher.reset()
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileHashError(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            if let output {
                var written = 0
                while written < n {
                    let w = write(output, buffer.baseAddress! + written, n - written)
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw FileHashError(path: copyPath, operation: "write", errno: errno)
                    }
                    written += w
                }
            }
            total += Int64(n)
        }
        return FileDigest(sha256: hasher.finalize(), size: total)
    }
}
