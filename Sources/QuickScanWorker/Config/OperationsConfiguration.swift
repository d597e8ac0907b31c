import Foundation

/// `notify`: who is told about threats (and, optionally, files not scanned).
public struct NotifyConfiguration: Sendable, Equatable {
    /// A program and its arguments, run without a shell; the notice is in its environment.
    public var command: [String]?
    /// Receives a JSON document by POST.
    public var webhookURL: String?
    /// Also notify files that end not scanned.
    public var notScanned = false
    /// One attempt (the command's run or the POST) is given up after this long.
    public var timeoutSeconds: Double = 10
    /// The first retry waits this long, doubling up to `maxBackoffSeconds`.
    public var backoffSeconds: Double = 5
    public var maxBackoffSeconds: Double = 600
    /// A notice waits at most this long for its file to be filed (to name the destination).
    public var holdSeconds: Double = 60

    public init() {}

    public var channels: [String] { (command != nil ? ["command"] : []) + (webhookURL != nil ? ["webhook"] : []) }
    public var outcomes: Set<Outcome> { notScanned ? [.threat, .notScanned] : [.threat] }

    /// The webhook URL as it may be shown: scheme and host only (a path or query may hold a token).
    public var webhookShown: String? { webhookURL.map(Self.redacted) }

    public static func redacted(_ url: String) -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host else { return "(webhook)" }
        return "\(scheme)://\(host)\(c.port.map { ":\($0)" } ?? "")/…"
    }

    /// Seconds before attempt `attempt + 1` after `attempt` failures.
    public func backoff(afterAttempts attempts: Int) -> Double {
        min(maxBackoffSeconds, backoffSeconds * pow(2, Double(max(0, attempts - 1))))
    }
}

/// `metrics`: the Prometheus endpoint of watch mode and the textfile of `run --once`.
public struct MetricsConfiguration: Sendable, Equatable {
    /// `HOST:PORT` (or a port alone: loopback) for `/metrics`; nil: off.
    public var listen: String?
    /// node_exporter textfile collector file written (atomically) by `run --once`.
    public var textfile: String?

    public init() {}

    /// The host and port of `listen`: a bare port listens on 127.0.0.1.
    public static func address(_ listen: String) throws -> (host: String, port: Int) {
        if let port = Int(listen), (0...65535).contains(port) { return ("127.0.0.1", port) }
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("metrics.listen: \(listen) is not HOST:PORT or PORT")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

/// `retention`: watch mode's scheduled prune, and what it may delete.
public struct RetentionConfiguration: Sendable, Equatable {
    /// Rows of files disposed longer ago than this are pruned; nil: no scheduled prune.
    public var olderThanDays: Double?
    /// Hours between two scheduled prunes.
    public var intervalHours: Double = 24
    /// Quarantined files older than this are deleted (logged); nil: never (the default).
    public var quarantineDays: Double?

    public init() {}
}
