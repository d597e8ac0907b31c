import FalconAPI
import Foundation
import NIOConcurrencyHelpers

/// A `FalconClock` whose sleeps return at once and move its time forward; records every sleep.
public final class ManualFalconClock: FalconClock {
    private let state: NIOLockedValueBox<(now: Date, sleeps: [Duration])>

    public init(start: Date = Date()) {
        state = NIOLockedValueBox((start, []))
    }

    public func now() -> Date { state.withLockedValue { $0.now } }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        state.withLockedValue {
            $0.sleeps.append(duration)
            $0.now += Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
    }

    /// Moves time forward without a sleep (e.g. to age a token).
    public func advance(by seconds: Double) {
        state.withLockedValue { $0.now += seconds }
    }

    /// Every sleep asked for so far, in seconds.
    public var sleeps: [Double] {
        state.withLockedValue { $0.sleeps.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } }
    }
}
