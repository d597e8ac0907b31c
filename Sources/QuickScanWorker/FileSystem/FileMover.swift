import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Moves that never overwrite, survive a crash at any step and never leave a claim behind
/// that is not true: `link` + `unlink`, or copy to a temporary name + `fsync` + `link` +
/// `unlink` across file systems. The destination's folder is fsynced before the source is
/// removed, so a power cut cannot lose both names. A step that fails undoes what was placed.
public struct FileMover: Sendable {
    public let fs: any FileSystem

    public init(fs: any FileSystem) {
        self.fs = fs
    }

    /// How a copy was placed at its destination.
    public enum Placement: Sendable, Equatable {
        /// A second name for the same inode (same file system).
        case linked
        /// A copy with its own inode (another file system, or linking was refused).
        case copied
    }

    /// A move that failed: the call that failed, and whether the destination was cleared
    /// again (`rolledBack`: the file is where it was and nothing was left at the destination).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var cause: FileSystemError
        public var rolledBack: Bool
        public var description: String {
            rolledBack ? cause.description : "\(cause.description) (and the copy placed at the destination could not be removed)"
        }
    }

    /// Longest file name most Linux file systems take (NAME_MAX).
    static let maxNameBytes = 255

    /// `folder/relative`, with ` (1)`, ` (2)`… before the extension when the name is taken; a
    /// name made too long by the suffix loses the end of its stem instead.
    public func uniqueDestination(folder: String, relative: String) -> String {
        let base = (folder as NSString).appendingPathComponent(relative)
        guard isFree(base) else { return candidate(base) }
        return base
    }

    private func isFree(_ path: String) -> Bool {
        do {
            _ = try fs.lstat(path)
            return false
        } catch {
            return error.errno == ENOENT
        }
    }

    private func candidate(_ base: String) -> String {
        let dir = (base as NSString).deletingLastPathComponent
        let name = (base as NSString).lastPathComponent
        let ext = (name as NSString).pathExtension
        let stem = ext.isEmpty ? name : String(name.dropLast(ext.count + 1))
        var n = 1
        while true {
            let suffix = ext.isEmpty ? " (\(n))" : " (\(n)).\(ext)"
            var trimmed = stem
            while trimmed.utf8.count + suffix.utf8.count > Self.maxNameBytes && !trimmed.isEmpty { trimmed.removeLast() }
            let path = (dir as NSString).appendingPathComponent(trimmed + suffix)
            if isFree(path) { return path }
            n += 1
        }
    }

    /// Creates `folder` and its parents with `mode`; an existing component must be a folder,
    /// not a symlink or a file.
    public func makeFolders(_ folder: String, mode: mode_t) throws(FileSystemError) {
        var built = folder.hasPrefix("/") ? "" : "."
        for part in folder.split(separator: "/") {
            built += "/" + part
            do {
                try fs.mkdir(built, mode)
            } catch where error.errno == EEXIST {
                let st = try fs.lstat(built)
                if st.kind != .directory { throw FileSystemError(.mkdir, built, errno: st.kind == .symlink ? ELOOP : ENOTDIR) }
            }
        }
    }

    /// Moves `source` to `destination` (which must not exist) and gives it `fileMode`. On
    /// failure the destination is cleared again when possible (see `Failure.rolledBack`).
    @discardableResult
    public func move(_ source: String, to destination: String, fileMode: mode_t?) throws(Failure) -> Placement {
        let placement: Placement
        do {
            placement = try place(source, at: destination, fileMode: fileMode)
        } catch {
            return try rethrowAfterRollback(error, destination: nil)
        }
        do {
            try fs.unlink(source)
        } catch {
            // The source stays (a sticky inbox refuses to let us remove another user's file):
            // the copy goes, so nothing claims the file was filed.
            return try rethrowAfterRollback(error, destination: destination)
        }
        CrashPoint.reach("source-removed")
        return placement
    }

    private func rethrowAfterRollback(_ error: FileSystemError, destination: String?) throws(Failure) -> Placement {
        guard let destination else { throw Failure(cause: error, rolledBack: true) }
        var rolledBack = true
        do {
            try fs.unlink(destination)
            // The copy is unlinked; a failed flush of that only risks a stray copy after a power
            // cut, which the resume recognises by its content. The original error is reported.
            try? fs.fsyncDirectory((destination as NSString).deletingLastPathComponent)
        } catch {
            rolledBack = false
        }
        throw Failure(cause: error, rolledBack: rolledBack)
    }

    /// Puts a second copy of `source` at `destination` with `fileMode` and makes it durable;
    /// the source is not touched (but for its link count). On failure nothing is left at
    /// `destination`.
    /// With `syncFolder: false` the caller fsyncs the destination's folder itself (once for a
    /// batch) before it removes the source.
    @discardableResult
    public func place(_ source: String, at destination: String, fileMode: mode_t?, syncFolder: Bool = true) throws(FileSystemError) -> Placement {
        let folder = (destination as NSString).deletingLastPathComponent
        var placement = Placement.linked
        do {
            try fs.link(source, destination)
            CrashPoint.reach("linked")
        } catch where [EXDEV, EPERM, ENOTSUP, EMLINK, EOPNOTSUPP].contains(error.errno) {
            // Another file system, or a hard link the kernel refuses (protected_hardlinks on a
            // file we do not own): copy.
            try copy(source, to: destination, fileMode: fileMode)
            placement = .copied
        }
        do {
            if let fileMode { try fs.chmod(destination, fileMode) }
            if syncFolder { try fs.fsyncDirectory(folder) }
        } catch {
            try? fs.unlink(destination)  // undoing our own placement; the error that matters is rethrown
            throw error
        }
        CrashPoint.reach("placed")
        return placement
    }

    /// The path of the copy being written for `destination`.
    public static func partialPath(for destination: String) -> String { destination + ".quickscan-partial" }

    /// Copies to `destination.quickscan-partial`, fsyncs it and links it to `destination`, so
    /// a crash never leaves a half-written file under the final name.
    func copy(_ source: String, to destination: String, fileMode: mode_t?) throws(FileSystemError) {
        let temp = Self.partialPath(for: destination)
        // A partial copy left by a crash is ours: start again.
        do { try fs.unlink(temp) } catch where error.errno == ENOENT {}
        let input = try fs.openForReading(source)
        defer { try? fs.close(input, path: source) }  // read-only: a failed close loses nothing
        var mode = fileMode ?? 0
        if fileMode == nil { mode = try fs.lstat(source).mode & 0o777 }
        let output = try fs.createExclusive(temp, mode)
        do {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n = try fs.read(input, buffer, path: source)
                if n == 0 { break }
                var written = 0
                while written < n {
                    written += try fs.write(output, UnsafeRawBufferPointer(rebasing: buffer[written..<n]), path: temp)
                }
            }
            try fs.fsync(output, path: temp)
        } catch {
            // Cleaning up a copy that already failed: the first error is the one reported; a
            // temporary left behind is removed by the next copy to this name.
            try? fs.close(output, path: temp)
            try? fs.unlink(temp)
            throw error
        }
        do {
            try fs.close(output, path: temp)
            CrashPoint.reach("copied")
            try fs.link(temp, destination)
        } catch {
            try? fs.unlink(temp)  // cleanup after the reported failure (see above)
            throw error
        }
        do {
            try fs.unlink(temp)
        } catch {
            try? fs.unlink(destination)  // undoing our own placement; the error that matters is rethrown
            throw error
        }
    }

    /// Whether the file at `path` holds exactly `bytes` of `other` (the resume of a copy
    /// interrupted after it was placed).
    /// Any error reading either file answers "not the same" (the caller then copies again), so
    /// the errors are dropped on purpose.
    public func sameContent(_ path: String, _ other: String) -> Bool {
        guard let a = try? fs.openForReading(path) else { return false }
        defer { try? fs.close(a, path: path) }
        guard let b = try? fs.openForReading(other) else { return false }
        defer { try? fs.close(b, path: other) }
        let size = 1 << 16
        let x = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { x.deallocate(); y.deallocate() }
        while true {
            guard let n = try? readFully(a, x, path), let m = try? readFully(b, y, other), n == m else { return false }
            if n == 0 { return true }
            if memcmp(x.baseAddress!, y.baseAddress!, n) != 0 { return false }
        }
    }

    private func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ path: String) throws(FileSystemError) -> Int {
        var total = 0
        while total < buffer.count {
            let n = try fs.read(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[total...]), path: path)
            if n == 0 { break }
            total += n
        }
        return total
    }
}
