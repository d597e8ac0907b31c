import Foundation

/// The one limiter of a CID's requests: how many may be in flight (adapted to the observed
/// latency, up to a ceiling) and when the next may go so the sliding one-minute window of
/// `X-RateLimit-Limit` requests (reference §3.2) is never overrun.
///
/// **Concurrency (AIMD).** The window starts at `initialConcurrency` and, in slow start, grows
/// by one per request that comes back without queueing (doubling per round trip). A request
/// is queued when the short-term average latency of its operation exceeds twice that
/// operation's baseline (the lowest latency seen recently) plus 10 ms: the window then shrinks
/// to 80 % (at most once per round trip) and grows additively afterwards, by one per window of
/// completions. A 429 halves it; a 5xx or a transport error shrinks it to 80 %. It never goes
/// below 1 or above `ceiling`. By Little's law the throughput is concurrency / latency, so the
/// window stops growing where more concurrency only adds queueing.
///
/// **Pacing.** Every reply of an authenticated call carries `X-RateLimit-Limit` (L) and
/// `X-RateLimit-Remaining` (R). The limiter keeps the send time of each of its own requests of
/// the last minute. From R it estimates the requests other clients of the CID made in the
/// window (`L − R −` our own requests the server had counted), and lets a request go while
/// `own in window + others + reserve < L`. When the budget is spent, the next request waits
/// until our oldest request in the window leaves it (its send time + 60 s + `margin`, since the
/// server counts a request when it arrives): the remaining budget is spread over the rest of
/// the window exactly as the window frees it, which is the fastest schedule that never runs
/// into a 429. The 429 cooldown itself (`X-RateLimit-RetryAfter`) stays in `RateLimitGate`.
public actor RequestLimiter {
    /// What a caller holds while its request is in flight.
    public struct Permit: Sendable {
        public let operation: String
        public let sentAt: Double
        /// The request's place in the limiter's record of its own requests.
        let index: Int
    }

    /// How a request ended, for the adaptation.
    public enum Completion: Sendable, Equatable {
        /// A reply (any status); `limit` and `remaining` are its rate-limit headers.
        case reply(status: Int, limit: Int?, remaining: Int?)
        /// No reply (a transport error).
        case noReply
        /// The request never went out (its file could not be read): only the slot is freed.
        case notSent
    }

    /// The most requests in flight at once.
    public let ceiling: Int
    /// Requests kept unused in the window: other clients of the CID may need them, and
    /// concurrent requests in flight are counted by the server before their replies say so.
    public let reserveFraction: Double
    /// Seconds added to the window for our own requests (the server counts a request when it
    /// arrives, a little after we send it).
    public let margin: Double
    /// The sliding window (reference §3.2: one minute).
    public let window: Double

    private let clock: any FalconClock
    public private(set) var concurrency: Double
    private var slowStart = true
    public private(set) var inFlight = 0
    /// Requests in flight per operation now, and the most seen at once (tests, benchmarks).
    private var inFlightByOperation: [String: Int] = [:]
    public private(set) var peakInFlight: [String: Int] = [:]
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextWaiterID: UInt64 = 0
    /// Our own send times of the last window (+ margin), oldest first, and when each reply
    /// came (infinity while in flight); `sent[i]` is request number `dropped + i`.
    private var sent: [Double] = []
    private var replied: [Double] = []
    private var sentStart = 0
    private var dropped = 0
    /// The last `X-RateLimit-Limit` seen (nil: no pacing until the API says).
    public private(set) var serverLimit: Int?
    /// Requests of other clients in the window, estimated from the last reply; all of them
    /// have left the window by `othersUntil` (the estimate's time + the window).
    public private(set) var others = 0
    private var othersUntil = -Double.infinity
    private var baseline: [String: Double] = [:]
    private var recentMinimum: [String: Double] = [:]
    private var baselineSince: Double
    private var average: [String: Double] = [:]
    private var lastDecrease = -Double.infinity
    /// Requests that waited for the window, and 429s seen (status, benchmarks).
    public private(set) var pacedRequests = 0
    public private(set) var rateLimitedReplies = 0

    /// Seconds after which the latency baseline is taken afresh (the network may change).
    static let baselinePeriod = 30.0

    /// - Parameters:
    ///   - window: the API's sliding window (60 s); the margin is a sixtieth of it (1 s), at
    ///     least 0.5 s.
    public init(clock: any FalconClock, ceiling: Int = 32, initialConcurrency: Int = 4, reserveFraction: Double = 0.01,
                window: Double = 60) {
        self.clock = clock
        self.ceiling = max(1, ceiling)
        self.concurrency = Double(min(max(1, initialConcurrency), max(1, ceiling)))
        self.reserveFraction = reserveFraction
        self.margin = max(0.5, window / 60)
        self.window = window
        self.baselineSince = clock.now().timeIntervalSince1970
    }

    private var now: Double { clock.now().timeIntervalSince1970 }

    // MARK: acquire and complete

    /// Waits for a free slot and for room in the rate-limit window; the caller must pass the
    /// permit to `complete` once the request ended. Throws `.rateLimited` when the window has
    /// no room before `notAfter` (epoch seconds), and `CancellationError` when cancelled.
    public func acquire(operation: String, notAfter: Double? = nil) async throws -> Permit {
        if inFlight < Int(concurrency) && waiters.isEmpty {
            inFlight += 1
        } else {
            try await waitForSlot()  // the slot is handed over, counted, on resume
        }
        do {
            var paced = false
            while true {
                let delay = pacingDelay(at: now)
                if delay <= 0 { break }
                if let notAfter, now + delay > notAfter {
                    throw FalconError(kind: .rateLimited, message: "the rate-limit window is used up until \(HTTPFalconClient.formatEpoch(now + delay))",
                                      operation: operation, status: 429, isRetryable: true, retryAfter: now + delay)
                }
                paced = true
                try await clock.sleep(for: .seconds(delay))
            }
            if paced { pacedRequests += 1 }
        } catch {
            release()
            throw error
        }
        let at = now
        sent.append(at)
        replied.append(.infinity)
        inFlightByOperation[operation, default: 0] += 1
        peakInFlight[operation] = max(peakInFlight[operation] ?? 0, inFlightByOperation[operation]!)
        return Permit(operation: operation, sentAt: at, index: dropped + sent.count - 1)
    }

    /// Records how the request of `permit` ended and frees its slot.
    public func complete(_ permit: Permit, _ completion: Completion) {
        let at = now
        let latency = max(0, at - permit.sentAt)
        let slot = permit.index - dropped
        if slot >= 0 && slot < replied.count { replied[slot] = at }
        switch completion {
        case .reply(let status, let limit, let remaining):
            // A 401 is counted in the unauthenticated bucket (15 a minute per IP, reference
            // §3.2), not the CID's window: its headers say nothing about ours.
            let limit = status == 401 ? nil : limit
            let remaining = status == 401 ? nil : remaining
            if let limit, limit > 0 { serverLimit = limit }
            if let limit = serverLimit, let remaining, status != 429 {
                // The server's count when it answered, minus ours it had surely seen: those whose
                // replies came before this request was sent. Ours still in flight then may have
                // arrived before it or after, so they count as others': the estimate errs high by
                // at most the requests in flight, never low. A 429's own RetryAfter is the
                // authority on when to go on (the shared cooldown), so it does not feed it.
                let counted = limit - remaining
                let ours = ownRequests(at: at, repliedBefore: permit.sentAt) + 1  // + this one
                others = max(0, counted - ours)
                othersUntil = at + window
            }
            if status == 429 {
                rateLimitedReplies += 1
                decrease(to: 0.5, at: at, force: true)
            } else if status == 401 {
                // Tokens expired under calls in flight: each of them is wasted and repeated.
                decrease(to: 0.5, at: at, force: false)
            } else if status >= 500 {
                decrease(to: 0.8, at: at, force: false)
            } else {
                adapt(operation: permit.operation, latency: latency, at: at)
            }
        case .noReply:
            decrease(to: 0.8, at: at, force: false)
        case .notSent:
            break
        }
        inFlightByOperation[permit.operation, default: 1] -= 1
        release()
    }

    // MARK: pacing

    /// Seconds before the next request may go (0: now).
    public func pacingDelay(at time: Double) -> Double {
        prune(at: time)
        guard let limit = serverLimit else { return 0 }
        let reserve = max(1, Int((Double(limit) * reserveFraction).rounded(.up)))
        let own = sent.count - sentStart
        let othersNow = time < othersUntil ? others : 0
        let budget = limit - reserve - othersNow - own
        if budget > 0 { return 0 }
        // The (1 − budget)-th of our requests in the window frees the room we need; when ours
        // are not enough, the other clients' requests have all left by `othersUntil`.
        guard own > -budget else { return max(0.001, othersUntil + margin - time) }
        return max(0.001, sent[sentStart - budget] + window + margin - time)
    }

    private func prune(at time: Double) {
        let cutoff = time - window - margin
        while sentStart < sent.count && sent[sentStart] <= cutoff { sentStart += 1 }
        if sentStart > 4096 && sentStart * 2 > sent.count {
            sent.removeFirst(sentStart)
            replied.removeFirst(sentStart)
            dropped += sentStart
            sentStart = 0
        }
    }

    private func ownRequests(at time: Double, repliedBefore cutoff: Double) -> Int {
        let start = time - window
        var count = 0
        var i = sent.count - 1
        while i >= sentStart && sent[i] > start {
            if replied[i] <= cutoff { count += 1 }
            i -= 1
        }
        return count
    }

    // MARK: concurrency

    private func adapt(operation: String, latency: Double, at time: Double) {
        if time - baselineSince >= Self.baselinePeriod {
            baseline = recentMinimum
            recentMinimum = [:]
            baselineSince = time
        }
        recentMinimum[operation] = min(recentMinimum[operation] ?? .infinity, latency)
        let base = min(baseline[operation] ?? .infinity, recentMinimum[operation]!)
        baseline[operation] = base
        let smoothed = (average[operation] ?? latency) * 0.8 + latency * 0.2
        average[operation] = smoothed
        if smoothed > 2 * base + 0.010 {
            decrease(to: 0.8, at: time, force: false)
            return
        }
        concurrency = min(Double(ceiling), concurrency + (slowStart ? 1 : 1 / concurrency))
        wakeWaiters()
    }

    private func decrease(to factor: Double, at time: Double, force: Bool) {
        slowStart = false
        // At most once per round trip: the replies of one window all report the same queue.
        let roundTrip = average.values.max() ?? 0
        guard force || time - lastDecrease >= roundTrip else { return }
        lastDecrease = time
        concurrency = max(1, concurrency * factor)
    }

    private func release() {
        inFlight -= 1
        wakeWaiters()
    }

    private func wakeWaiters() {
        var free = Int(concurrency) - inFlight
        while free > 0 && !waiters.isEmpty {
            inFlight += 1
            waiters.removeFirst().continuation.resume()
            free -= 1
        }
    }

    private func waitForSlot() async throws {
        let id = nextWaiterID
        nextWaiterID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }
}
