import FalconAPI
import Foundation
import Testing
import TestSupport

/// `RequestLimiter` on a test clock: how the concurrency adapts and how it paces by the
/// rate-limit headers. No sockets.
@Suite struct RequestLimiterTests {
    /// Sends one request that takes `latency` seconds and answers `status`.
    func roundTrip(_ limiter: RequestLimiter, _ clock: ManualFalconClock, latency: Double = 0.05, status: Int = 200,
                   limit: Int? = nil, remaining: Int? = nil, operation: String = "UploadSampleV3") async throws {
        let permit = try await limiter.acquire(operation: operation)
        clock.advance(by: latency)
        await limiter.complete(permit, .reply(status: status, limit: limit, remaining: remaining))
    }

    @Test func slowStartDoublesPerRoundTripUpToTheCeiling() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 16, initialConcurrency: 2)
        #expect(await limiter.concurrency == 2)
        for _ in 0..<4 { try await roundTrip(limiter, clock) }
        #expect(await limiter.concurrency == 6)  // +1 per reply without queueing
        for _ in 0..<40 { try await roundTrip(limiter, clock) }
        #expect(await limiter.concurrency == 16)  // never above the ceiling
    }

    @Test func queueingShrinksTheWindowThenItGrowsAdditively() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 64, initialConcurrency: 10)
        for _ in 0..<10 { try await roundTrip(limiter, clock, latency: 0.05) }
        #expect(await limiter.concurrency == 20)
        // Latency climbs to 4× the baseline: the server queues; the window shrinks to 80 %.
        for _ in 0..<5 { try await roundTrip(limiter, clock, latency: 0.2) }
        let shrunk = await limiter.concurrency
        #expect(shrunk < 20)
        // Back to the baseline: growth is now additive (about one per window of replies).
        for _ in 0..<20 { try await roundTrip(limiter, clock, latency: 0.05) }
        let grown = await limiter.concurrency
        #expect(grown > shrunk && grown < shrunk + 3, "\(shrunk) → \(grown)")
    }

    @Test func a429HalvesTheWindowAndA5xxShrinksIt() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 64, initialConcurrency: 16)
        try await roundTrip(limiter, clock, status: 429)
        #expect(await limiter.concurrency == 8)
        #expect(await limiter.rateLimitedReplies == 1)
        clock.advance(by: 1)
        try await roundTrip(limiter, clock, status: 503)
        #expect(await limiter.concurrency == 6.4)
    }

    @Test func concurrencyIsBoundedByTheWindow() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 8, initialConcurrency: 2)
        let first = try await limiter.acquire(operation: "A")
        _ = try await limiter.acquire(operation: "A")
        let third = Task { try await limiter.acquire(operation: "A") }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await limiter.inFlight == 2)  // the third waits for a slot
        await limiter.complete(first, .reply(status: 200, limit: nil, remaining: nil))
        _ = try await third.value
        #expect(await limiter.inFlight >= 2)
    }

    @Test func pacesByTheRemainingBudgetOfTheWindow() async throws {
        let clock = ManualFalconClock()
        let start = clock.now().timeIntervalSince1970
        // Limit 100, 1 % reserve (1 request): 99 may go in the window.
        let limiter = RequestLimiter(clock: clock, ceiling: 1, initialConcurrency: 1)
        try await roundTrip(limiter, clock, latency: 0.01, limit: 100, remaining: 99)
        #expect(await limiter.others == 0)
        for i in 1..<99 { try await roundTrip(limiter, clock, latency: 0.01, limit: 100, remaining: 99 - i) }
        #expect(clock.sleeps.isEmpty)
        // The 100th waits until the first leaves the window (60 s + 1 s margin after it went).
        try await roundTrip(limiter, clock, latency: 0.01, limit: 100, remaining: 1)
        let wait = try #require(clock.sleeps.last)
        #expect(abs(start + 61 - (clock.now().timeIntervalSince1970 - 0.01)) < 0.001, "slept \(wait)")
        #expect(await limiter.pacedRequests == 1)
    }

    @Test func otherClientsOfTheCIDShrinkTheBudget() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 1, initialConcurrency: 1)
        // Another client used 50 of 100: our first reply says 49 remain.
        try await roundTrip(limiter, clock, limit: 100, remaining: 49)
        #expect(await limiter.others == 50)
        #expect(await limiter.pacingDelay(at: clock.now().timeIntervalSince1970) == 0)
        for i in 1..<49 { try await roundTrip(limiter, clock, limit: 100, remaining: 49 - i) }
        #expect(await limiter.pacingDelay(at: clock.now().timeIntervalSince1970) > 50)
    }

    @Test func aWaitPastTheDeadlineIsARateLimitError() async throws {
        let clock = ManualFalconClock()
        let limiter = RequestLimiter(clock: clock, ceiling: 1, initialConcurrency: 1)
        try await roundTrip(limiter, clock, limit: 2, remaining: 1)
        do {
            _ = try await limiter.acquire(operation: "DeleteSampleV3", notAfter: clock.now().timeIntervalSince1970 + 5)
            Issue.record("expected a rate-limit error")
        } catch let error as FalconError {
            #expect(error.kind == .rateLimited)
            #expect((error.retryAfter ?? 0) > clock.now().timeIntervalSince1970 + 50)
        }
        #expect(await limiter.inFlight == 0)
    }
}
