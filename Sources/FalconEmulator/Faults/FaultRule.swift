/// A scripted fault: what goes wrong, on which requests, and how often.
///
/// A rule matches a request by operation, path prefix and method. Of the matching requests it
/// skips the first ``skip``, then fires on every ``every``-th one (all when nil), each time with
/// ``probability`` (drawn from a generator seeded with ``seed``, so runs repeat), at most
/// ``count`` times (unlimited when nil). Rules without ``operation`` or ``pathPrefix`` never
/// fire on the OAuth2 endpoints, so clients can still authenticate during a 429 storm.
public struct FaultRule: Sendable, Equatable, CustomStringConvertible {
    /// Body shapes of the `malformed` fault.
    public static let malformedShapes = ["html", "truncated", "wrong-shape", "no-resources"]

    /// What the fault does to a request it fires on.
    public enum Kind: Sendable, Equatable {
        /// 429 `msa.ReplyMetaOnly`, `X-Ratelimit-Remaining: 0` and `X-Ratelimit-Retryafter`
        /// set to now plus this many seconds, as integer Unix epoch seconds (§3.3).
        case rateLimit(retryAfterSeconds: Int)
        /// A JSON `msa.ReplyMetaOnly` with this 5xx status; the request has no effect.
        case serverError(status: Int)
        /// 502 with an nginx-style `text/html` page, as a load balancer would send.
        case htmlBadGateway
        /// The TCP connection is closed without a response; the request has no effect.
        case dropConnection
        /// The request is carried out (state changes, quota is spent), then the connection is
        /// closed without a response.
        case lostResponse
        /// The response is delayed by this many milliseconds (combines with other faults).
        case latency(milliseconds: Int)
        /// Every token issued so far becomes invalid; this request, and any later one that
        /// uses such a token, gets the 401.
        case expireTokens
        /// A 200 whose body is broken (`html`, `truncated`, `wrong-shape`, `no-resources`); the
        /// operation is not performed.
        case malformed(shape: String)
        /// ScanSamples (or the operation the rule names, e.g. LaunchScan) refuses a request that
        /// names this sha256 with a 400 naming it; the request has no effect.
        case refuseSample(sha256: String)

        /// The kind's keyword in the spec syntax; also its key in ``EmulatorStats/faultsInjected``.
        public var name: String {
            switch self {
            case .rateLimit: return "429"
            case .serverError: return "5xx"
            case .htmlBadGateway: return "html502"
            case .dropConnection: return "drop"
            case .lostResponse: return "lost-response"
            case .latency: return "latency"
            case .expireTokens: return "expire-tokens"
            case .malformed: return "malformed"
            case .refuseSample: return "refuse-sample"
            }
        }
    }

    /// What happens when the rule fires.
    public var kind: Kind
    /// Only requests for this operation match (nil: any operation but OAuth2).
    public var operation: FalconOperation?
    /// Only requests whose path starts with this match (nil: any path).
    public var pathPrefix: String?
    /// Only requests with this HTTP method match, compared case-insensitively (nil: any).
    public var method: String?
    /// Matching requests to let through before the rule can fire.
    public var skip: Int
    /// Fire at most this many times (nil: no limit).
    public var count: Int?
    /// Fire only on every n-th matching request after the skipped ones (nil: on all).
    public var every: Int?
    /// Chance of firing on an eligible request, 0...1 (nil: always).
    public var probability: Double?
    /// Seed of the rule's random generator, used with ``probability``.
    public var seed: UInt64

    public init(
        _ kind: Kind,
        operation: FalconOperation? = nil,
        pathPrefix: String? = nil,
        method: String? = nil,
        skip: Int = 0,
        count: Int? = nil,
        every: Int? = nil,
        probability: Double? = nil,
        seed: UInt64 = 0
    ) {
        self.kind = kind
        self.operation = operation
        self.pathPrefix = pathPrefix
        self.method = method
        self.skip = skip
        self.count = count
        self.every = every
        self.probability = probability
        self.seed = seed
    }

    /// Whether a request is one this rule counts (before skip, every, probability and count).
    func matches(operation requestOperation: FalconOperation?, path: String, method requestMethod: String) -> Bool {
        if let method, method.uppercased() != requestMethod.uppercased() { return false }
        if let operation, operation != requestOperation { return false }
        if let pathPrefix, !path.hasPrefix(pathPrefix) { return false }
        // OAuth2 is only faulted when the rule names it: by operation, or by an /oauth2 path.
        if requestOperation?.isOAuth2 == true || path.hasPrefix("/oauth2") {
            let named = operation?.isOAuth2 == true || (pathPrefix?.hasPrefix("/oauth2") ?? false)
            if !named { return false }
        }
        return true
    }
}

/// Per-rule counters and random generator, reset whenever the rules are replaced.
struct FaultRuleProgress: Sendable {
    var matched = 0
    var fired = 0
    var random: SplitMix64

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// Counts one matching request and tells whether the rule fires on it. With `eligible`
    /// false (another fault already won this request) the request is only counted.
    mutating func fires(for rule: FaultRule, eligible: Bool = true) -> Bool {
        matched += 1
        guard eligible else { return false }
        let position = matched - rule.skip
        guard position >= 1 else { return false }
        if let every = rule.every, position % every != 0 { return false }
        if let probability = rule.probability, random.nextUnit() >= probability { return false }
        if let count = rule.count, fired >= count { return false }
        fired += 1
        return true
    }
}

/// SplitMix64: a tiny deterministic generator, so seeded fault rules (and the crash tests'
/// kill schedules) repeat exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in 0..<1.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
