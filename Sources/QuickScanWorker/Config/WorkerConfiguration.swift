import FalconAPI
import Foundation

/// A configuration problem, naming the key (exit code 3).
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What the disposer does with a file of one outcome.
public struct DispositionRule: Sendable, Equatable {
    public enum Action: String, Sendable { case move, delete, leave }
    public var action: Action
    /// Destination folder of `move`.
    public var to: String?
    /// The mode of a filed file (`disposition.*.mode`, an octal string); nil: the default
    /// (0600 for threats, 0644 otherwise, when the worker holds the file in custody).
    public var mode: mode_t?

    public init(action: Action, to: String? = nil, mode: mode_t? = nil) {
        self.action = action
        self.to = to
        self.mode = mode
    }
}

/// One watched folder.
public struct InboxConfiguration: Sendable, Equatable {
    public var path: String
    public var recursive: Bool = true
    public var include: [String] = ["*"]
    public var exclude: [String] = []

    public init(path: String, recursive: Bool = true, include: [String] = ["*"], exclude: [String] = []) {
        self.path = path
        self.recursive = recursive
        self.include = include
        self.exclude = exclude
    }

    /// Names ignored unless an include glob names them explicitly (partial downloads, Office locks).
    public static let defaultIgnored = [".*", "*.part", "*.tmp", "*.crdownload", "~$*"]
}

/// Which scanning API the pipeline uses (`falcon.api`).
public enum ScanAPI: String, Sendable, CaseIterable {
    /// The volume-based Quick Scan API (`/scanner/*`, Sample Uploads v3).
    case quickscan
    /// QuickScan Pro (`/quickscanpro/*`): one scan per file.
    case quickscanpro

    /// The largest file each API scans (`scan.max_file_bytes` default): CrowdStrike's legacy
    /// Quick Scan integrations stop at 35 MiB (36,700,160 bytes); QuickScan Pro takes 256 MiB.
    public var defaultScanMaxFileBytes: Int64 {
        switch self {
        case .quickscan: 36_700_160
        case .quickscanpro: 256 * 1024 * 1024
        }
    }

    /// How the API is named in messages.
    public var title: String { self == .quickscan ? "Quick Scan" : "QuickScan Pro" }
}

