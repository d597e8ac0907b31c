import Foundation
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// Writes the registry for node_exporter's textfile collector: to a temporary file in the
/// same folder, fsynced, then renamed over the target, so the collector never reads half a
/// file (node_exporter docs, "Textfile Collector").
public enum MetricsTextfile {
    public static func write(_ registry: PrometheusCollectorRegistry, to path: String) throws {
        try write(registry.emitToBuffer(), to: path)
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        let temporary = "\(folder)/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create", temporary) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let error = failure("cannot write", temporary)
                close(fd)
                unlink(temporary)
                throw error
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let error = failure("cannot fsync", temporary)
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename to \(path):", temporary)
            unlink(temporary)
            throw error
        }
        // The rename itself is durable once the folder is synced.
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    private static func failure(_ what: String, _ path: String) -> ConfigurationError {
        ConfigurationError("metrics.textfile: \(what) \(path): \(String(cString: strerror(errno)))")
    }
}
