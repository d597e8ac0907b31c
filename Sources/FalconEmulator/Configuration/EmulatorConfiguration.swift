/// The emulator's behaviour knobs; every default follows `reference/falcon-api.md`.
///
/// Where the fact sheet marks a fact as unknown ([INF] or an open question), the behaviour is a
/// property here so tests can pin either reading.
public struct EmulatorConfiguration: Sendable {
    /// What ScanSamples does with a sha256 that was never uploaded (or was deleted): open question 6.
    public enum UnknownSampleBehaviour: String, Sendable, CaseIterable {
        /// 400 whose `errors[]` names the sha256.
        case reject
        /// Accept the volume; the sample gets verdict `unknown` with error `sample not found`.
        case unknownVerdict = "unknown-verdict"
    }

    /// What GetScans does with a scan id it does not know: open question 6.
    public enum UnknownScanBehaviour: String, Sendable, CaseIterable {
        /// 404 with the `ScanV1Response` shape and one `errors[]` entry per unknown id, when no
        /// id was found (200 with the errors when some were).
        case notFound = "not-found"
        /// 200 with the unknown ids simply absent from `resources`.
        case emptyOK = "empty-ok"
        /// 404 as soon as one id is unknown, still listing the scans that were found (the
        /// swagger's 404 is the full `ScanV1Response`).
        case notFoundIfAny = "not-found-if-any"
    }

    /// What a scan makes of a sample whose type is not on Sample Uploads v3's accepted list
    /// (§4.1) and that no content marker classifies.
    public enum UnacceptedTypeBehaviour: String, Sendable, CaseIterable {
        /// Verdict `unknown` with error `unsupported file type`, as the real scanner treats
        /// unscannable types (§4.1, §5.2).
        case unknownVerdict = "unknown-verdict"
        /// Scan it anyway: ``EmulatorConfiguration/cleanVerdict`` (the emulator's old behaviour).
        case scan
    }

    /// Where QuickScan Pro puts `quota` on upload, launch and query replies (quickscan-pro.md §3:
    /// "in `meta` and/or top level").
    public enum QuotaPlacement: String, Sendable, CaseIterable {
        case meta
        case topLevel = "top-level"
        case both
    }

    /// Address to bind.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks an ephemeral port (read it back from ``FalconEmulator/port``).
    public var port = 0
    /// Accepted API clients, client_id to client_secret. Empty accepts any non-empty pair.
    public var credentials: [String: String] = [:]
    /// `X-Cs-Region` on the token 201. Nil omits the header: FalconPy follows a real region
    /// name to the real cloud even when it was given a base URL (fact sheet §2).
    public var region: String? = nil
    /// `expires_in` of issued tokens; a token is refused once this many seconds have passed.
    public var tokenLifetimeSeconds = 1799
    /// The customer id: the first half of scan ids and `cid` in GetScans, and the CID of tokens
    /// issued without `member_cid`. A token issued with `member_cid` belongs to that CID: its
    /// rate-limit window and its QuickScan Pro files and scans are its own (§3.2: limits are
    /// per CID).
    public var cid = "0123456789abcdef0123456789abcdef"
    /// How many GetScans (and GetScanResult) calls naming a scan still see it in progress (per
    /// scan). One by default: a real scan is never done the moment it starts.
    public var scanPollsUntilDone = 1
    /// Wall-clock seconds a scan stays in progress after ScanSamples. Both this and
    /// ``scanPollsUntilDone`` must be satisfied for a scan to be done.
    public var scanDurationSeconds: Double = 0
    /// While in progress, leave the scan out of GetScans `resources` (true, which the SDK samples
    /// tolerate) or list it with ``inProgressStatus`` and no verdicts (false, the default: the
    /// legacy scanner sleeps only on a listed non-`done` status, §8). The same for
    /// GetScanResult.
    public var emptyResourcesWhileInProgress = false
    /// The `status` of a scan that is not done (open question 1; only `done` is documented).
    public var inProgressStatus = "in_progress"
    /// `meta.quota.total`.
    public var quotaTotal = 10_000
    /// `meta.quota.used` at start; ScanSamples adds one per sample in the volume.
    public var quotaUsed = 0
    /// Status of a ScanSamples call that would take `used` past `total` (open question 9).
    /// The body is `msa.ReplyMetaOnly` with the message `quota exceeded`.
    public var quotaExhaustedStatus = 403
    /// Largest accepted sample (§4.1: 256 MB); larger uploads get a 400 naming the limit.
    public var maxUploadBytes = 256 * 1024 * 1024
    /// Samples up to this size are kept whole so GetSampleV3 can return them; larger ones
    /// keep only their hash, size and first bytes (the emulator never buffers a whole upload).
    public var retainSampleBytes = 1024 * 1024
    /// `X-Ratelimit-Limit` of authenticated calls; `X-Ratelimit-Remaining` counts down over a
    /// sliding minute and a call past the limit gets a 429 (§3.2).
    public var rateLimitPerMinute = 6000
    /// The sliding window of ``rateLimitPerMinute`` in seconds: 60, as the API's; tests shorten
    /// it to fill and drain a window in seconds.
    public var rateLimitWindowSeconds = 60.0
    /// Verdict of samples holding the EICAR test string.
    public var malwareVerdict = "malware"
    /// Verdict of samples holding the marker `QUICKSCAN-EMULATOR-SUSPICIOUS`.
    public var suspiciousVerdict = "suspicious"
    /// Verdict of everything else.
    public var cleanVerdict = "no specific threat"
    /// See ``UnknownSampleBehaviour``.
    public var unknownSampleBehaviour: UnknownSampleBehaviour = .reject
    /// See ``UnknownScanBehaviour``.
    public var unknownScanBehaviour: UnknownScanBehaviour = .notFound
    /// See ``UnacceptedTypeBehaviour``. Plain text (`.txt`, `.md`, …) is not on the list.
    public var unacceptedTypeBehaviour: UnacceptedTypeBehaviour = .unknownVerdict
    /// See ``QuotaPlacement``.
    public var proQuotaPlacement: QuotaPlacement = .both
    /// Extra headers on every response, e.g. `X-Api-Deprecation` notices (§3.1).
    public var extraResponseHeaders: [(name: String, value: String)] = []
    /// Scripted faults, checked in order on every request.
    public var faults: [FaultRule] = []

    /// The defaults above.
    public init() {}

    /// The defaults, then `configure`.
    public init(_ configure: (inout EmulatorConfiguration) -> Void) {
        configure(&self)
    }
}
