import Foundation

/// Wall-clock time and sleeping, injected so tests can honour RetryAfter without waiting.
///
/// `X-RateLimit-RetryAfter` is an epoch time, so the clock is a wall clock (`Date`), not a
/// monotonic one.
public protocol FalconClock: Sendable {
    func now() -> Date
    func sleep(for duration: Duration) async throws
}

/// The real clock: `Date()` and `Task.sleep`.
public struct SystemFalconClock: FalconClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

extension Duration {
    /// Seconds as a Double.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    static func seconds(_ value: Double) -> Duration {
        .nanoseconds(Int64((max(0, value) * 1e9).rounded()))
    }
}
