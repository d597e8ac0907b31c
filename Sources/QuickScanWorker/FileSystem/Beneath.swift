import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Opens a path below an open folder without following any symlink on the way, so a
/// subfolder swapped for a symlink by someone racing the worker leads nowhere outside:
/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it (5.6+),
/// else one `openat(O_NOFOLLOW)` per component (`..` is refused either way).
public enum Beneath {
    /// Whether this kernel (and its seccomp policy) lets us call openat2.
    static let hasOpenat2: Bool = {
        let fd = quickscan_openat2_beneath(AT_FDCWD, ".", UInt64(O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        if fd >= 0 { Glibc.close(fd); return true }
        return errno != ENOSYS && errno != EPERM
    }()

    /// Opens `relative` (components separated by `/`, no `..`) below `root` with `flags`
    /// (`O_NOFOLLOW` and `O_CLOEXEC` are added). `display` names the path in the error.
    public static func open(_ root: Int32, _ relative: String, flags: Int32, display: String) throws(FileSystemError) -> Int32 {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty, !parts.contains("..") else { throw FileSystemError(.open, display, errno: EXDEV) }
        let all = flags | O_NOFOLLOW | O_CLOEXEC
        if hasOpenat2 {
            while true {
                let fd = quickscan_openat2_beneath(root, relative, UInt64(UInt32(bitPattern: all)))
                if fd >= 0 { return fd }
                if errno == EINTR || errno == EAGAIN { continue }
                throw FileSystemError(.open, display, errno: errno)
            }
        }
        var current = root
        defer { if current != root { Glibc.close(current) } }
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            let fd = String(part).withCString { Glibc.openat(current, $0, last ? all : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) }
            guard fd >= 0 else { throw FileSystemError(.open, display, errno: errno) }
            if last { return fd }
            if current != root { Glibc.close(current) }
            current = fd
        }
        throw FileSystemError(.open, display, errno: ENOENT)
    }

    /// Opens the folder `relative` below `root` ("" or "." is `root` itself, duplicated).
    public static func openFolder(_ root: Int32, _ relative: String, display: String) throws(FileSystemError) -> Int32 {
        if relative.isEmpty || relative == "." {
            let fd = fcntl(root, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else { throw FileSystemError(.open, display, errno: errno) }
            return fd
        }
        return try open(root, relative, flags: O_RDONLY | O_DIRECTORY, display: display)
    }

    /// Opens an inbox's root folder; the configured path itself is trusted (an administrator
    /// wrote it), below it nothing is followed.
    public static func openRoot(_ path: String) throws(FileSystemError) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(.open, path, errno: errno) }
        return fd
    }

    /// Opens a folder of the worker's own (the spool) by its configured path: its parent as an
    /// administrator wrote it (`openRoot`), the folder itself below that without following a
    /// symlink. Every call inside it is then an *at() call on the descriptor returned.
    public static func openOwnFolder(_ path: String) throws(FileSystemError) -> Int32 {
        let parent = (path as NSString).deletingLastPathComponent
        let root = try openRoot(parent.isEmpty ? "." : parent)
        defer { Glibc.close(root) }
        return try openFolder(root, (path as NSString).lastPathComponent, display: path)
    }
}
