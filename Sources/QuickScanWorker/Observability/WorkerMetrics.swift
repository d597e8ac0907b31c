import CoreMetrics
import FalconAPI
import Foundation
import Prometheus

/// The worker's metrics, through swift-metrics. The factory is passed in (the CLI passes the
/// one it bootstrapped; tests pass their own Prometheus registry), so nothing here depends on
/// the global `MetricsSystem` or on the order tests run in. README lists every name.
public final class WorkerMetrics: Sendable {
    public let factory: any MetricsFactory

    /// Metric names (README's list).
    public enum Name {
        public static let files = "quickscan_files_total"
        public static let hashedBytes = "quickscan_hashed_bytes_total"
        public static let apiCalls = "quickscan_api_calls_total"
        public static let apiRetries = "quickscan_api_retries_total"
        public static let apiRateLimited = "quickscan_api_rate_limited_total"
        public static let volumesSubmitted = "quickscan_volumes_submitted_total"
        public static let volumesAdopted = "quickscan_volumes_adopted_total"
        public static let notifications = "quickscan_notifications_total"
        public static let filesByState = "quickscan_files"
        public static let volumesInFlight = "quickscan_volumes_in_flight"
        public static let oldestPending = "quickscan_oldest_pending_seconds"
        public static let quotaTotal = "quickscan_quota_total"
        public static let quotaUsed = "quickscan_quota_used"
        public static let quotaInProgress = "quickscan_quota_in_progress"
        public static let cooldown = "quickscan_rate_limit_cooldown_seconds"
        public static let undelivered = "quickscan_notifications_undelivered"
        public static let dropToDisposition = "quickscan_drop_to_disposition_seconds"
        public static let apiLatency = "quickscan_api_latency_seconds"
    }

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    /// A Prometheus factory over `registry` with the worker's histogram buckets: API calls
    /// from 5 ms to 2 minutes, drop to disposition from 1 s to 1 day.
    public static func prometheusFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[Name.apiLatency] = [
            .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(120),
        ]
        factory.durationHistogramBuckets[Name.dropToDisposition] = [
            .seconds(1), .seconds(5), .seconds(15), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
            .seconds(600), .seconds(1800), .seconds(3600), .seconds(4 * 3600), .seconds(86400),
        ]
        return factory
    }

    // MARK: counters

    /// A file reached its final disposition; `seconds` since it was first recorded.
    public func fileDisposed(outcome: Outcome, seconds: Double) {
        CoreMetrics.Counter(label: Name.files, dimensions: [("outcome", outcome.rawValue)], factory: factory).increment()
        CoreMetrics.Timer(label: Name.dropToDisposition, factory: factory).recordNanoseconds(Self.nanoseconds(seconds))
    }

    public func hashed(bytes: Int64) {
        guard bytes > 0 else { return }
        CoreMetrics.Counter(label: Name.hashedBytes, factory: factory).increment(by: bytes)
    }

    public func volumeSubmitted() { CoreMetrics.Counter(label: Name.volumesSubmitted, factory: factory).increment() }

    /// A volume a crash left `submitting` was matched to the scan the API had created.
    public func volumeAdopted() { CoreMetrics.Counter(label: Name.volumesAdopted, factory: factory).increment() }

    /// One delivery attempt of a notification: `delivered` or `failed`.
    public func notification(channel: String, delivered: Bool) {
        CoreMetrics.Counter(label: Name.notifications, dimensions: [("channel", channel), ("result", delivered ? "delivered" : "failed")],
                factory: factory).increment()
    }

    // MARK: gauges

    /// Sets every gauge from a status report (the same figures `quickscan status` shows).
    public func update(from report: StatusReport, undelivered: Int) {
        for count in report.fileStates {
            gauge(Name.filesByState, [("state", count.name)]).record(count.count)
        }
        gauge(Name.volumesInFlight).record(report.volumesInFlight.count)
        let oldest = report.oldestPending.map { max(0, report.generatedAt.timeIntervalSince($0.discoveredAt)) } ?? 0
        gauge(Name.oldestPending).record(oldest)
        if let quota = report.quota {
            gauge(Name.quotaTotal).record(quota.total)
            gauge(Name.quotaUsed).record(quota.used)
            gauge(Name.quotaInProgress).record(quota.inProgress)
        }
        let cooldown = report.rateLimitCooldownUntil.map { max(0, $0.timeIntervalSince(report.generatedAt)) } ?? 0
        gauge(Name.cooldown).record(cooldown)
        gauge(Name.undelivered).record(undelivered)
    }

    private func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
    }

    static func nanoseconds(_ seconds: Double) -> Int64 {
        Int64(max(0, min(seconds, 1e9)) * 1e9)
    }

    /// `2xx`, `4xx`, `5xx`…, or `error` when no reply came (transport failure).
    static func statusClass(_ status: Int?) -> String {
        guard let status, (100..<600).contains(status) else { return "error" }
        return "\(status / 100)xx"
    }
}

extension WorkerMetrics: FalconCallObserver {
    public func exchanged(operation: String, status: Int?, seconds: Double) {
        CoreMetrics.Counter(label: Name.apiCalls, dimensions: [("operation", operation), ("status_class", Self.statusClass(status))],
                factory: factory).increment()
        CoreMetrics.Timer(label: Name.apiLatency, dimensions: [("operation", operation)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(seconds))
    }

    public func retrying(operation: String) {
        CoreMetrics.Counter(label: Name.apiRetries, dimensions: [("operation", operation)], factory: factory).increment()
    }

    public func rateLimited(operation: String) {
        CoreMetrics.Counter(label: Name.apiRateLimited, dimensions: [("operation", operation)], factory: factory).increment()
    }
}