/// The worker's settings (the JSON config file; `sample-config.json` documents every key).
public struct WorkerConfiguration: Sendable {
    /// `falcon.api`: `quickscan` (default) or `quickscanpro`.
    public var api: ScanAPI = .quickscan
    public var cloud: String?
    public var baseURL: String?
    public var memberCID: String?
    /// Credentials from the file (the environment's `FALCON_CLIENT_ID`/`SECRET` win).
    public var clientID: String?
    public var clientSecret: String?
    public var timeoutSeconds: Double = 120
    public var userAgent: String = "quickscan/0.1"
    /// `falcon.tls_verify`: false only for a lab proxy (logged as a warning).
    public var tlsVerify: Bool = true
    /// `falcon.allow_plain_http`: a plain http:// base URL to another host.
    public var allowPlainHTTP: Bool = false
    /// Destination folders that others can write (or whose parents they can), refused at
    /// start unless this is set.
    public var allowSharedDestinations: Bool = false
    /// `custody`: `auto` (default) takes dropped files into the worker's spool when every
    /// outcome is moved or deleted, by a hard link under a read lease where it can, else by a
    /// copy; `copy` always copies; `off` scans in place.
    public var custody: String = "auto"
    /// `spool`: the worker's own folder for files in custody (default: next to the database).
    public var spool: String?
    public var inboxes: [InboxConfiguration] = []
    public var settleSeconds: Double = 5
    /// `run --once` stops waiting for a file still changing after this long; the run ends
    /// deferred (exit 4) with the file pending.
    public var maxSettleSeconds: Double = 60
    /// Destinations inside an inbox are refused at start unless this is set; they are then
    /// skipped by the walk by device and inode.
    public var allowDestinationInInbox: Bool = false
    public var pollIntervalSeconds: Double = 10
    /// `max_file_bytes`: the largest file uploaded.
    public var maxFileBytes: Int64 = FalconClientConfiguration.defaultMaxUploadBytes
    /// `scan.max_file_bytes`: the largest file scanned (nil: the API's default,
    /// `ScanAPI.defaultScanMaxFileBytes`). A larger file ends `not_scanned` (too_large) with no upload.
    public var scanMaxFileBytesSetting: Int64?
    /// `scan.likely_benign`: the outcome of QuickScan Pro's `likely_benign` verdict (clean by
    /// default, as CrowdStrike's own integrations treat it; `threat` to quarantine it).
    public var likelyBenign: Outcome = .clean
    public var volumeMaxSamples: Int = 1000
    public var volumeMaxWaitSeconds: Double = 30
    public var scanPollIntervalSeconds: Double = 3
    public var scanTimeoutSeconds: Double = 300
    public var scanMaxAttempts: Int = 3
    public var verdictCacheTTLHours: Double = 24
    public var disposition: [Outcome: DispositionRule] = [.clean: .init(action: .leave), .threat: .init(action: .leave), .notScanned: .init(action: .leave)]
    public var deleteSamplesAfterScan: Bool = false
    /// `delete_scan_results_after_scan` (QuickScan Pro): DeleteScanResult once a scan's verdict
    /// is recorded, so the tenant keeps no copy of the result.
    public var deleteScanResultsAfterScan: Bool = false
    public var database: String = "quickscan.sqlite"
    public var logLevel: String = "info"
    public var logFormat: String = "text"
    /// `api_concurrency` (alias `upload_concurrency`): the most API requests in flight at once
    /// (uploads, deletes and the rest); the client's `RequestLimiter` adapts below it.
    public var apiConcurrency: Int = FalconClientConfiguration.defaultMaxConcurrentRequests
    public var hashThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
    public var notify = NotifyConfiguration()
    public var metrics = MetricsConfiguration()
    public var retention = RetentionConfiguration()

    public init() {}

