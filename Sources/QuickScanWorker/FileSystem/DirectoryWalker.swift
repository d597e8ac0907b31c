import Foundation
import Hashing

#if canImport(Glibc)
import Glibc
#endif

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
    public func walk(_ inbox: InboxConfiguration, excludingDirectories skip: Set<FileNode> = [],
                     visit: (_ entries: [InboxEntry], _ remainingAtThisDepth: Int) throws -> Void) rethrows -> [String] {
        var errors: [String] = []
        var root = inbox.path
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        // Every folder is opened below the root's descriptor without following a symlink: a
        // subfolder swapped for a symlink while we walk is an error, never a way out.
        let rootFD: Int32
        do {
            rootFD = try Beneath.openRoot(root)
        } catch {
            return ["cannot read folder \(root): \(String(cString: strerror(error.errno)))"]
        }
        defer { close(rootFD) }
        var level = [root]
        while !level.isEmpty {
            let folders = level
            let read = ParallelMap.map(count: folders.count, threads: min(threads, folders.count), makeWorker: {}) { [root] _, index in
                Self.read(folder: folders[index], root: root, rootFD: rootFD, inbox: inbox, skip: skip)
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
    public func walk(_ inbox: InboxConfiguration, excludingDirectories skip: Set<FileNode> = []) -> (entries: [InboxEntry], errors: [String]) {
        var all: [InboxEntry] = []
        let errors = walk(inbox, excludingDirectories: skip) { entries, _ in all.append(contentsOf: entries) }
        return (all, errors)
    }

    /// One folder's accepted entries and the subfolders to enter.
    static func read(folder dir: String, root: String, rootFD: Int32, inbox: InboxConfiguration, skip: Set<FileNode>)
        -> (entries: [InboxEntry], folders: [String], error: String?) {
        let relative = dir == root ? "" : String(dir.dropFirst(root.count + 1))
        let fd: Int32
        do {
            fd = try Beneath.openFolder(rootFD, relative, display: dir)
        } catch {
            return ([], [], "cannot read folder \(dir): \(String(cString: strerror(error.errno)))")
        }
        guard let handle = fdopendir(fd) else {
            close(fd)
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
                // Destinations inside an inbox are recognised by device and inode: a path string
                // differs with a trailing slash, `..` or a symlinked prefix, the folder does not.
                if inbox.recursive, valid, !skip.contains(st.node), !isDefaultIgnored(name) { folders.append(path) }
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
