import Foundation
import Hashing

#if canImport(Glibc)
import Glibc
#endif

/// What `lstat` says about a path, without following symlinks.
public struct FileStat: Sendable, Equatable {
    public enum Kind: Sendable { case regular, directory, symlink, other }
    public var kind: Kind
    public var identity: FileIdentity
    public var mode: UInt32
    public var device: UInt64

    /// lstat(2) of `path`; nil with `errno` set when it fails.
    public static func of(_ path: String) -> FileStat? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return FileStat(st)
    }

    /// fstatat(2) of a raw entry name in an open folder, without following symlinks (works for
    /// names that are not valid UTF-8).
    static func of(directory: OpaquePointer, name: UnsafePointer<CChar>) -> FileStat? {
        var st = stat()
        guard fstatat(dirfd(directory), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        return FileStat(st)
    }

    init(_ st: stat) {
        let kind: Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let ctime = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        self.init(kind: kind, identity: FileIdentity(inode: UInt64(st.st_ino), size: Int64(st.st_size), mtimeNs: mtime, ctimeNs: ctime),
                  mode: UInt32(st.st_mode), device: UInt64(st.st_dev))
    }

    public init(kind: Kind, identity: FileIdentity, mode: UInt32, device: UInt64) {
        self.kind = kind
        self.identity = identity
        self.mode = mode
        self.device = device
    }
}

/// One entry found in an inbox.
public struct InboxEntry: Sendable {
    public var path: String
    public var inbox: String
    public var stat: FileStat
    /// False when the name is not valid UTF-8: `path` then shows it with U+FFFD and cannot be
    /// opened; the file is reported as not scanned and left in place.
    public var hasValidName: Bool = true
}

/// Walks inboxes with readdir + lstat: symlinks are never followed, hidden and partial files
/// are skipped unless an include glob names them, and folders are entered when recursive.
/// The folders of one depth are read on `threads` threads; the order of the result does not
/// depend on the thread count.
public struct DirectoryWalker: Sendable {
    public let threads: Int

    public init(threads: Int = 1) {
        self.threads = max(1, threads)
    }

    /// Hands `visit` every non-directory entry under `inbox` that passes its globs, one folder
    /// at a time, with the number of entries of that depth not visited yet (this folder's
    /// included; a hint for reserving room). Folders of one depth are read together, so a
    /// large inbox is never held whole. Returns the folders that could not be read.
    public func walk(_ inbox: InboxConfiguration, excludingDirectories skip: Set<String> = [],
                     visit: (_ entries: [InboxEntry], _ remainingAtThisDepth: Int) throws -> Void) rethrows -> [String] {
        var errors: [String] = []
        var root = inbox.path
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        var level = [inbox.path]
        while !level.isEmpty {
            let folders = level
            let read = ParallelMap.map(count: folders.count, threads: min(threads, folders.count), makeWorker: {}) { [root] _, index in
                Self.read(folder: folders[index], root: root, inbox: inbox, skip: skip)
            }
            level = []
            var remaining = read.reduce(0) { $0 + $1.entries.count }
            for folder in read {
                level.append(contentsOf: folder.folders)
                if let error = folder.error { errors.append(error) }
                if !folder.entries.isEmpty { try visit(folder.entries, remaining) }
                remaining -= folder.entries.count
            }
        }
        return errors
    }

    /// Every entry `walk` visits, in one array (tests and small inboxes).
    public func walk(_ inbox: InboxConfiguration, excludingDirectories skip: Set<String> = []) -> (entries: [InboxEntry], errors: [String]) {
        var all: [InboxEntry] = []
        let errors = walk(inbox, excludingDirectories: skip) { entries, _ in all.append(contentsOf: entries) }
        return (all, errors)
    }

    /// One folder's accepted entries and the subfolders to enter.
    static func read(folder dir: String, root: String, inbox: InboxConfiguration, skip: Set<String>) -> (entries: [InboxEntry], folders: [String], error: String?) {
        guard let handle = opendir(dir) else {
            return ([], [], "cannot read folder \(dir): \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        var entries: [InboxEntry] = []
        var folders: [String] = []
        while let ent = readdir(handle) {
            let (name, valid) = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { raw -> (String, Bool) in
                    if let name = String(validatingCString: raw) { return (name, true) }
                    return (String(cString: raw), false)
                }
            }
            if name == "." || name == ".." { continue }
            let path = dir == "/" ? "/" + name : dir + "/" + name
            let found = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { FileStat.of(directory: handle, name: $0) }
            }
            guard let st = found else { continue }  // vanished between readdir and stat
            if st.kind == .directory {
                if inbox.recursive, valid, !skip.contains(path), !isDefaultIgnored(name) { folders.append(path) }
                continue
            }
            guard accepts(name: name, relative: String(path.dropFirst(root.count + 1)), inbox: inbox) else { continue }
            entries.append(InboxEntry(path: path, inbox: root, stat: st, hasValidName: valid))
        }
        return (entries, folders, nil)
    }