    /// Parses the JSON config; unknown keys, wrong types and impossible values name the key.
    /// Relative paths are resolved against the config file's folder.
    public static func parse(_ data: Data, relativeTo base: String) throws -> WorkerConfiguration {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ConfigurationError("config is not valid JSON: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any] else { throw ConfigurationError("config must be a JSON object") }
        var c = WorkerConfiguration()
        let r = KeyReader(root, path: "")
        try r.allow(["falcon", "inboxes", "settle_seconds", "max_settle_seconds", "allow_destination_in_inbox", "allow_shared_destinations", "custody", "spool", "poll_interval_seconds", "max_file_bytes", "volume", "scan",
                     "verdict_cache_ttl_hours", "disposition", "delete_samples_after_scan", "delete_scan_results_after_scan", "database", "log",
                     "api_concurrency", "upload_concurrency", "hash_threads", "notify", "metrics", "retention"])
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
        if let f = try r.object("falcon") {
            try f.allow(["api", "cloud", "base_url", "member_cid", "timeout_seconds", "user_agent", "client_id", "client_secret", "tls_verify", "allow_plain_http"])
            if let api = try f.string("api") {
                guard let parsed = ScanAPI(rawValue: api) else { throw ConfigurationError("falcon.api: \(api) is not one of quickscan, quickscanpro") }
                c.api = parsed
            }
            c.allowPlainHTTP = try f.bool("allow_plain_http") ?? false
            c.cloud = try f.string("cloud")
            if let cloud = c.cloud, FalconCloud(name: cloud) == nil { throw ConfigurationError("falcon.cloud: \(cloud) is not one of us-1, us-2, eu-1, us-gov-1, us-gov-2, auto") }
            c.baseURL = try f.string("base_url")
            c.memberCID = try f.string("member_cid")
            c.timeoutSeconds = try f.number("timeout_seconds", min: 1) ?? c.timeoutSeconds
            c.userAgent = try f.string("user_agent") ?? c.userAgent
            c.tlsVerify = try f.bool("tls_verify") ?? true
            c.clientID = try f.string("client_id")
            c.clientSecret = try f.string("client_secret")
            if (c.clientID == nil) != (c.clientSecret == nil) {
                throw ConfigurationError("falcon.client_id and falcon.client_secret go together: give both or neither")
            }
        }
        if let list = try r.array("inboxes") {
            c.inboxes = try list.enumerated().map { i, item in
                guard let o = item as? [String: Any] else { throw ConfigurationError("inboxes[\(i)] must be an object") }
                let k = KeyReader(o, path: "inboxes[\(i)].")
                try k.allow(["path", "recursive", "include", "exclude"])
                guard let path = try k.string("path") else { throw ConfigurationError("inboxes[\(i)].path is required") }
                return InboxConfiguration(path: resolve(path), recursive: try k.bool("recursive") ?? true,
                                          include: try k.strings("include") ?? ["*"], exclude: try k.strings("exclude") ?? [])
            }
        }
        c.settleSeconds = try r.number("settle_seconds", min: 0) ?? c.settleSeconds
        c.maxSettleSeconds = try r.number("max_settle_seconds", min: 0) ?? c.maxSettleSeconds
        c.allowDestinationInInbox = try r.bool("allow_destination_in_inbox") ?? false
        c.allowSharedDestinations = try r.bool("allow_shared_destinations") ?? false
        c.custody = try r.string("custody") ?? "auto"
        guard ["auto", "copy", "off"].contains(c.custody) else { throw ConfigurationError("custody must be auto, copy or off") }
        c.spool = try r.string("spool").map(resolve)
        c.pollIntervalSeconds = try r.number("poll_interval_seconds", min: 0.05) ?? c.pollIntervalSeconds
        if let n = try r.number("max_file_bytes", min: 1) { c.maxFileBytes = Int64(n) }
        if let v = try r.object("volume") {
            try v.allow(["max_samples", "max_wait_seconds"])
            if let n = try v.number("max_samples", min: 1, max: 1000) { c.volumeMaxSamples = Int(n) }
            c.volumeMaxWaitSeconds = try v.number("max_wait_seconds", min: 0) ?? c.volumeMaxWaitSeconds
        }
        if let s = try r.object("scan") {
            try s.allow(["poll_interval_seconds", "timeout_seconds", "max_attempts", "max_file_bytes", "likely_benign"])
            if let n = try s.number("max_file_bytes", min: 1) { c.scanMaxFileBytesSetting = Int64(n) }
            if let v = try s.string("likely_benign") {
                guard let o = Outcome(rawValue: v), o != .notScanned else { throw ConfigurationError("scan.likely_benign: \(v) is not one of clean, threat") }
                c.likelyBenign = o
            }
            c.scanPollIntervalSeconds = try s.number("poll_interval_seconds", min: 0.01) ?? c.scanPollIntervalSeconds
            c.scanTimeoutSeconds = try s.number("timeout_seconds", min: 1) ?? c.scanTimeoutSeconds
            if let n = try s.number("max_attempts", min: 1, max: 100) { c.scanMaxAttempts = Int(n) }
        }
        c.verdictCacheTTLHours = try r.number("verdict_cache_ttl_hours", min: 0) ?? c.verdictCacheTTLHours
        if let d = try r.object("disposition") {
            try d.allow(["clean", "threat", "not_scanned"])
            for outcome in Outcome.allCases {
                guard let o = try d.object(outcome.rawValue) else { continue }
                try o.allow(["action", "to", "mode"])
                let key = "disposition.\(outcome.rawValue)"
                guard let name = try o.string("action"), let action = DispositionRule.Action(rawValue: name) else {
                    throw ConfigurationError("\(key).action must be one of move, delete, leave")
                }
                let to = try o.string("to").map(resolve)
                if action == .move && to == nil { throw ConfigurationError("\(key).to is required for action move") }
                var mode: mode_t?
                if let text = try o.string("mode") {
                    guard let m = mode_t(text, radix: 8), m <= 0o777, m & 0o022 == 0 else {
                        throw ConfigurationError("\(key).mode must be an octal mode such as \"0640\", not writable by group or others")
                    }
                    mode = m
                }
                c.disposition[outcome] = DispositionRule(action: action, to: to, mode: mode)
            }
        }
        c.deleteSamplesAfterScan = try r.bool("delete_samples_after_scan") ?? false
        c.deleteScanResultsAfterScan = try r.bool("delete_scan_results_after_scan") ?? false
        c.database = resolve(try r.string("database") ?? c.database)
        if let l = try r.object("log") {
            try l.allow(["level", "format"])
            c.logLevel = try l.string("level") ?? c.logLevel
            c.logFormat = try l.string("format") ?? c.logFormat
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(c.logLevel) else {
                throw ConfigurationError("log.level: \(c.logLevel) is not one of trace, debug, info, notice, warning, error, critical")
            }
            guard ["text", "json"].contains(c.logFormat) else { throw ConfigurationError("log.format must be text or json") }
        }
        if root["api_concurrency"] != nil && root["upload_concurrency"] != nil {
            throw ConfigurationError("api_concurrency and upload_concurrency are the same setting (upload_concurrency is its old name): give one")
        }
        if let n = try r.number("api_concurrency", min: 1, max: 256) ?? r.number("upload_concurrency", min: 1, max: 256) { c.apiConcurrency = Int(n) }
        if let n = try r.number("hash_threads", min: 1, max: 256) { c.hashThreads = Int(n) }
        if let n = try r.object("notify") {
            try n.allow(["command", "webhook_url", "not_scanned", "timeout_seconds", "backoff_seconds", "max_backoff_seconds", "hold_seconds"])
            if let command = try n.strings("command") {
                guard let program = command.first, !program.isEmpty else { throw ConfigurationError("notify.command must name a program: [\"/path/to/program\", \"arg\"...]") }
                guard program.hasPrefix("/") else { throw ConfigurationError("notify.command: \(program) must be an absolute path (it is run without a shell)") }
                c.notify.command = command
            }
            if let url = try n.string("webhook_url") {
                guard let parts = URLComponents(string: url), ["http", "https"].contains(parts.scheme?.lowercased() ?? ""), parts.host?.isEmpty == false else {
                    throw ConfigurationError("notify.webhook_url must be an http or https URL")
                }
                c.notify.webhookURL = url
            }
            c.notify.notScanned = try n.bool("not_scanned") ?? false
            c.notify.timeoutSeconds = try n.number("timeout_seconds", min: 0.1) ?? c.notify.timeoutSeconds
            c.notify.backoffSeconds = try n.number("backoff_seconds", min: 0.01) ?? c.notify.backoffSeconds
            c.notify.maxBackoffSeconds = try n.number("max_backoff_seconds", min: 0.01) ?? c.notify.maxBackoffSeconds
            c.notify.holdSeconds = try n.number("hold_seconds", min: 0) ?? c.notify.holdSeconds
        }
        if let m = try r.object("metrics") {
            try m.allow(["listen", "textfile"])
            if let listen = try m.string("listen") {
                _ = try MetricsConfiguration.address(listen)
                c.metrics.listen = listen
            }
            c.metrics.textfile = try m.string("textfile").map(resolve)
        }
        if let t = try r.object("retention") {
            try t.allow(["older_than_days", "interval_hours", "quarantine_days"])
            c.retention.olderThanDays = try t.number("older_than_days", min: 0)
            c.retention.intervalHours = try t.number("interval_hours", min: 0.01) ?? c.retention.intervalHours
            c.retention.quarantineDays = try t.number("quarantine_days", min: 0)
        }
        return c
    }

    /// Reads and parses a config file; refuses one that holds a secret and is readable by others.
    public static func load(path: String) throws -> WorkerConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("cannot read config file \(path)")
        }
        // Only the secret check: a file that is not JSON gets its error from `parse` below.
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let falcon = object["falcon"] as? [String: Any], falcon["client_secret"] != nil {
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
                throw ConfigurationError("config file \(path) holds falcon.client_secret and is readable by others: run chmod 600 \(path)")
            }
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return try parse(data, relativeTo: (absolute as NSString).deletingLastPathComponent)
    }
}

