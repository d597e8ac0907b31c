import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A local HTTP server that speaks the Falcon OAuth2, Sample Uploads v3 and Quick Scan wire
/// format (`reference/falcon-api.md`), with scripted faults and a record of every request.
///
/// Use ``start()`` and ``shutdown()`` directly (tests), or run it as a `Service` in a
/// `ServiceGroup`: ``run()`` starts it if needed and shuts it down on graceful shutdown.
public final class FalconEmulator: Service, Sendable {
    private let state: Locked<EmulatorState>
    private let logger: Logger
    private let lifecycle = Locked(Lifecycle())

    /// Where the server is in its life.
    private struct Lifecycle {
        var port: Int?
        var host: String?
        var group: ServiceGroup?
        var task: Task<Void, Never>?
        var stopped = false
    }

    /// Notifications from the server task to ``start()``.
    private enum StartEvent: Sendable {
        case listening(Int)
        case stopped((any Error)?)
    }

    public init(configuration: EmulatorConfiguration, logger: Logger = Logger(label: "falcon-emulator")) {
        self.state = Locked(EmulatorState(configuration: configuration))
        self.logger = logger
    }

    /// Binds and returns once the server is listening.
    public func start() async throws {
        if lifecycle.withLock({ $0.group != nil }) { return }
        let configuration = state.withLock { $0.configuration }
        let (events, continuation) = AsyncStream<StartEvent>.makeStream()
        let app = Application(
            responder: EmulatorResponder(state: state, logger: logger),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: nil
            ),
            onServerRunning: { channel in
                continuation.yield(.listening(channel.localAddress?.port ?? 0))
            },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task {
            do {
                try await group.run()
                continuation.yield(.stopped(nil))
            } catch {
                continuation.yield(.stopped(error))
            }
            continuation.finish()
        }
        lifecycle.withLock {
            $0.group = group
            $0.task = task
            $0.host = configuration.host
        }
        for await event in events {
            switch event {
            case .listening(let port):
                lifecycle.withLock { $0.port = port }
                logger.debug("falcon emulator listening", metadata: ["emulator.port": "\(port)"])
                return
            case .stopped(let error):
                lifecycle.withLock {
                    $0.group = nil
                    $0.task = nil
                }
                throw EmulatorError(reason: "the server stopped before listening: \(error.map { "\($0)" } ?? "no error")")
            }
        }
        throw EmulatorError(reason: "the server stopped before listening")
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server.
    public func shutdown() async {
        let (group, task) = lifecycle.withLock { ($0.group, $0.task) }
        guard let group else { return }
        await group.triggerGracefulShutdown()
        await task?.value
        lifecycle.withLock {
            $0.group = nil
            $0.task = nil
            $0.stopped = true
        }
    }

    /// `Service`: starts (unless already started), serves until graceful shutdown, then stops.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// The bound port (the real one when configured with port 0); 0 before ``start()``.
    public var port: Int {
        lifecycle.withLock { $0.port ?? 0 }
    }

    /// `http://HOST:PORT`.
    public var baseURL: String {
        let host = lifecycle.withLock { $0.host } ?? state.withLock { $0.configuration.host }
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }

    /// Replaces the fault rules; their counters start from zero.
    public func setFaults(_ rules: [FaultRule]) {
        state.withLock { $0.replaceFaults(rules) }
    }

    /// Changes behaviour at runtime. Host and port changes take effect only at the next start.
    public func update(_ change: @Sendable (inout EmulatorConfiguration) -> Void) {
        state.withLock { state in
            let faults = state.configuration.faults
            change(&state.configuration)
            if state.configuration.faults != faults { state.replaceFaults(state.configuration.faults) }
        }
    }

    /// The current configuration.
    public var configuration: EmulatorConfiguration {
        state.withLock { $0.configuration }
    }

    /// Every request seen so far, oldest first.
    public var recorded: [RecordedRequest] {
        state.withLock { $0.recorded }
    }

    /// Every deviation from the fact sheet seen so far, as `METHOD PATH: what was wrong`.
    public var violations: [String] {
        state.withLock { $0.violations }
    }

    /// Counters of what the emulator has done.
    public var stats: EmulatorStats {
        state.withLock { $0.stats }
    }

    /// sha256s of the samples currently stored.
    public var storedSamples: [String] {
        state.withLock { $0.samples.keys.sorted() }
    }

    /// Ids of all scans created, oldest first.
    public var scanIDs: [String] {
        state.withLock { $0.scanOrder }
    }

    /// Forgets the request record and the violations (state and stats stay).
    public func clearRecord() {
        state.withLock {
            $0.recorded.removeAll()
            $0.violations.removeAll()
        }
    }
}

/// The emulator could not do what was asked (e.g. bind its port).
public struct EmulatorError: Error, CustomStringConvertible {
    public var reason: String

    public var description: String { "Falcon emulator: \(reason)" }
}
