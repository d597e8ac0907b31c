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
    /// The owner's uid and group's gid.
    public var owner: UInt32 = 0
    public var group: UInt32 = 0

    /// The device and inode: what a folder or file is, whatever path names it.
    public var node: FileNode { FileNode(device: device, inode: identity.inode) }

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
        owner = UInt32(st.st_uid)
        group = UInt32(st.st_gid)
    }

    public init(kind: Kind, identity: FileIdentity, mode: UInt32, device: UInt64) {
        self.kind = kind
        self.identity = identity
        self.mode = mode
        self.device = device
    }
}

/// A file system object by device and inode.
public struct FileNode: Sendable, Hashable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}
