import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2)))
struct RetryAndAuthTests {
    @Test func rateLimitRetryAfterIsHonouredBySharedCooldown() async throws {
        let started = Date()
        let clock = ManualFalconClock(start: started)
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("429:retry-after=30,count=1,op=GetScans")] }, clock: clock) { client, emulator in
            _ = try await client.quota()
            // The 429's RetryAfter (epoch seconds, ~30 s ahead of the real clock) turned into one
            // wait of about 30 s on the manual clock, which started when the test did.
            let waits = clock.sleeps.filter { $0 > 1 }
            let realElapsed = Date().timeIntervalSince(started)
            #expect(waits.count == 1)
            #expect((27...(31 + realElapsed)).contains(waits.first ?? 0), "\(clock.sleeps)")
            #expect(emulator.stats.faultsInjected["429"] == 1)
            // The cooldown is over: a further call goes straight through.
            let before = clock.sleeps.count
            _ = try await client.quota()
            #expect(clock.sleeps.count == before)
        }
    }

    @Test func cooldownIsSharedByConcurrentRequests() async throws {
        let clock = ManualFalconClock()
        try await withClient(clock: clock) { client, emulator in
            _ = try await client.quota()  // authenticate first
            await client.rateLimit.coolDown(until: clock.now().timeIntervalSince1970 + 20)
            async let a = client.quota()
            async let b = client.getScans(ids: [])
            _ = try await (a, b)
            #expect(clock.sleeps.filter { $0 >= 19 }.count >= 1)
            #expect(emulator.stats.getScansCalls == 3)
        }
    }

    @Test func retryAfterBeyondTheDeadlineFailsAtOnceAsRateLimited() async throws {
        let clock = ManualFalconClock()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("429:retry-after=3600,op=GetScans")] }, clock: clock, retry: RetryPolicy(deadline: 120)) { client, _ in
            do {
                _ = try await client.quota()
                Issue.record("expected a rate-limit error")
            } catch let thrown {
                let error = try #require((thrown as Any) as? FalconError)
                #expect(error.kind == .rateLimited)
                #expect(error.status == 429)
                #expect((error.retryAfter ?? 0) > clock.now().timeIntervalSince1970 + 3000)
                #expect(error.traceID != nil)
            }
            #expect(clock.sleeps.allSatisfy { $0 < 120 })
        }
    }

    @Test(arguments: ["5xx:status=503,count=2,op=GetScans", "html502:count=2,op=GetScans", "drop:count=2,op=GetScans", "5xx:status=500,count=2,op=UploadSampleV3"])
    func transientFaultsAreRetriedWithBackoff(spec: String) async throws {
        let clock = ManualFalconClock()
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse(spec)] }, clock: clock) { client, emulator in
            if spec.contains("Upload") {
                let result = try await client.uploadSample(path: try dir.write("f.txt", "content"))
                #expect(!result.sha256.isEmpty)
            } else {
                let (quota, _) = try await client.quota()
                #expect(quota != nil)
            }
            // Exponential with jitter: attempt 1 → [0.25, 0.5], attempt 2 → [0.5, 1]. (On a
            // loaded machine the client may also wait for other reasons: those sleeps are
            // allowed, the two backoffs must be there.)
            let backoffs = clock.sleeps
            #expect(backoffs.count >= 2, "\(backoffs)")
            let first = backoffs.firstIndex { (0.25...0.5).contains($0) }
            let second = backoffs.lastIndex { (0.5...1).contains($0) }
            #expect(first != nil && second != nil && first! < second!, "\(backoffs)")
            #expect(emulator.stats.faultsInjected.values.reduce(0, +) == 2)
        }
    }

    @Test func attemptsAreBounded() async throws {
        let clock = ManualFalconClock()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("5xx:status=502,op=GetScans")] }, clock: clock, retry: RetryPolicy(maxAttempts: 3)) { client, emulator in
            do {
                _ = try await client.quota()
                Issue.record("expected failure")
            } catch let thrown {
                let error = try #require((thrown as Any) as? FalconError)
                #expect(error.kind == .http)
                #expect(error.status == 502)
                #expect(error.isRetryable)
                #expect(error.traceID != nil)
            }
            #expect(emulator.recorded.filter { $0.path == "/scanner/entities/scans/v1" }.count == 3)
        }
    }

    @Test func scanSamplesIsNotRepeatedWhenItsAnswerIsLost() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("lost-response:op=ScanSamples,count=1")] }) { client, emulator in
            let sha = try await client.uploadSample(path: try dir.write("x.txt", "x")).sha256
            do {
                _ = try await client.scanSamples([sha])
                Issue.record("expected the lost answer to surface")
            } catch let thrown {
                let error = try #require((thrown as Any) as? FalconError)
                #expect(error.kind == .transport)
                #expect(error.mayHaveTakenEffect)
            }
            #expect(emulator.stats.scanSamplesCalls == 1)
            // The volume exists: a caller reconciles through QuerySubmissions + GetScans.
            let ids = try await client.querySubmissions(filter: "created_timestamp:>'2000-01-01T00:00:00Z'")
            #expect(ids.resources.count == 1)
            let scans = try await client.getScans(ids: ids.resources)
            #expect(scans.resources.first?.samples.map(\.sha256) == [sha])
        }
    }

    @Test func scanSamplesIsRetriedAfterA429() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("429:retry-after=2,op=ScanSamples,count=1")] }) { client, emulator in
            let sha = try await client.uploadSample(path: try dir.write("x.txt", "x")).sha256
            _ = try await client.scanSamples([sha])
            // A 429 proves the call did not take effect, so repeating it is safe.
            let ids = try await client.querySubmissions()
            #expect(ids.resources.count == 1)
            #expect(emulator.recorded.filter { $0.path == "/scanner/entities/scans/v1" && $0.method == "POST" }.count == 2)
        }
    }

    @Test func expiredTokenIsRenewedOnceOn401() async throws {
        try await withClient { client, emulator in
            _ = try await client.quota()
            emulator.setFaults([try FaultRule.parse("expire-tokens:count=1,op=GetScans")])
            _ = try await client.quota()
            #expect(emulator.stats.tokensIssued == 2)
            #expect(emulator.recorded.contains { $0.status == 401 })
        }
    }

    @Test func tokenIsRefreshedAheadOfExpiry() async throws {
        let clock = ManualFalconClock()
        try await withClient(configure: { $0.tokenLifetimeSeconds = 1799 }, clock: clock) { client, emulator in
            _ = try await client.quota()
            clock.advance(by: 1700)  // inside the 120 s renew window
            _ = try await client.quota()
            #expect(emulator.stats.tokensIssued == 2)
            #expect(!emulator.recorded.contains { $0.status == 401 })
        }
    }

    @Test func shortLivedTokensThroughoutARun() async throws {
        // 5-second tokens on the emulator's real clock; the client renews at half-life.
        let dir = try TemporaryDirectory()
        try await withEmulator({ $0.tokenLifetimeSeconds = 5 }) { emulator in
            let client = try makeClient(emulator, clock: ManualFalconClock())
            let path = try dir.write("t.txt", "t")
            let sha = try await client.uploadSample(path: path).sha256
            emulator.setFaults([try FaultRule.parse("expire-tokens:every=2")])
            for _ in 0..<4 {
                _ = try await client.getScans(ids: [])
                _ = try await client.uploadSample(path: path, expectedSHA256: sha)
            }
            await client.shutdown()
            #expect(emulator.stats.tokensIssued >= 2)
        }
    }

    @Test func refusedCredentialsAreAnAuthenticationErrorWithoutTheSecret() async throws {
        try await withEmulator({ $0.credentials = [testCredentials.clientID: "another-secret"] }) { emulator in
            let client = try makeClient(emulator)
            do {
                _ = try await client.quota()
                Issue.record("expected refusal")
            } catch let thrown {
                let error = try #require((thrown as Any) as? FalconError)
                #expect(error.kind == .authentication)
                #expect(error.status == 403)
                #expect(error.apiErrors.first?.message == "access denied, authorization failed")
                #expect(error.traceID != nil)
                #expect(!"\(error)".contains(testCredentials.clientSecret))
            }
            await client.shutdown()
        }
    }

    @Test func revokeOnShutdown() async throws {
        try await withEmulator { emulator in
            let client = try makeClient(emulator)
            _ = try await client.quota()
            await client.shutdown()
            #expect(emulator.stats.revokes == 1)
            let revoke = emulator.recorded.last { $0.path == "/oauth2/revoke" }
            #expect(revoke?.authorizationScheme?.lowercased() == "basic")
            #expect(revoke?.status == 200)
        }
    }

    @Test func pacesInsteadOfRunningIntoTheLimit() async throws {
        // 8 per minute, one kept in reserve: the 8th call waits until the 1st leaves the window
        // (60 s + the 1 s margin, on the test clock) instead of drawing a 429.
        let clock = ManualFalconClock()
        try await withClient(configure: { $0.rateLimitPerMinute = 8 }, clock: clock) { client, emulator in
            for _ in 0..<8 { _ = try await client.getScans(ids: []) }
            #expect(emulator.recorded.filter { $0.status == 429 }.isEmpty)
            let waits = clock.sleeps.filter { $0 > 50 }
            #expect(waits.count == 1, "\(clock.sleeps)")
            #expect(waits.allSatisfy { $0 <= 61 })
            #expect(await client.limiter.pacedRequests == 1)
        }
    }

    @Test func regionHeaderNeverOverridesABaseURL() async throws {
        try await withEmulator({ $0.region = "us-2" }) { emulator in
            let client = try makeClient(emulator, cloud: .auto)
            _ = try await client.quota()
            #expect(await client.currentBaseURL == emulator.baseURL)
            await client.shutdown()
        }
    }

    @Test func unreachableHostIsATransportErrorOfTheTokenCall() async throws {
        let config = FalconClientConfiguration(
            credentials: testCredentials, baseURL: "http://127.0.0.1:9", requestTimeout: 5, retry: RetryPolicy(maxAttempts: 2))
        let client = try HTTPFalconClient(configuration: config, clock: ManualFalconClock())
        do {
            _ = try await client.quota()
            Issue.record("expected failure")
        } catch let thrown {
            let error = try #require((thrown as Any) as? FalconError)
            #expect(error.kind == .transport)
            #expect(error.operation == "oauth2AccessToken")
            #expect("\(error)".contains("127.0.0.1:9"))
        }
        await client.shutdown()
    }
}
