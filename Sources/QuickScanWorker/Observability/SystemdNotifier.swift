import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol without libsystemd: datagrams to the unix socket named by
/// `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), as sd_notify(3) documents.
/// Without `NOTIFY_SOCKET` every call is a no-op.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var isEnabled: Bool { socketPath != nil }

    /// The watchdog interval systemd expects pings within (`WATCHDOG_USEC`, honoured only
    /// when `WATCHDOG_PID` is absent or ours), or nil.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], let n = Int32(pid), n != getpid() { return nil }
        return .microseconds(Int64(min(usec, UInt64(Int64.max))))
    }

    /// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STOPPING=1`); false when it could not.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketPath.utf8)
        // An abstract socket is named with a leading NUL instead of '@'.
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == message.count
    }
}

/// Watch mode's systemd integration as a service: `READY=1` once the pipeline is prepared,
/// `WATCHDOG=1` every half watchdog interval while the driver shows signs of life, and
/// `STOPPING=1` on a graceful shutdown.
public struct SystemdWatchdogService: Service {
    let notifier: SystemdNotifier
    let interval: Duration?
    let ready: AsyncStream<Void>
    let heartbeatAge: @Sendable () -> Duration
    let logger: Logger

    /// - Parameters:
    ///   - ready: yields once when the worker is ready.
    ///   - heartbeatAge: time since the driver's last sign of life; no ping while it exceeds
    ///     the watchdog interval, so systemd restarts a stuck worker.
    public init(notifier: SystemdNotifier, interval: Duration?, ready: AsyncStream<Void>, logger: Logger,
                heartbeatAge: @escaping @Sendable () -> Duration) {
        self.notifier = notifier
        self.interval = interval
        self.ready = ready
        self.heartbeatAge = heartbeatAge
        self.logger = logger
    }

    public func run() async throws {
        guard notifier.isEnabled else {
            try? await gracefulShutdown()  // throws only when cancelled, which ends the service too
            return
        }
        for await _ in ready.cancelOnGracefulShutdown() {
            notifier.notify("READY=1\nSTATUS=watching the inboxes")
            logger.debug("told systemd we are ready")
            break
        }
        guard !Task.isShuttingDownGracefully else {
            notifier.notify("STOPPING=1")
            return
        }
        if let interval {
            let period = interval / 2
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if heartbeatAge() < interval {
                    notifier.notify("WATCHDOG=1")
                } else {
                    logger.warning("the worker shows no sign of life; systemd's watchdog is not pinged")
                }
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: period) } } catch { break }
            }
        } else {
            try? await gracefulShutdown()  // throws only when cancelled, which ends the service too
        }
        notifier.notify("STOPPING=1")
    }
}