extension WorkerConfiguration {
    /// The effective configuration as JSON (every key, defaults filled in), the secret masked.
    public func effectiveJSON() -> String {
        func rule(_ outcome: Outcome) -> [String: Any] {
            let r = disposition[outcome] ?? DispositionRule(action: .leave)
            var o: [String: Any] = ["action": r.action.rawValue]
            if let to = r.to { o["to"] = to }
            if let mode = r.mode { o["mode"] = "0" + String(mode, radix: 8) }
            return o
        }
        var falcon: [String: Any] = ["api": api.rawValue, "cloud": cloud ?? "us-1", "timeout_seconds": timeoutSeconds, "user_agent": userAgent, "tls_verify": tlsVerify,
                                     "allow_plain_http": allowPlainHTTP]
        if let baseURL { falcon["base_url"] = baseURL }
        if let memberCID { falcon["member_cid"] = memberCID }
        if let clientID { falcon["client_id"] = clientID }
        if clientSecret != nil { falcon["client_secret"] = "****" }
        let object: [String: Any] = [
            "falcon": falcon,
            "inboxes": inboxes.map { ["path": $0.path, "recursive": $0.recursive, "include": $0.include, "exclude": $0.exclude] },
            "settle_seconds": settleSeconds, "max_settle_seconds": maxSettleSeconds,
            "allow_destination_in_inbox": allowDestinationInInbox, "allow_shared_destinations": allowSharedDestinations,
            "custody": custody, "spool": spoolFolder,
            "poll_interval_seconds": pollIntervalSeconds, "max_file_bytes": maxFileBytes,
            "volume": ["max_samples": volumeMaxSamples, "max_wait_seconds": volumeMaxWaitSeconds],
            "scan": ["poll_interval_seconds": scanPollIntervalSeconds, "timeout_seconds": scanTimeoutSeconds, "max_attempts": scanMaxAttempts,
                     "max_file_bytes": scanMaxFileBytes, "likely_benign": likelyBenign.rawValue] as [String: Any],
            "verdict_cache_ttl_hours": verdictCacheTTLHours,
            "disposition": ["clean": rule(.clean), "threat": rule(.threat), "not_scanned": rule(.notScanned)],
            "delete_samples_after_scan": deleteSamplesAfterScan, "delete_scan_results_after_scan": deleteScanResultsAfterScan,
            "database": database,
            "api_concurrency": apiConcurrency, "hash_threads": hashThreads,
            "log": ["level": logLevel, "format": logFormat],
            "notify": [
                "command": notify.command ?? NSNull(), "webhook_url": notify.webhookShown ?? NSNull(), "not_scanned": notify.notScanned,
                "timeout_seconds": notify.timeoutSeconds, "backoff_seconds": notify.backoffSeconds,
                "max_backoff_seconds": notify.maxBackoffSeconds, "hold_seconds": notify.holdSeconds,
            ] as [String: Any],
            "metrics": ["listen": metrics.listen ?? NSNull(), "textfile": metrics.textfile ?? NSNull()] as [String: Any],
            "retention": [
                "older_than_days": retention.olderThanDays ?? NSNull(), "interval_hours": retention.intervalHours,
                "quarantine_days": retention.quarantineDays ?? NSNull(),
            ] as [String: Any],
        ]
        // Serialising plain strings, numbers and booleans cannot fail.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Typed access to one JSON object, with errors naming the full key.
struct KeyReader {
    let object: [String: Any]
    let path: String

    init(_ object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    func allow(_ keys: Set<String>) throws {
        for key in object.keys.sorted() where !keys.contains(key) {
            throw ConfigurationError("unknown config key \(path)\(key)")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw ConfigurationError("\(path)\(key) must be a string") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        // JSONSerialization boxes true/false as a boolean NSNumber subclass; 0 and 1 are not booleans.
        guard String(describing: type(of: value)).contains("Boolean"), let b = value as? Bool else {
            throw ConfigurationError("\(path)\(key) must be true or false")
        }
        return b
    }

    func number(_ key: String, min: Double? = nil, max: Double? = nil) throws -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard !(value is String), !String(describing: type(of: value)).contains("Boolean"), let n = value as? NSNumber else { throw ConfigurationError("\(path)\(key) must be a number") }
        let d = n.doubleValue
        if let min, d < min { throw ConfigurationError("\(path)\(key) must be at least \(min.clean)") }
        if let max, d > max { throw ConfigurationError("\(path)\(key) must be at most \(max.clean)") }
        return d
    }

    func object(_ key: String) throws -> KeyReader? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let o = value as? [String: Any] else { throw ConfigurationError("\(path)\(key) must be an object") }
        return KeyReader(o, path: "\(path)\(key).")
    }

    func array(_ key: String) throws -> [Any]? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let a = value as? [Any] else { throw ConfigurationError("\(path)\(key) must be an array") }
        return a
    }

    func strings(_ key: String) throws -> [String]? {
        guard let a = try array(key) else { return nil }
        return try a.map {
            guard let s = $0 as? String else { throw ConfigurationError("\(path)\(key) must be an array of strings") }
            return s
        }
    }
}

extension Double {
    var clean: String { rounded() == self ? String(Int64(self)) : String(self) }
}

extension WorkerConfiguration {
    /// `path` without `.`, `..`, repeated or trailing slashes (lexically: symlinks are not
    /// followed here; `checkPaths` compares folders by device and inode).
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if part == ".." && path.hasPrefix("/") { continue }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// Whether dropped files are taken into custody: every outcome is moved or deleted (the
    /// worker takes each file out of the inbox), and custody is not turned off.
    public var custodyEnabled: Bool {
        custody != "off" && Outcome.allCases.allSatisfy { (disposition[$0]?.action ?? .leave) != .leave }
    }

