import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Custody (Postfix's pickup model): each dropped file is copied into the worker's own spool
/// folder while it is hashed (`InboxHasher`), the copy is synced and recorded, and only then
/// is the original removed from the inbox. From then on the worker uploads and files its own
/// copy, which nobody else can change: not through a descriptor kept open, a shared mapping
/// or a hard link to the original. What is filed is exactly what was scanned.
///
/// Crash-safe: a copy not yet recorded is an orphan, removed at start (the original is still
/// in the inbox and is taken again); an original whose removal was not recorded is removed
/// at start if it is still the version copied.
struct SpoolCustodian: Sendable {
    let context: StageContext

    var folder: String { context.config.spoolFolder }

    /// Creates the spool (0700, owned by us) and refuses one that is a symlink or shared.
    func prepareSpool() throws {
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw ConfigurationError("spool: cannot create \(folder): \(String(cString: strerror(errno)))")
        }
        let st = try context.fs.lstat(folder)
        guard st.kind == .directory else { throw ConfigurationError("spool: \(folder) is not a folder (a symlink is not followed)") }
        guard st.owner == geteuid(), st.mode & 0o077 == 0 else {
            throw ConfigurationError("spool: \(folder) must belong to this user with mode 0700 (it is \(String(st.mode & 0o7777, radix: 8)), owner \(st.owner))")
        }
    }

    /// Removes from the inbox every original whose copy is recorded, when it is still the
    /// version copied; returns the paths now free. An original that cannot be removed is kept
    /// and the reason recorded (`original_note`; the copy is scanned and filed regardless).
    func removeOriginals() async throws -> [String] {
        let files = try await context.store.originalsToRemove()
        guard !files.isEmpty else { return [] }
        var removed: [Int64] = []
        var freed: [String] = []
        var kept: [(id: Int64, note: String)] = []
        var roots: [String: Int32] = [:]
        var folders: [String: Int32] = [:]
        defer {
            for fd in folders.values { close(fd) }
            for fd in roots.values { close(fd) }
        }
        for file in files {
            do {
                let root: Int32
                if let fd = roots[file.inbox] { root = fd } else { root = try Beneath.openRoot(file.inbox); roots[file.inbox] = root }
                let relative = String(file.path.dropFirst(file.inbox.count + 1))
                let parent = (relative as NSString).deletingLastPathComponent
                let name = (relative as NSString).lastPathComponent
                let dir: Int32
                if let fd = folders[parent] { dir = fd } else { dir = try Beneath.openFolder(root, parent, display: file.path); folders[parent] = dir }
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                    if errno == ENOENT { removed.append(file.id); freed.append(file.path); continue }
                    throw FileSystemError(.lstat, file.path, errno: errno)
                }
                // Only the version copied: a new file under the name is the watcher's.
                guard FileStat(st).identity == file.identity else { removed.append(file.id); continue }
                guard unlinkat(dir, name, 0) == 0 else { throw FileSystemError(.unlink, file.path, errno: errno) }
                removed.append(file.id)
                freed.append(file.path)
            } catch {
                let note = "the original stays in the inbox: \(error)"
                context.logger.warning("original kept in the inbox; its copy is scanned and filed", metadata: ["file.path": "\(file.path)", "error": "\(error)"])
                kept.append((file.id, note))
            }
        }
        for fd in folders.values { fsync(fd) }
        try await context.store.noteOriginals(removed: removed, kept: kept)
        return freed
    }

    /// Removes spool copies no pending file needs (a crash between the copy and its record).
    func removeOrphans() async throws {
        let inUse = try await context.store.spoolPathsInUse()
        // prepareSpool checked the folder; if it cannot be listed now, orphans wait for the next start.
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.hasSuffix(".spool") && !inUse.contains(folder + "/" + name) {
            unlink(folder + "/" + name)
        }
    }
}
