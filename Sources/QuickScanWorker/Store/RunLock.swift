import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a database (flock on `DATABASE.lock`), so cron runs and a watcher never
/// process the same database twice. The kernel drops it when the holder dies, so a lock left
/// by a killed run is simply taken over.
public final class RunLock: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    /// Who holds the lock, as written by the holder.
    public struct Held: Error, CustomStringConvertible {
        public let path: String
        public let holder: String
        public var description: String { "another run holds the database lock \(path): \(holder)" }
    }

    public init(databasePath: String) throws {
        path = databasePath + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "unknown holder"
            throw Held(path: path, holder: holder)
        }
        let since = ISO8601DateFormatter().string(from: Date())
        let text = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(since)\n"
        ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}
