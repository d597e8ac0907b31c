import Foundation

/// How many times and how long a call is retried after 429, 5xx, HTML error pages and
/// transport errors.
///
/// Backoff before attempt n+1 is `min(maxDelay, baseDelay * 2^(n-1))` with full jitter in
/// [50 %, 100 %] of that value. With the defaults (base 0.5 s, cap 30 s):
///
/// | after attempt | delay (before jitter) |
/// |---|---|
/// | 1 | 0.5 s |
/// | 2 | 1 s |
/// | 3 | 2 s |
/// | 4 | 4 s |
/// | 5 | 8 s |
///
/// A call stops retrying when `maxAttempts` is reached or the next wait would pass `deadline`
/// seconds since the call started; a 429 whose RetryAfter lies beyond the deadline fails at
/// once with `.rateLimited` so callers can defer the work.
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// Seconds a single call (all its attempts and waits) may take.
    public var deadline: Double
    /// Seconds to wait after a 429 that carries no usable `X-RateLimit-RetryAfter`.
    public var defaultRateLimitWait: Double

    public init(maxAttempts: Int = 6, baseDelay: Double = 0.5, maxDelay: Double = 30, deadline: Double = 300, defaultRateLimitWait: Double = 5) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.deadline = deadline
        self.defaultRateLimitWait = defaultRateLimitWait
    }

    /// The delay before the attempt following `attempt` (1-based), jittered by `random` in [0, 1).
    public func backoff(afterAttempt attempt: Int, random: Double) -> Double {
        let exponent = Double(max(0, attempt - 1))
        let raw = min(maxDelay, baseDelay * pow2(exponent))
        return raw * (0.5 + 0.5 * random)
    }

    private func pow2(_ x: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(min(x, 62)) { r *= 2 }
        return r
    }
}

/// Parses `X-RateLimit-RetryAfter`: epoch seconds in practice, milliseconds per the swagger
/// text (reference §3.3); values above 10^12 are read as milliseconds. Returns epoch seconds.
public func parseRetryAfter(_ value: String) -> Double? {
    guard let number = Double(value.trimmingCharacters(in: .whitespaces)), number.isFinite, number > 0 else { return nil }
    return number > 1e12 ? number / 1000 : number
}
