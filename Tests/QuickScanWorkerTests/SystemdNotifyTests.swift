import Foundation
import Logging
import QuickScanWorker
import ServiceLifecycle
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify against a unix datagram socket the test binds (what systemd does for
/// `Type=notify`).
@Suite(.timeLimit(.minutes(1)))
struct SystemdNotifyTests {
    /// A bound datagram socket; `receive` waits up to `timeout` for one message.
    final class NotifySocket: @unchecked Sendable {
        let fd: Int32
        let path: String

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
            var tv = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd); unlink(path) }

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
        }
    }

    @Test func readyAndStoppingReachTheSocket() throws {
        let dir = try TemporaryDirectory()
        let socket = try NotifySocket(path: dir.path + "/notify.sock")
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path])
        #expect(notifier.isEnabled)
        #expect(notifier.notify("READY=1"))
        #expect(socket.receive() == "READY=1")
        #expect(SystemdNotifier(environment: [:]).notify("READY=1") == false)
    }

    @Test func watchdogIntervalFollowsTheEnvironment() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(30))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid())"]) == .seconds(30))
        #expect(SystemdNotifier.watchdogInterval(environment: [:]) == nil)
    }

    @Test func theServiceSaysReadyPingsTheWatchdogAndStops() async throws {
        let dir = try TemporaryDirectory()
        let socket = try NotifySocket(path: dir.path + "/notify.sock")
        var logger = Logger(label: "systemd-test")
        logger.logLevel = .critical
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let service = SystemdWatchdogService(notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path]),
                                             interval: .milliseconds(200), ready: ready, logger: logger, heartbeatAge: { .zero })
        let group = ServiceGroup(configuration: .init(services: [service], logger: logger))
        let running = Task { try await group.run() }
        readyContinuation.yield()
        let messages = try await onDedicatedThread { () -> [String] in
            (0..<3).compactMap { _ in socket.receive() }
        }
        #expect(messages.first?.hasPrefix("READY=1") == true)
        #expect(messages.dropFirst().allSatisfy { $0 == "WATCHDOG=1" } && messages.count == 3)
        await group.triggerGracefulShutdown()
        try await running.value
        var last: String?
        while let m = socket.receive() {
            last = m
            if m == "STOPPING=1" { break }
        }
        #expect(last == "STOPPING=1")
    }

    @Test func aStuckWorkerIsNotPinged() async throws {
        let dir = try TemporaryDirectory()
        let socket = try NotifySocket(path: dir.path + "/notify.sock")
        var logger = Logger(label: "systemd-test")
        logger.logLevel = .critical
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        let service = SystemdWatchdogService(notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path]),
                                             interval: .milliseconds(100), ready: ready, logger: logger, heartbeatAge: { .seconds(60) })
        let group = ServiceGroup(configuration: .init(services: [service], logger: logger))
        let running = Task { try await group.run() }
        readyContinuation.yield()
        let first = try await onDedicatedThread { socket.receive() }
        #expect(first?.hasPrefix("READY=1") == true)
        // Several intervals later: still no ping (the next message is the shutdown's).
        try await Task.sleep(for: .milliseconds(500))
        await group.triggerGracefulShutdown()
        try await running.value
        let next = try await onDedicatedThread { socket.receive() }
        #expect(next == "STOPPING=1")
    }
}
