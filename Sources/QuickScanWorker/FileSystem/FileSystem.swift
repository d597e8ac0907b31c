import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The file system calls the stages make, as a capability: `PosixFileSystem` makes them, and a
/// test wraps it in `FaultInjectingFileSystem` to fail any single call. Every call reports
/// failure by throwing a `FileSystemError` that names the call, the path and the errno; no
/// caller ignores a result.
public protocol FileSystem: Sendable {
    /// lstat(2): never follows a symlink.
    func lstat(_ path: String) throws(FileSystemError) -> FileStat
    /// link(2): never replaces an existing `destination`.
    func link(_ source: String, _ destination: String) throws(FileSystemError)
    func unlink(_ path: String) throws(FileSystemError)
    func chmod(_ path: String, _ mode: mode_t) throws(FileSystemError)
    /// mkdir(2) of one folder; EEXIST is an error the caller may accept.
    func mkdir(_ path: String, _ mode: mode_t) throws(FileSystemError)
    /// open(2) read-only, without following a symlink in the last component.
    func openForReading(_ path: String) throws(FileSystemError) -> Int32
    /// open(2) with `O_CREAT | O_EXCL | O_NOFOLLOW`, write-only.
    func createExclusive(_ path: String, _ mode: mode_t) throws(FileSystemError) -> Int32
    func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, path: String) throws(FileSystemError) -> Int
    func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(FileSystemError) -> Int
    func fsync(_ fd: Int32, path: String) throws(FileSystemError)
    func close(_ fd: Int32, path: String) throws(FileSystemError)
    /// Opens a folder and fsyncs it, so a link, unlink or rename in it survives a power cut.
    func fsyncDirectory(_ path: String) throws(FileSystemError)
}

/// The calls of `FileSystem`, by name (fault injection, error messages).
public enum FileSystemCall: String, Sendable, CaseIterable {
    case lstat, link, unlink, chmod, mkdir, open, create, read, write, fsync, close, fsyncDirectory
}

/// A failed file system call: which call, on which path, and the errno.
public struct FileSystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public var call: FileSystemCall
    public var path: String
    public var destination: String?
    public var errno: Int32

    public init(_ call: FileSystemCall, _ path: String, destination: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.destination = destination
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        switch call {
        case .link: return "cannot link \(path) to \(destination ?? "?"): \(reason)"
        case .unlink: return "cannot remove \(path): \(reason)"
        case .chmod: return "cannot change the mode of \(path): \(reason)"
        case .mkdir: return "cannot create folder \(path): \(reason)"
        case .open: return "cannot open \(path): \(reason)"
        case .create: return "cannot create \(path): \(reason)"
        case .read: return "cannot read \(path): \(reason)"
        case .write: return "cannot write \(path): \(reason)"
        case .fsync, .fsyncDirectory: return "cannot flush \(path) to disk: \(reason)"
        case .close: return "cannot close \(path): \(reason)"
        case .lstat: return "cannot stat \(path): \(reason)"
        }
    }
}

/// The real calls, retried on EINTR.
public struct PosixFileSystem: FileSystem {
    public init() {}

    private func check(_ result: Int32, _ call: FileSystemCall, _ path: String, _ destination: String? = nil) throws(FileSystemError) {
        if result != 0 { throw FileSystemError(call, path, destination: destination, errno: errno) }
    }

    public func lstat(_ path: String) throws(FileSystemError) -> FileStat {
        var st = stat()
        try check(Glibc.lstat(path, &st), .lstat, path)
        return FileStat(st)
    }

    public func link(_ source: String, _ destination: String) throws(FileSystemError) {
        try check(Glibc.link(source, destination), .link, source, destination)
    }

    public func unlink(_ path: String) throws(FileSystemError) {
        try check(Glibc.unlink(path), .unlink, path)
    }

    public func chmod(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        try check(Glibc.chmod(path, mode), .chmod, path)
    }

    public func mkdir(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        try check(Glibc.mkdir(path, mode), .mkdir, path)
    }

    public func openForReading(_ path: String) throws(FileSystemError) -> Int32 {
        while true {
            let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 { return fd }
            if errno != EINTR { throw FileSystemError(.open, path, errno: errno) }
        }
    }

    public func createExclusive(_ path: String, _ mode: mode_t) throws(FileSystemError) -> Int32 {
        while true {
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw FileSystemError(.create, path, errno: errno) }
        }
    }

    public func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, path: String) throws(FileSystemError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw FileSystemError(.read, path, errno: errno) }
        }
    }

    public func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(FileSystemError) -> Int {
        while true {
            let n = Glibc.write(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw FileSystemError(.write, path, errno: errno) }
        }
    }

    public func fsync(_ fd: Int32, path: String) throws(FileSystemError) {
        try check(Glibc.fsync(fd), .fsync, path)
    }

    public func close(_ fd: Int32, path: String) throws(FileSystemError) {
        // close(2) is not retried on EINTR on Linux: the descriptor is released either way.
        try check(Glibc.close(fd), .close, path)
    }

    public func fsyncDirectory(_ path: String) throws(FileSystemError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(.fsyncDirectory, path, errno: errno) }
        defer { Glibc.close(fd) }
        try check(Glibc.fsync(fd), .fsyncDirectory, path)
    }
}
