import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Custody: each dropped file is taken into the worker's own spool folder while it is hashed
/// (`InboxHasher`): linked there under a read lease and made ours, or copied (Postfix's pickup
/// model); the batch is synced and recorded, and a copied file's original is removed from the
/// inbox only then. From then on the worker uploads and files its own spool file, which nobody
/// else can change: not through a descriptor kept open, a shared mapping or a hard link. What is
/// filed is exactly what was scanned.
///
/// Crash-safe: a file taken by link but not recorded is given back to the inbox at start (its
/// batch's journal says from where, with which owner and mode); a copy not yet recorded is an
/// orphan, removed at start (the original is still in the inbox and is taken again); an
/// original whose removal was not recorded is removed at start if it is still the version
/// copied.
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

    /// Removes spool copies no pending file needs (a crash between the copy and its record),
    /// except `keep` (files of journals that could not be settled yet).
    func removeOrphans(keeping keep: Set<String> = []) async throws {
        let inUse = try await context.store.spoolPathsInUse()
        // prepareSpool checked the folder; if it cannot be opened now, orphans wait for the next start.
        guard let spool = openSpool() else { return }
        defer { close(spool) }
        for name in Self.names(in: spool) where name.hasSuffix(".spool") && !inUse.contains(folder + "/" + name) && !keep.contains(name) {
            unlinkat(spool, name, 0)  // an orphan left by a failure is tried again at the next start
        }
    }

    /// The spool folder, opened without following a symlink (`Beneath.openOwnFolder`); every
    /// call below it is an *at() call on this descriptor. Nil when it cannot be opened.
    private func openSpool() -> Int32? {
        do {
            return try Beneath.openOwnFolder(folder)
        } catch {
            // Logged, not thrown: each caller says what waits for the next start.
            context.logger.warning("cannot open the spool", metadata: ["spool.path": "\(folder)", "error": "\(error)"])
            return nil
        }
    }

    /// The names in the folder open on `fd` (read through a duplicate, so `fd` stays open);
    /// empty when it cannot be read.
    static func names(in fd: Int32) -> [String] {
        let copy = dup(fd)
        guard copy >= 0 else { return [] }
        guard let handle = fdopendir(copy) else {
            close(copy)
            return []
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The contents of `name` below `fd`, opened without following a symlink; nil when it
    /// cannot be read.
    static func contents(of name: String, in fd: Int32) -> Data? {
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { return nil }
        return FileHandle(fileDescriptor: file, closeOnDealloc: true).readDataToEndOfFile()
    }

    // MARK: takes by link

    /// At start: every file a journal names that is in the spool but not recorded (a crash
    /// between its take and the batch's record) is given back to the inbox, with its owner
    /// and mode; then the journal goes. Returns the spool names of journals that could not be
    /// settled (kept, with their journals, for the next start).
    func settleJournals() async throws -> Set<String> {
        // prepareSpool checked the folder; if it cannot be opened now, journals wait for the next start.
        guard let spool = openSpool() else { return [] }
        defer { close(spool) }
        let names = Self.names(in: spool)
        let journals = names.filter { $0.hasSuffix(SpoolJournal.suffix) }
        guard !journals.isEmpty else { return [] }
        let inUse = try await context.store.spoolPathsInUse()
        let present = Set(names)
        var kept: Set<String> = []
        for file in journals {
            guard let data = Self.contents(of: file, in: spool) else { continue }
            let journal = SpoolJournal.decode(batch: String(file.dropLast(SpoolJournal.suffix.count)), data)
            var settled = true
            for entry in journal.entries {
                let name = journal.spoolName(entry.index)
                guard present.contains(name), !inUse.contains(folder + "/" + name) else { continue }
                do {
                    let placed = try SpoolJournal.giveBack(spool: spool, spoolPath: folder, name: name, to: entry)
                    context.logger.warning("file taken before a crash, not recorded: given back to the inbox", metadata: ["file.path": "\(placed)"])
                } catch {
                    settled = false
                    kept.insert(name)
                    context.logger.error("file taken before a crash cannot be given back yet; kept in the spool", metadata: [
                        "file.path": "\(entry.path)", "spool": "\(folder)/\(name)", "error": "\(error)"])
                }
            }
            if settled { unlinkat(spool, file, 0) }
        }
        return kept
    }

    /// Gives one file taken by link back to the inbox (its record was refused); false when
    /// that failed (the journal is then kept for the next start).
    func giveBack(spool path: String, _ entry: InboxEntry) -> Bool {
        guard let spool = openSpool() else { return false }
        defer { close(spool) }
        let back = SpoolJournal.Entry(index: 0, inbox: entry.inbox, path: entry.path, owner: entry.stat.owner, group: entry.stat.group, mode: entry.stat.mode)
        do {
            try SpoolJournal.giveBack(spool: spool, spoolPath: folder, name: (path as NSString).lastPathComponent, to: back)
            return true
        } catch {
            context.logger.error("file taken but not recorded cannot be given back yet; kept in the spool", metadata: [
                "file.path": "\(entry.path)", "error": "\(error)"])
            return false
        }
    }

    /// Removes a batch's journal once its takes are recorded (its file, no sync: a journal
    /// that comes back after a power cut names only recorded or absent files). `keep`: a take
    /// could not be given back; the next start settles it.
    func removeJournal(_ journal: SpoolJournal, keep: Bool) {
        guard !keep else {
            context.logger.error("a file taken into custody waits in the spool until the next start", metadata: ["journal": "\(folder)/\(journal.fileName)"])
            return
        }
        guard let spool = openSpool() else { return }  // a journal left behind is settled at the next start
        defer { close(spool) }
        unlinkat(spool, journal.fileName, 0)  // the same: settled (its files are recorded) at the next start
    }
}
