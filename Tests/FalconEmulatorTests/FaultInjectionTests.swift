import FalconEmulator
import Foundation
import Testing

@Suite(.timeLimit(.minutes(1)))
struct FaultInjectionTests {
    @Test func rateLimitFaultSendsRetryAfterInEpochSeconds() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("429:retry-after=2,count=1,op=ScanSamples")] }) { emulator, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Samples.clean(), token: token)
            let before = Int(Date().timeIntervalSince1970)
            let limited = try await falcon.scanSamples([sha256], token: token)
            #expect(limited.status == 429)
            let after = Int(Date().timeIntervalSince1970)
            let retryAfter = try #require(limited.header("X-Ratelimit-Retryafter").flatMap(Int.init))
            // Epoch seconds, 2 s after the moment the emulator answered (a loaded machine may
            // take a while between `before` and `after`).
            #expect((before + 1...after + 3).contains(retryAfter), "\(before) \(retryAfter) \(after)")
            #expect(limited.header("X-Ratelimit-Remaining") == "0")
            let body = try limited.json()
            #expect(body["errors"][0]["code"].int == 429)
            #expect(!body["resources"].exists)
            #expect(emulator.stats.scansCreated == 0)
            #expect(try await falcon.scanSamples([sha256], token: token).status == 200)
            #expect(emulator.stats.faultsInjected["429"] == 1)
        }
    }

    @Test func rulesLeaveTheTokenEndpointAloneUnlessNamed() async throws {
        try await withFalcon({ $0.faults = [FaultRule(.serverError(status: 503))] }) { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.getScans(query: nil, token: token)
            #expect(response.status == 503)
            #expect(response.header("Content-Type") == "application/json")
            #expect(try response.json()["errors"][0]["code"].int == 503)
            emulator.setFaults([try FaultRule.parse("5xx:status=500,op=oauth2AccessToken,count=1")])
            #expect(try await falcon.requestToken().status == 500)
            #expect(try await falcon.requestToken().status == 201)
        }
    }

    @Test func everySkipAndCountScriptTheSequence() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("5xx:status=500,every=2,op=GetScans")] }) { emulator, falcon in
            let token = try await falcon.token()
            var statuses: [Int] = []
            for _ in 0..<4 { statuses.append(try await falcon.getScans(query: nil, token: token).status) }
            #expect(statuses == [200, 500, 200, 500])
            emulator.setFaults([try FaultRule.parse("503:skip=1,count=1")])
            statuses = []
            for _ in 0..<3 { statuses.append(try await falcon.getScans(query: nil, token: token).status) }
            #expect(statuses == [200, 503, 200])
        }
    }

    @Test func seededProbabilityRepeats() async throws {
        func run() async throws -> [Int] {
            try await withFalcon({ $0.faults = [try! FaultRule.parse("5xx:probability=0.5,seed=7")] }) { _, falcon in
                let token = try await falcon.token()
                var statuses: [Int] = []
                for _ in 0..<16 { statuses.append(try await falcon.getScans(query: nil, token: token).status) }
                return statuses
            }
        }
        let first = try await run()
        #expect(first == (try await run()))
        #expect(first.contains(200) && first.contains(503))
    }

    @Test func html502HasAnHTMLBody() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("html502:count=2")] }) { emulator, falcon in
            let token = try await falcon.token()
            for _ in 0..<2 {
                let response = try await falcon.getScans(query: nil, token: token)
                #expect(response.status == 502)
                #expect(response.header("Content-Type") == "text/html")
                #expect(response.text.contains("<h1>502 Bad Gateway</h1>"))
            }
            #expect(try await falcon.getScans(query: nil, token: token).status == 200)
            #expect(emulator.stats.faultsInjected["html502"] == 2)
        }
    }

    @Test func droppedConnectionHasNoEffect() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("drop:op=UploadSampleV3,count=1")] }) { emulator, falcon in
            let token = try await falcon.token()
            await #expect(throws: (any Error).self) {
                _ = try await falcon.uploadMultipart(Samples.clean("dropped"), fileName: "d", token: token)
            }
            #expect(emulator.stats.uploads == 0)
            #expect(emulator.storedSamples.isEmpty)
            #expect(emulator.stats.faultsInjected["drop"] == 1)
            let record = try #require(emulator.recorded.last)
            #expect(record.status == nil)
            #expect(record.fault == "drop")
            _ = try await falcon.upload(Samples.clean("kept"), token: token)
            #expect(emulator.stats.uploads == 1)
        }
    }

    @Test func droppedScanCreatesNoVolume() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("drop:op=ScanSamples,count=1")] }) { emulator, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Samples.clean(), token: token)
            await #expect(throws: (any Error).self) { _ = try await falcon.scanSamples([sha256], token: token) }
            #expect(emulator.stats.scansCreated == 0)
            let listed = try await falcon.send(.GET, "/scanner/queries/scans/v1", headers: falcon.bearer(token))
            #expect(try listed.json()["resources"].strings.isEmpty)
            #expect(try listed.json()["meta"]["quota"]["used"].int == 0)
        }
    }

    @Test func lostResponseStillCreatesTheVolume() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("lost-response:op=ScanSamples,count=1")] }) { emulator, falcon in
            let token = try await falcon.token()
            let sha256 = try await falcon.upload(Samples.clean(), token: token)
            await #expect(throws: (any Error).self) { _ = try await falcon.scanSamples([sha256], token: token) }
            let listed = try await falcon.send(.GET, "/scanner/queries/scans/v1", headers: falcon.bearer(token)).json()
            #expect(listed["resources"].strings == emulator.scanIDs)
            #expect(listed["resources"].strings.count == 1)
            #expect(listed["meta"]["quota"]["used"].int == 1)
            #expect(emulator.stats.faultsInjected["lost-response"] == 1)
            let record = try #require(emulator.recorded.first { $0.operation == .scanSamples })
            #expect(record.status == nil)
            #expect(record.bodyFields == ["samples"])
        }
    }

    @Test func latencyDelaysTheResponse() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("latency:ms=200,op=GetScans")] }) { emulator, falcon in
            let token = try await falcon.token()
            let clock = ContinuousClock()
            let started = clock.now
            #expect(try await falcon.getScans(query: nil, token: token).status == 200)
            #expect(clock.now - started >= .milliseconds(200))
            #expect(emulator.recorded.last?.fault == "latency")
        }
    }

    @Test func expireTokensInvalidatesEveryTokenSoFar() async throws {
        try await withFalcon({ $0.faults = [try! FaultRule.parse("expire-tokens:op=GetScans,count=1")] }) { emulator, falcon in
            let old = try await falcon.token()
            #expect(try await falcon.getScans(query: nil, token: old).status == 401)
            #expect(try await falcon.getScans(query: nil, token: old).status == 401)
            let fresh = try await falcon.token()
            #expect(try await falcon.getScans(query: nil, token: fresh).status == 200)
            #expect(emulator.stats.faultsInjected["expire-tokens"] == 1)
        }
    }

    @Test func rateLimitWindowCountsDown() async throws {
        try await withFalcon({ $0.rateLimitPerMinute = 3 }) { emulator, falcon in
            let token = try await falcon.token()
            var remaining: [String?] = []
            for _ in 0..<3 {
                let response = try await falcon.getScans(query: nil, token: token)
                #expect(response.status == 200)
                #expect(response.header("X-Ratelimit-Limit") == "3")
                remaining.append(response.header("X-Ratelimit-Remaining"))
            }
            #expect(remaining == ["2", "1", "0"])
            let limited = try await falcon.getScans(query: nil, token: token)
            #expect(limited.status == 429)
            let retryAfter = try #require(limited.header("X-Ratelimit-Retryafter").flatMap(Int.init))
            #expect(retryAfter > Int(Date().timeIntervalSince1970))
            #expect(try await falcon.requestToken().status == 201)
        }
    }

    @Test func rateLimitIsASlidingWindowPerCID() async throws {
        // A four-second window stands in for the minute (long enough for a loaded machine).
        try await withFalcon({
            $0.rateLimitPerMinute = 2
            $0.rateLimitWindowSeconds = 4
        }) { emulator, falcon in
            let token = try await falcon.token()
            let first = try await falcon.getScans(query: nil, token: token)
            let second = try await falcon.getScans(query: nil, token: token)
            #expect([first, second].map { $0.header("X-Ratelimit-Remaining") } == ["1", "0"])
            #expect(second.header("X-Ratelimit-Limit") == "2")
            let limited = try await falcon.getScans(query: nil, token: token)
            #expect(limited.status == 429)
            #expect(limited.header("X-Ratelimit-Remaining") == "0")
            #expect(limited.header("X-Ratelimit-Retryafter").flatMap(Int.init) != nil)
            #expect(emulator.stats.rateLimited == 1)
            // Both leave the window four seconds after they came (the 429 was not counted).
            try await Task.sleep(for: .milliseconds(4300))
            let after = try await falcon.getScans(query: nil, token: token)
            #expect(after.status == 200)
            #expect(after.header("X-Ratelimit-Remaining") == "1")
        }
    }

    @Test func updateChangesBehaviourAtRuntime() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            emulator.update { $0.cleanVerdict = "clean as a whistle" }
            let scanID = try await falcon.scan([try await falcon.upload(Samples.clean(), token: token)], token: token)
            let sample = try await falcon.getScans(query: "ids=\(scanID)", token: token).json()["resources"][0]["samples"][0]
            #expect(sample["verdict"].string == "clean as a whistle")
        }
    }
}
