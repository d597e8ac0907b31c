import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Custody by link: before a batch's files are linked into the spool (and their inbox names
/// removed), a journal names, for every file of the batch that may be linked, the spool name
/// it would get and where it came from (inbox, path, owner, group, mode). It is on disk
/// (fsynced, and the spool folder too) before the first inbox name is removed, and removed once
/// the batch is recorded. After a crash in between, a linked file nobody recorded is given back:
/// under its inbox name, with its owner and mode (see `SpoolJournal.giveBack`).
struct SpoolJournal: Sendable {
    struct Entry: Sendable, Equatable {
        /// The file's index in its batch: its spool name is `BATCH-INDEX.spool`.
        var index: Int
        var inbox: String
        var path: String
        var owner: UInt32
        var group: UInt32
        var mode: UInt32
    }

    /// The batch's id: the journal is `BATCH.journal`, its files `BATCH-INDEX.spool`.
    var batch: String
    var entries: [Entry]

    static let suffix = ".journal"
    static let header = "quickscan spool journal 1"

    var fileName: String { batch + Self.suffix }
    func spoolName(_ index: Int) -> String { Self.spoolName(batch: batch, index) }
    static func spoolName(batch: String, _ index: Int) -> String { "\(batch)-\(index).spool" }

    // MARK: encoding (one line per entry, tab-separated; `\`, tab and newline escaped)

    func encoded() -> [UInt8] {
        var out = Array((Self.header + "\n").utf8)
        out.reserveCapacity(out.count + entries.count * 120)
        for e in entries {
            out += Array("\(e.index)\t\(e.owner)\t\(e.group)\t\(e.mode)\t".utf8)
            Self.escape(e.inbox, into: &out)
            out.append(0x09)
            Self.escape(e.path, into: &out)
            out.append(0x0A)
        }
        return out
    }

    private static func escape(_ s: String, into out: inout [UInt8]) {
        for byte in s.utf8 {
            switch byte {
            case 0x5C: out += [0x5C, 0x5C]
            case 0x09: out += [0x5C, 0x74]
            case 0x0A: out += [0x5C, 0x6E]
            default: out.append(byte)
            }
        }
    }

    private static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                out.append(c == "t" ? "\t" : c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Parses a journal; a line cut short (a crash while it was written, before any file of
    /// the batch was touched) ends the list.
    static func decode(batch: String, _ data: Data) -> SpoolJournal {
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(header) else { return SpoolJournal(batch: batch, entries: []) }
        lines.removeFirst()
        if !lines.isEmpty { lines.removeLast() }  // after the last newline: empty, or a line cut short
        var entries: [Entry] = []
        for line in lines {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 6, let index = Int(f[0]), let owner = UInt32(f[1]), let group = UInt32(f[2]),
                  let mode = UInt32(f[3]) else { break }
            entries.append(Entry(index: index, inbox: unescape(f[4]), path: unescape(f[5]), owner: owner, group: group, mode: mode))
        }
        return SpoolJournal(batch: batch, entries: entries)
    }

    /// Writes the journal into the spool and makes it durable (the file, then the folder).
    func write(spool: Int32, spoolPath: String) throws(FileSystemError) {
        let path = spoolPath + "/" + fileName
        let fd = openat(spool, fileName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError(.open, path, errno: errno) }
        let bytes = encoded()
        var failure: FileSystemError?
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = FileSystemError(.write, path, errno: errno)
                    return
                }
                written += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = FileSystemError(.fsync, path, errno: errno) }
        close(fd)
        if failure == nil, fsync(spool) != 0 { failure = FileSystemError(.fsync, spoolPath, errno: errno) }
        if let failure {
            unlinkat(spool, fileName, 0)  // no file of the batch was touched: the journal is not needed
            throw failure
        }
    }

    // MARK: giving a file back

    /// Gives the linked spool file `name` back to the inbox it came from: its owner and mode
    /// restored, under its own name again, or `NAME.quickscan-restored[-N]` when a new file took
    /// the name meanwhile, or in the inbox's top folder when its folder is gone; then the spool
    /// name is removed. When the inbox name still holds the file (a crash between the link and
    /// the removal of the inbox name), only the spool name goes. Every path below the inbox is
    /// opened without following symlinks. Returns where the file is now.
    @discardableResult
    static func giveBack(spool: Int32, spoolPath: String, name: String, to entry: Entry) throws(FileSystemError) -> String {
        let fd = openat(spool, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(.open, spoolPath + "/" + name, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileSystemError(.lstat, spoolPath + "/" + name, errno: errno) }
        let root = try Beneath.openRoot(entry.inbox)
        defer { close(root) }
        let relative = String(entry.path.dropFirst(entry.inbox.count + 1))
        let parent = (relative as NSString).deletingLastPathComponent
        let base = (relative as NSString).lastPathComponent
        let dir: Int32
        var folder = parent.isEmpty ? entry.inbox : entry.inbox + "/" + parent
        do {
            dir = try Beneath.openFolder(root, parent, display: entry.path)
        } catch where [ENOENT, ENOTDIR, ELOOP].contains(error.errno) {
            // Its folder is gone (or is no longer a folder): the inbox's top folder takes it.
            dir = try Beneath.openFolder(root, "", display: entry.inbox)
            folder = entry.inbox
        }
        defer { close(dir) }
        // Owner first (a chown clears set-id bits), then the mode as it was.
        if st.st_uid != entry.owner || st.st_gid != entry.group, fchown(fd, entry.owner, entry.group) != 0 {
            throw FileSystemError(.chmod, entry.path, errno: errno)
        }
        if fchmod(fd, mode_t(entry.mode & 0o7777)) != 0 { throw FileSystemError(.chmod, entry.path, errno: errno) }
        var placed: String?
        var now = stat()
        if fstatat(dir, base, &now, AT_SYMLINK_NOFOLLOW) == 0, now.st_dev == st.st_dev, now.st_ino == st.st_ino {
            placed = base
        } else {
            for attempt in 0..<100 {
                let candidate = attempt == 0 ? base : attempt == 1 ? base + ".quickscan-restored" : base + ".quickscan-restored-\(attempt)"
                if linkat(spool, name, dir, candidate, 0) == 0 { placed = candidate; break }
                if errno != EEXIST { throw FileSystemError(.link, spoolPath + "/" + name, destination: folder + "/" + candidate, errno: errno) }
            }
        }
        guard let placed else { throw FileSystemError(.link, spoolPath + "/" + name, destination: folder + "/" + base, errno: EEXIST) }
        if fsync(dir) != 0 { throw FileSystemError(.fsyncDirectory, folder, errno: errno) }
        if unlinkat(spool, name, 0) != 0 { throw FileSystemError(.unlink, spoolPath + "/" + name, errno: errno) }
        return folder + "/" + placed
    }
}
