import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Watch mode's `/metrics` endpoint: the registry in Prometheus text format, served by
/// Hummingbird as one more service of the `ServiceGroup`. `refresh` runs before each scrape
/// (it sets the gauges from the store).
public struct MetricsServer: Service {
    let registry: PrometheusCollectorRegistry
    let host: String
    let port: Int
    let refresh: @Sendable () async -> Void
    let onListening: @Sendable (Int) -> Void
    let logger: Logger

    /// - Parameter onListening: called with the bound port (port 0 binds an ephemeral one).
    public init(registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger,
                refresh: @escaping @Sendable () async -> Void = {}, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.registry = registry
        self.host = host
        self.port = port
        self.refresh = refresh
        self.onListening = onListening
        self.logger = logger
    }

    /// The exposition format's content type (Prometheus text format 0.0.4).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public func run() async throws {
        let router = Router()
        let registry = registry
        let refresh = refresh
        router.get("/metrics") { _, _ -> Response in
            await refresh()
            var buffer = ByteBuffer()
            buffer.writeBytes(registry.emitToBuffer())
            return Response(status: .ok, headers: [.contentType: Self.contentType], body: .init(byteBuffer: buffer))
        }
        router.get("/") { _, _ in "quickscan metrics: /metrics\n" }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let onListening = onListening
        let logger = logger
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                logger.info("metrics endpoint listening", metadata: ["metrics.address": "\(channel.localAddress.map { "\($0)" } ?? "")"])
                onListening(bound)
            },
            logger: quiet)
        try await app.run()
    }
}
