import Foundation

/// The one rate-limit state every request of a client honours: the cooldown set by the last
/// 429 (`X-RateLimit-RetryAfter`) and a slowdown when `X-RateLimit-Remaining` runs low.
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
        // gofalcon's proactive throttle (reference §3.4): 200 ms at ≤ 10 left, 500 ms at ≤ 5.
        if let remaining = lastRemaining {
            if remaining <= 5 { wait = max(wait, 0.5) } else if remaining <= 10 { wait = max(wait, 0.2) }
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
