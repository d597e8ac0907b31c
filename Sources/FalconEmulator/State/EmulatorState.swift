/// Everything the emulator remembers, guarded by one lock (see ``Locked``).
struct EmulatorState: Sendable {
    /// A bearer token and when it stops working.
    struct Token: Sendable {
        var clientID: String
        var expiresAt: Double
        /// The customer the token acts for: `member_cid` when given, else the configured CID.
        var cid: String
    }

    var configuration: EmulatorConfiguration
    var faultProgress: [FaultRuleProgress]
    var tokens: [String: Token] = [:]
    var samples: [String: SampleRecord] = [:]
    var scans: [String: ScanRecord] = [:]
    var scanOrder: [String] = []
    var quotaUsed: Int
    var nextScanSequence = 0
    /// Authenticated calls per CID (§3.2: 6,000 per minute per customer account).
    var authenticatedWindows: [String: SlidingWindow] = [:]
    var proFiles: [String: ProFileRecord] = [:]
    var proScans: [String: ProScanRecord] = [:]
    var proScanOrder: [String] = []
    var proQuotaUsed = 0
    var tokenWindow = SlidingWindow()
    var unauthenticatedWindow = SlidingWindow()
    var recorded: [RecordedRequest] = []
    var violations: [String] = []
    var stats = EmulatorStats()

    /// Oldest records are dropped past this many, so a long `quickscan emulator` run stays bounded.
    static let recordLimit = 100_000

    init(configuration: EmulatorConfiguration) {
        self.configuration = configuration
        self.faultProgress = configuration.faults.map { FaultRuleProgress(seed: $0.seed) }
        self.quotaUsed = configuration.quotaUsed
    }

    mutating func replaceFaults(_ rules: [FaultRule]) {
        configuration.faults = rules
        faultProgress = rules.map { FaultRuleProgress(seed: $0.seed) }
    }

    mutating func record(_ request: RecordedRequest) {
        if recorded.count >= Self.recordLimit { recorded.removeFirst(recorded.count / 10) }
        recorded.append(request)
    }

    mutating func addViolation(_ violation: String) {
        if violations.count >= Self.recordLimit { violations.removeFirst(violations.count / 10) }
        violations.append(violation)
    }

    /// Whether a scan is done at `now`, without counting a poll (quota, queries, aggregates).
    ///
    /// A scan scripted to stay in progress for N polls is done only once a GetScans has seen it
    /// done, so every view agrees with what the last poll reported.
    func isDone(_ scan: ScanRecord, now: Double) -> Bool {
        scan.done || (configuration.scanPollsUntilDone == 0
            && now - scan.createdAt >= configuration.scanDurationSeconds)
    }

    /// One GetScans look at a scan: counts the poll while the scan is in progress and returns
    /// whether it is done (sticky once true).
    mutating func poll(scanID: String, now: Double) -> Bool {
        guard var scan = scans[scanID] else { return false }
        if !scan.done {
            if scan.pollsSeen < configuration.scanPollsUntilDone {
                scan.pollsSeen += 1
            } else if now - scan.createdAt >= configuration.scanDurationSeconds {
                scan.done = true
            }
            scans[scanID] = scan
        }
        return scan.done
    }

    /// `meta.quota`: `used` counts samples submitted; `in_progress` counts samples in volumes
    /// not yet done.
    func quota(now: Double) -> JSONValue {
        let inProgress = scans.values.filter { !isDone($0, now: now) }.reduce(0) { $0 + $1.samples.count }
        return ["total": .int(configuration.quotaTotal), "used": .int(quotaUsed), "in_progress": .int(inProgress)]
    }

    /// The scans as FQL and aggregation documents, in creation order.
    func documents(now: Double) -> [ScanDocument] {
        scanOrder.compactMap { id in
            guard let scan = scans[id] else { return nil }
            let done = isDone(scan, now: now)
            return ScanDocument(
                id: scan.id,
                cid: scan.cid,
                status: done ? "done" : configuration.inProgressStatus,
                createdAt: scan.createdAtSeconds,
                sequence: scan.sequence,
                sha256s: scan.samples.map(\.sha256),
                verdicts: done ? scan.samples.map(\.verdict) : []
            )
        }
    }
}

extension EmulatorState {
    /// The key of a QuickScan Pro file: files are stored per CID.
    static func proFileKey(cid: String, sha256: String) -> String { cid + "/" + sha256 }

    /// Whether a QuickScan Pro scan is done at `now`, without counting a poll.
    func isDone(_ scan: ProScanRecord, now: Double) -> Bool {
        scan.done || (configuration.scanPollsUntilDone == 0
            && now - scan.createdAt >= configuration.scanDurationSeconds)
    }

    /// One GetScanResult look at a QuickScan Pro scan, as ``poll(scanID:now:)`` for volumes.
    mutating func pollPro(scanID: String, now: Double) -> Bool {
        guard var scan = proScans[scanID] else { return false }
        if !scan.done {
            if scan.pollsSeen < configuration.scanPollsUntilDone {
                scan.pollsSeen += 1
            } else if now - scan.createdAt >= configuration.scanDurationSeconds {
                scan.done = true
                scan.updatedAt = now
            }
            proScans[scanID] = scan
        }
        return scan.done
    }

    /// QuickScan Pro's `QuotaResource`: `used` counts scans started, `in_progress` those of
    /// `cid` not done yet.
    func proQuota(cid: String, now: Double) -> JSONValue {
        let inProgress = proScans.values.filter { $0.cid == cid && !isDone($0, now: now) }.count
        return ["total": .int(configuration.quotaTotal), "used": .int(proQuotaUsed), "in_progress": .int(inProgress)]
    }
}
