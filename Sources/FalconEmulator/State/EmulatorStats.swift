/// Counters of what the emulator has done, for tests to check effects (or their absence).
public struct EmulatorStats: Sendable, Equatable {
    /// All requests received, including faulted ones.
    public var requests = 0
    /// Tokens issued by `/oauth2/token`.
    public var tokensIssued = 0
    /// Successful `/oauth2/revoke` calls.
    public var revokes = 0
    /// Samples stored by UploadSampleV3 (re-uploads of the same content count again).
    public var uploads = 0
    /// ScanSamples calls that reached the handler (authenticated, not faulted).
    public var scanSamplesCalls = 0
    /// Volumes created by ScanSamples.
    public var scansCreated = 0
    /// GetScans calls that reached the handler.
    public var getScansCalls = 0
    /// QuerySubmissionsMixin0 calls that reached the handler.
    public var querySubmissionsCalls = 0
    /// GetScansAggregates calls that reached the handler.
    public var aggregatesCalls = 0
    /// Samples removed by DeleteSampleV3.
    public var samplesDeleted = 0
    /// Requests answered 401.
    public var unauthorized = 0
    /// Requests answered 429 because the CID's sliding window was used up (`--rate-limit`).
    public var rateLimited = 0
    /// Faults applied, by ``FaultRule/Kind/name``.
    public var faultsInjected: [String: Int] = [:]

    public init() {}

    /// One JSON object (sorted keys), e.g. for the `emulator stats:` line printed at shutdown.
    public var json: String {
        let counts: [(String, Int)] = [
            ("requests", requests), ("tokens_issued", tokensIssued), ("revokes", revokes), ("uploads", uploads),
            ("scan_samples_calls", scanSamplesCalls), ("scans_created", scansCreated), ("get_scans_calls", getScansCalls),
            ("query_submissions_calls", querySubmissionsCalls), ("aggregates_calls", aggregatesCalls),
            ("samples_deleted", samplesDeleted), ("unauthorized", unauthorized), ("rate_limited", rateLimited),
        ]
        let faults = faultsInjected.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        let fields = counts.sorted { $0.0 < $1.0 }.map { "\"\($0.0)\":\($0.1)" } + ["\"faults_injected\":{\(faults)}"]
        return "{" + fields.joined(separator: ",") + "}"
    }
}
