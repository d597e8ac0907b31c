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

/// The real calls, retried on EINTR. A path below one of `roots` (the inboxes, the
/// destination folders, the spool) is never walked by name: its parent folder is opened
/// below the root's descriptor without following a symlink (`Beneath`), and the call is the
/// `*at()` form on that descriptor (`fstatat`, `linkat`, `unlinkat`, `mkdirat`, `openat`), so
/// a component swapped for a symlink by someone racing the worker leads nowhere. The roots
/// themselves are configured paths, trusted like the config.
public struct PosixFileSystem: FileSystem {
    /// Folders below which paths are resolved through descriptors, longest first.
    public let roots: [String]

    public init(roots: [String] = []) {
        self.roots = roots.map(WorkerConfiguration.normalize).sorted { $0.count > $1.count }
    }

    /// `path`'s parent folder as a descriptor and its last name: opened below the root that
    /// holds the path, or `AT_FDCWD` and the whole path outside every root.
    private struct Parent {
        let fd: Int32
        let name: String
        func close() { if fd != AT_FDCWD { Glibc.close(fd) } }
    }

    private func parent(_ path: String, _ call: FileSystemCall) throws(FileSystemError) -> Parent {
        guard let root = roots.first(where: { path.hasPrefix($0 + "/") }) else { return Parent(fd: AT_FDCWD, name: path) }
        let relative = String(path.dropFirst(root.count + 1))
        // The root is a configured folder (an inbox, a destination or the spool), opened by its
        // normalised path as configured (it may be a symlink the operator made); below it every
        // component is resolved through descriptors.
        let rootFD = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw FileSystemError(call, path, errno: errno) }
        defer { Glibc.close(rootFD) }
        let slash = relative.lastIndex(of: "/")
        let folder = slash.map { String(relative[..<$0]) } ?? ""
        let name = slash.map { String(relative[relative.index(after: $0)...]) } ?? relative
        do {
            let dir = try Beneath.openFolder(rootFD, folder, display: path)
            return Parent(fd: dir, name: name)
        } catch {
            throw FileSystemError(call, path, errno: error.errno)
        }
    }

    private func at<T>(_ path: String, _ call: FileSystemCall, _ body: (Int32, String) -> T) throws(FileSystemError) -> T {
        let p = try parent(path, call)
        defer { p.close() }
        return body(p.fd, p.name)
    }

    private func check(_ result: Int32, _ call: FileSystemCall, _ path: String, _ destination: String? = nil) throws(FileSystemError) {
        if result != 0 { throw FileSystemError(call, path, destination: destination, errno: errno) }
    }

    public func lstat(_ path: String) throws(FileSystemError) -> FileStat {
        var st = stat()
        try check(try at(path, .lstat) { fstatat($0, $1, &st, AT_SYMLINK_NOFOLLOW) }, .lstat, path)
        return FileStat(st)
    }

    public func link(_ source: String, _ destination: String) throws(FileSystemError) {
        let from = try parent(source, .link)
        defer { from.close() }
        let to = try parent(destination, .link)
        defer { to.close() }
        try check(linkat(from.fd, from.name, to.fd, to.name, 0), .link, source, destination)
    }

    public func unlink(_ path: String) throws(FileSystemError) {
        try check(try at(path, .unlink) { unlinkat($0, $1, 0) }, .unlink, path)
    }

    public func chmod(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        // fchmodat follows a symlink in the last name: the file is opened without following
        // one, then changed through its descriptor.
        let fd = try openAt(path, O_RDONLY | O_NONBLOCK, call: .chmod)
        defer { Glibc.close(fd) }
        try check(fchmod(fd, mode), .chmod, path)
    }

    public func mkdir(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        try check(try at(path, .mkdir) { mkdirat($0, $1, mode) }, .mkdir, path)
    }

    private func openAt(_ path: String, _ flags: Int32, mode: mode_t = 0, call: FileSystemCall) throws(FileSystemError) -> Int32 {
        while true {
            let fd = try at(path, call) { openat($0, $1, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
            if fd >= 0 { return fd }
            if errno != EINTR { throw FileSystemError(call, path, errno: errno) }
        }
    }

    public func openForReading(_ path: String) throws(FileSystemError) -> Int32 {
        try openAt(path, O_RDONLY, call: .open)
    }

    public func createExclusive(_ path: String, _ mode: mode_t) throws(FileSystemError) -> Int32 {
        try openAt(path, O_WRONLY | O_CREAT | O_EXCL, mode: mode, call: .create)
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
        let fd = try openAt(path, O_RDONLY | O_DIRECTORY, call: .fsyncDirectory)
        defer { Glibc.close(fd) }
        try check(Glibc.fsync(fd), .fsyncDirectory, path)
    }
}