    /// Whether custody may take a file by linking it under a lease (`custody: auto`) rather
    /// than always copying it (`custody: copy`).
    public var custodyByLink: Bool { custody == "auto" }

    /// The spool folder: `spool`, or `DATABASE.spool` next to the database.
    /// The largest file scanned: `scan.max_file_bytes`, else the API's default.
    public var scanMaxFileBytes: Int64 { scanMaxFileBytesSetting ?? api.defaultScanMaxFileBytes }

    /// The largest file the worker takes for scanning: the lower of the upload and scan limits,
    /// with the key that sets it.
    public var fileSizeLimit: (bytes: Int64, key: String) {
        scanMaxFileBytes <= maxFileBytes ? (scanMaxFileBytes, "scan.max_file_bytes") : (maxFileBytes, "max_file_bytes")
    }

    public var spoolFolder: String { spool ?? database + ".spool" }

    /// The mode a filed file of `outcome` gets: the rule's, else 0600 for a threat, else
    /// 0644 for a file in custody (the spool copy is 0600), else unchanged.
    public func fileMode(_ outcome: Outcome, custody: Bool) -> mode_t? {
        if let mode = disposition[outcome]?.mode { return mode }
        if outcome == .threat { return 0o600 }
        return custody ? 0o644 : nil
    }