    /// `InboxConfiguration.defaultIgnored` (`.*`, `*.part`, `*.tmp`, `*.crdownload`, `~$*`)
    /// checked without fnmatch: this runs for every entry of every poll.
    static func isDefaultIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix(".crdownload") || name.hasPrefix("~$")
    }

    /// Include and exclude globs match the name or the path relative to the inbox.
    static func accepts(name: String, relative: String, inbox: InboxConfiguration) -> Bool {
        if inbox.include == ["*"] && inbox.exclude.isEmpty { return !isDefaultIgnored(name) }  // the common case, no fnmatch
        func matches(_ glob: String) -> Bool { fnmatch(glob, name, 0) == 0 || fnmatch(glob, relative, FNM_PATHNAME) == 0 }
        let explicitlyIncluded = inbox.include.contains { $0 != "*" && matches($0) }
        if isDefaultIgnored(name) && !explicitlyIncluded { return false }
        guard inbox.include.contains(where: matches) else { return false }
        return !inbox.exclude.contains(where: matches)
    }
}

/// File moves that never overwrite and survive a crash (ARCHITECTURE.md: disposal).
public enum FileMover {
    /// `folder/relative`, with ` (1)`, ` (2)`… before the extension when the name is taken.
    public static func uniqueDestination(folder: String, relative: String) -> String {
        let base = (folder as NSString).appendingPathComponent(relative)
        guard FileStat.of(base) != nil else { return base }
        let dir = (base as NSString).deletingLastPathComponent
        let name = (base as NSString).lastPathComponent
        let ext = (name as NSString).pathExtension
        let stem = ext.isEmpty ? name : String(name.dropLast(ext.count + 1))
        var n = 1
        while true {
            let candidate = (dir as NSString).appendingPathComponent(ext.isEmpty ? "\(stem) (\(n))" : "\(stem) (\(n)).\(ext)")
            if FileStat.of(candidate) == nil { return candidate }
            n += 1
        }
    }

    /// Creates `folder` and its parents with `mode`.
    public static func makeFolders(_ folder: String, mode: mode_t) throws {
        var built = folder.hasPrefix("/") ? "" : "."
        for part in folder.split(separator: "/") {
            built += "/" + part
            if mkdir(built, mode) != 0 && errno != EEXIST {
                throw ConfigurationError("cannot create folder \(built): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Moves `source` to `destination` (which must not exist): rename, or copy + fsync + unlink
    /// across file systems. The copy goes to a temporary name first, so a crash never leaves a
    /// half-written file under the final name.
    public static func move(_ source: String, to destination: String, fileMode: mode_t?) throws {
        if link(source, destination) == 0 {
            // link + unlink never replaces an existing destination (rename would).
            CrashPoint.reach("linked")
            unlink(source)
        } else if errno == EXDEV || errno == EPERM || errno == ENOTSUP || errno == EMLINK {
            try copyAcrossDevices(source, to: destination)
            unlink(source)
        } else {
            throw ConfigurationError("cannot move \(source) to \(destination): \(String(cString: strerror(errno)))")
        }
        if let fileMode { chmod(destination, fileMode) }
    }

    static func copyAcrossDevices(_ source: String, to destination: String) throws {
        let temp = destination + ".quickscan-partial"
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else { throw ConfigurationError("cannot read \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ConfigurationError("cannot write \(temp): \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { close(output); unlink(temp); throw ConfigurationError("cannot read \(source): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            var written = 0
            while written < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, n - written) }
                if w < 0 && errno == EINTR { continue }
                if w < 0 { close(output); unlink(temp); throw ConfigurationError("cannot write \(temp): \(String(cString: strerror(errno)))") }
                written += w
            }
        }
        guard fsync(output) == 0, close(output) == 0 else { unlink(temp); throw ConfigurationError("cannot flush \(temp)") }
        guard link(temp, destination) == 0 else {
            let e = errno
            unlink(temp)
            throw ConfigurationError("cannot move \(source) to \(destination): \(String(cString: strerror(e)))")
        }
        unlink(temp)
    }
}
