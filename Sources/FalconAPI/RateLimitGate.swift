import Foundation

/// The cooldown every request of a client honours after a 429 (`X-RateLimit-RetryAfter`), and
/// the last rate-limit headers seen. Pacing within the window is `RequestLimiter`'s.
public actor RateLimitGate {
    private let clock: any FalconClock
    /// Epoch seconds before which no request is sent.
    public private(set) var cooldownUntil: Double?
    public private(set) var lastRemaining: Int?
    public private(set) var lastLimit: Int?

    public init(clock: any FalconClock, cooldownUntil: Double? = nil) {
        self.clock = clock
        self.cooldownUntil = cooldownUntil
    }

    /// Seconds to wait before the next request may go out (0 when free to go).
    public func delayBeforeNextRequest() -> Double {
        var wait = 0.0
        if let until = cooldownUntil {
            let left = until - clock.now().timeIntervalSince1970
            if left > 0 { wait = left } else { cooldownUntil = nil }
        }
        return wait
    }

    /// Records a 429: every request waits until `epochSeconds`.
    public func coolDown(until epochSeconds: Double) {
        cooldownUntil = max(cooldownUntil ?? 0, epochSeconds)
    }

    /// Records the rate-limit headers of a reply.
    public func observe(limit: Int?, remaining: Int?) {
        if let limit { lastLimit = limit }
        if let remaining {
            lastRemaining = remaining
        }
    }
}