    /// The configuration with every path normalised once (inboxes, destinations, database).
    public func normalized() -> WorkerConfiguration {
        var c = self
        c.inboxes = inboxes.map { var i = $0; i.path = Self.normalize($0.path); return i }
        for (outcome, rule) in disposition {
            c.disposition[outcome] = DispositionRule(action: rule.action, to: rule.to.map(Self.normalize), mode: rule.mode)
        }
        c.database = Self.normalize(database)
        c.spool = spool.map(Self.normalize)
        return c
    }

    /// Refuses, naming the key, a destination folder that lies inside an inbox (unless
    /// `allow_destination_in_inbox`), or that is a symlink or not a folder. Inside means: the
    /// destination, or its nearest existing parent, is an inbox or below one, compared by
    /// device and inode along the real path, so trailing slashes, `..` and symlinked
    /// prefixes cannot hide it.
    public func checkPaths(fs: any FileSystem) throws {
        // A missing inbox is reported by the watcher (exit 3 for --once); here it has no node.
        let inboxNodes = Set(inboxes.compactMap { try? fs.lstat(Self.resolved($0.path) ?? $0.path).node })
        for outcome in Outcome.allCases {
            guard let rule = disposition[outcome], rule.action == .move, let folder = rule.to else { continue }
            let key = "disposition.\(outcome.rawValue).to"
            if let st = try? fs.lstat(folder) {  // not there yet: created later, without following symlinks
                if st.kind == .symlink { throw ConfigurationError("\(key): \(folder) is a symbolic link; give the real folder") }
                if st.kind != .directory { throw ConfigurationError("\(key): \(folder) is not a folder") }
            }
            if !allowSharedDestinations, let shared = Self.sharedComponent(of: folder, fs: fs) {
                throw ConfigurationError("\(key): \(folder) can be changed by other users (\(shared)); filed files could be replaced or redirected. Make it owned by this user and not writable by others, or set allow_shared_destinations: true")
            }
            guard !allowDestinationInInbox else { continue }
            // Walk up from the destination's nearest existing folder, by real path.
            var probe = folder
            while fs.exists(probe) == false && probe != "/" && probe != "." { probe = (probe as NSString).deletingLastPathComponent }
            guard var real = Self.resolved(probe) else { continue }
            while true {
                if let node = try? fs.lstat(real).node, inboxNodes.contains(node) {  // unreadable: not an inbox
                    throw ConfigurationError("\(key): \(folder) lies inside an inbox; files filed there would be scanned again. Move it out, or set allow_destination_in_inbox: true")
                }
                if real == "/" || real.isEmpty { break }
                real = (real as NSString).deletingLastPathComponent
            }
        }
    }

    /// The first existing folder from `folder` up to `/` that someone other than this user (or
    /// root) could change: owned by another user, or writable by group or others without the
    /// sticky bit (which keeps others from renaming our entries). Nil when there is none.
    static func sharedComponent(of folder: String, fs: any FileSystem) -> String? {
        var path = folder
        let me = geteuid()
        while true {
            if let st = try? fs.lstat(path) {  // a component not created yet cannot be shared
                let owner = st.owner
                if owner != me && owner != 0 { return "\(path) is owned by uid \(owner)" }
                if st.mode & 0o022 != 0 && st.mode & 0o1000 == 0 { return "\(path) is writable by others (mode \(String(st.mode & 0o7777, radix: 8)))" }
            }
            if path == "/" || path == "." || path.isEmpty { return nil }
            path = (path as NSString).deletingLastPathComponent
            if path.isEmpty { path = "." }
        }
    }

    /// realpath(3), nil when the path does not resolve.
    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}

extension FileSystem {
    /// Whether `path` names anything (a dangling symlink included).
    func exists(_ path: String) -> Bool {
        (try? lstat(path)) != nil  // the question is only whether lstat succeeds
    }
}
