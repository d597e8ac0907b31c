import FalconAPI
import FalconEmulator
import Foundation
import Logging
import NIOConcurrencyHelpers
import Prometheus
import QuickScanWorker
import ServiceLifecycle
import Testing
import TestSupport

/// The metrics: counted by a real run against the emulator into a registry of the test's own
/// (no global bootstrap), served on a real loopback port and scraped, or written as a textfile.
@Suite(.timeLimit(.minutes(2)))
struct MetricsTests {
    /// Runs one pipeline over a clean file, a threat and an image with metrics into `registry`.
    func runWithMetrics(_ ws: Workspace, registry: PrometheusCollectorRegistry, emulator: FalconEmulator) async throws {
        let metrics = WorkerMetrics(factory: WorkerMetrics.prometheusFactory(registry: registry))
        try ws.put("a.txt", Array("clean words".utf8))
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("p.png", SampleContent.png)
        let store = try WorkerStore(path: ws.database)
        let client = try HTTPFalconClient(configuration: FalconClientConfiguration(
            credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL,
            retry: RetryPolicy(maxAttempts: 3, deadline: 30)), observer: metrics)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let pipeline = ScanPipeline(config: ws.config(), store: store, client: client, logger: logger, metrics: metrics)
        _ = try await store.beginRun(mode: "once")
        let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 60)
        #expect(summary.exitCode == 1)
        await client.shutdown()
    }

    @Test func metricsEndpointIsScrapedAndParsesAsPrometheusText() async throws {
        let ws = try Workspace()
        let registry = PrometheusCollectorRegistry()
        try await withEmulator({ $0.scanPollsUntilDone = 1 }) { emulator in
            try await runWithMetrics(ws, registry: registry, emulator: emulator)
        }
        var logger = Logger(label: "metrics-test")
        logger.logLevel = .warning
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let database = ws.database
        let metrics = WorkerMetrics(factory: WorkerMetrics.prometheusFactory(registry: registry))
        let server = MetricsServer(registry: registry, host: "127.0.0.1", port: 0, logger: logger, refresh: {
            let reader = try? ResultsReader(path: database)
            if let reader, let report = try? reader.status() { metrics.update(from: report, undelivered: 0) }
        }, onListening: { portContinuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
        let running = Task { try await group.run() }
        var port = 0
        for await p in ports { port = p; break }
        let scrape = try await httpGet("http://127.0.0.1:\(port)/metrics")
        await group.triggerGracefulShutdown()
        try await running.value

        #expect(scrape.status == 200)
        #expect(scrape.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
        let samples = try PrometheusText.parse(scrape.body)
        #expect(samples["quickscan_files_total{outcome=\"threat\"}"] == 1)
        #expect(samples["quickscan_files_total{outcome=\"clean\"}"] == 1)
        #expect(samples["quickscan_files_total{outcome=\"not_scanned\"}"] == 1)
        #expect(samples["quickscan_files{state=\"disposed\"}"] == 3)
        #expect(samples["quickscan_files{state=\"hashed\"}"] == 0)
        #expect((samples["quickscan_hashed_bytes_total"] ?? 0) > 0)
        #expect((samples["quickscan_volumes_submitted_total"] ?? 0) >= 1)
        #expect((samples["quickscan_api_calls_total{operation=\"ScanSamples\",status_class=\"2xx\"}"] ?? 0) >= 1)
        #expect((samples["quickscan_api_calls_total{operation=\"GetScans\",status_class=\"2xx\"}"] ?? 0) >= 1)
        #expect(samples["quickscan_drop_to_disposition_seconds_count"] == 3)
        #expect(samples["quickscan_drop_to_disposition_seconds_bucket{le=\"+Inf\"}"] == 3)
        #expect((samples["quickscan_api_latency_seconds_count{operation=\"ScanSamples\"}"] ?? 0) >= 1)
        #expect(samples["quickscan_volumes_in_flight"] == 0)
        #expect(samples["quickscan_oldest_pending_seconds"] == 0)
        #expect(samples["quickscan_quota_total"] != nil)
        #expect(samples["quickscan_rate_limit_cooldown_seconds"] == 0)
        #expect(!scrape.body.contains("secret"))
    }

    @Test func retriesAnd429sAreCounted() async throws {
        let ws = try Workspace()
        let registry = PrometheusCollectorRegistry()
        try await withEmulator({
            $0.scanPollsUntilDone = 1
            $0.faults = [try! FaultRule.parse("5xx:status=500,count=1,op=GetScans"), try! FaultRule.parse("429:retry-after=1,count=1,op=ScanSamples")]
        }) { emulator in
            try await runWithMetrics(ws, registry: registry, emulator: emulator)
        }
        let samples = try PrometheusText.parse(registry.emitToString())
        #expect((samples["quickscan_api_retries_total{operation=\"GetScans\"}"] ?? 0) >= 1)
        #expect(samples["quickscan_api_rate_limited_total{operation=\"ScanSamples\"}"] == 1)
        #expect((samples["quickscan_api_calls_total{operation=\"GetScans\",status_class=\"5xx\"}"] ?? 0) >= 1)
        #expect(samples["quickscan_api_calls_total{operation=\"ScanSamples\",status_class=\"4xx\"}"] == 1)
    }

    @Test func textfileIsReplacedAtomically() async throws {
        let dir = try TemporaryDirectory()
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(factory: WorkerMetrics.prometheusFactory(registry: registry))
        // Many series, so a torn write would be visible.
        for i in 0..<300 { metrics.notification(channel: "webhook-\(i)", delivered: true) }
        let path = dir.path + "/quickscan.prom"
        try MetricsTextfile.write(registry, to: path)
        let firstInode = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        try MetricsTextfile.write(registry, to: path)
        let secondInode = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        #expect(firstInode != secondInode)  // replaced by rename, never rewritten in place
        let expectedLines = registry.emitToString().split(separator: "\n").count

        // A reader polls the file while it is rewritten: it sees the old or the new version,
        // whole, every time.
        let stop = NIOLockedValueBoxFlag()
        let readCount = NIOLockedValueBox(0)
        // On a thread of its own, started directly: the cooperative pool may be busy.
        let outcome = NIOLockedValueBox((reads: 0, torn: 0))
        let finished = DispatchSemaphore(value: 0)
        let reader = Thread {
            var reads = 0
            var torn = 0
            while !stop.isSet {
                readCount.withLockedValue { $0 = reads }
                if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                    reads += 1
                    if !text.hasSuffix("\n") || (try? PrometheusText.parse(text)) == nil || text.split(separator: "\n").count < expectedLines { torn += 1 }
                }
            }
            outcome.withLockedValue { $0 = (reads, torn) }
            finished.signal()
        }
        reader.start()
        // Rewrites until the reader has read it many times (bounded).
        var i = 0
        while (readCount.withLockedValue { $0 } < 100 && i < 5000) || i < 200 {
            metrics.notification(channel: "webhook-\(i % 300)", delivered: false)
            try MetricsTextfile.write(registry, to: path)
            i += 1
        }
        stop.set()
        finished.wait()
        let (reads, torn) = outcome.withLockedValue { $0 }
        #expect(reads > 0)
        #expect(torn == 0)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "quickscan.prom" }
        #expect(leftovers.isEmpty)
        let samples = try PrometheusText.parse(try String(contentsOfFile: path, encoding: .utf8))
        #expect((samples["quickscan_notifications_total{channel=\"webhook-0\",result=\"failed\"}"] ?? 0) >= 1)
    }

    @Test func aFailedTextfileWriteNamesTheKey() throws {
        let registry = PrometheusCollectorRegistry()
        #expect(throws: ConfigurationError.self) { try MetricsTextfile.write(registry, to: "/nonexistent-folder/q.prom") }
    }
}

/// A flag shared with a detached task.
final class NIOLockedValueBoxFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    var isSet: Bool { box.withLockedValue { $0 } }
    func set() { box.withLockedValue { $0 = true } }
}
