import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A `FileSystem` that fails chosen calls with a chosen errno and passes the rest to the real
/// one; it also records every call made. Tests use it to fail any single step of a disposal.
public final class FaultInjectingFileSystem: FileSystem {
    /// One injected failure: `call` on a path containing `pathContains` fails with `errno`,
    /// the next `times` times it is made.
    public struct Fault: Sendable {
        public var call: FileSystemCall
        public var pathContains: String?
        public var errno: Int32
        public var times: Int

        public init(_ call: FileSystemCall, errno: Int32, pathContains: String? = nil, times: Int = 1) {
            self.call = call
            self.errno = errno
            self.pathContains = pathContains
            self.times = times
        }
    }

    private let base: any FileSystem
    private let state = Mutex<(faults: [Fault], calls: [String], injected: Int)>(([], [], 0))

    public init(base: any FileSystem = PosixFileSystem(), faults: [Fault] = []) {
        self.base = base
        state.withLock { $0.faults = faults }
    }

    /// Adds a fault.
    public func inject(_ fault: Fault) { state.withLock { $0.faults.append(fault) } }

    /// Every call made so far, as `call path`.
    public var calls: [String] { state.withLock { $0.calls } }

    /// How many faults fired.
    public var injectedCount: Int { state.withLock { $0.injected } }

    private func gate(_ call: FileSystemCall, _ path: String, _ destination: String? = nil) throws(FileSystemError) {
        let failure: Int32? = state.withLock { s in
            s.calls.append("\(call.rawValue) \(path)")
            for i in s.faults.indices where s.faults[i].call == call && s.faults[i].times > 0 {
                if let part = s.faults[i].pathContains, !path.contains(part), !(destination?.contains(part) ?? false) { continue }
                s.faults[i].times -= 1
                s.injected += 1
                return s.faults[i].errno
            }
            return nil
        }
        if let failure { throw FileSystemError(call, path, destination: destination, errno: failure) }
    }

    public func lstat(_ path: String) throws(FileSystemError) -> FileStat {
        try gate(.lstat, path)
        return try base.lstat(path)
    }

    public func link(_ source: String, _ destination: String) throws(FileSystemError) {
        try gate(.link, source, destination)
        try base.link(source, destination)
    }

    public func unlink(_ path: String) throws(FileSystemError) {
        try gate(.unlink, path)
        try base.unlink(path)
    }

    public func chmod(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        try gate(.chmod, path)
        try base.chmod(path, mode)
    }

    public func mkdir(_ path: String, _ mode: mode_t) throws(FileSystemError) {
        try gate(.mkdir, path)
        try base.mkdir(path, mode)
    }

    public func openForReading(_ path: String) throws(FileSystemError) -> Int32 {
        try gate(.open, path)
        return try base.openForReading(path)
    }

    public func createExclusive(_ path: String, _ mode: mode_t) throws(FileSystemError) -> Int32 {
        try gate(.create, path)
        return try base.createExclusive(path, mode)
    }

    public func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, path: String) throws(FileSystemError) -> Int {
        try gate(.read, path)
        return try base.read(fd, buffer, path: path)
    }

    public func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(FileSystemError) -> Int {
        try gate(.write, path)
        return try base.write(fd, buffer, path: path)
    }

    public func fsync(_ fd: Int32, path: String) throws(FileSystemError) {
        try gate(.fsync, path)
        try base.fsync(fd, path: path)
    }

    public func close(_ fd: Int32, path: String) throws(FileSystemError) {
        try gate(.close, path)
        try base.close(fd, path: path)
    }

    public func fsyncDirectory(_ path: String) throws(FileSystemError) {
        try gate(.fsyncDirectory, path)
        try base.fsyncDirectory(path)
    }
}
