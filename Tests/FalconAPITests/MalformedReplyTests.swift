import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

/// Replies that are not what the sheet promises: the client says what it got, with the status
/// and trace id, retries what is safe to repeat, and never guesses.
@Suite(.timeLimit(.minutes(2)))
struct MalformedReplyTests {
    func failure(_ body: () async throws -> Void) async -> FalconError? {
        do {
            try await body()
            return nil
        } catch {
            return (error as Any) as? FalconError
        }
    }

    @Test(arguments: ["html", "truncated"])
    func unreadable200sAreRetriedWhenSafe(shape: String) async throws {
        let clock = ManualFalconClock()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=\(shape),count=2,op=GetScans")] }, clock: clock) { client, _ in
            let (quota, _) = try await client.quota()
            #expect(quota != nil)
            #expect(clock.sleeps.count >= 2, "two backoffs (a loaded machine may add other waits)")
        }
    }

    @Test(arguments: ["html", "truncated"])
    func unreadable200sAreReportedWithStatusAndTrace(shape: String) async throws {
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=\(shape),op=GetScans")] }, retry: RetryPolicy(maxAttempts: 2)) { client, _ in
            let error = await failure { _ = try await client.quota() }
            #expect(error?.kind == .decoding)
            #expect(error?.status == 200)
            if shape != "html" { #expect(error?.traceID != nil) }  // a gateway's page may carry none
            #expect(error?.operation == "GetScans")
            #expect(error?.message.contains(shape == "html" ? "not JSON" : "truncated or invalid JSON") == true, "\(String(describing: error))")
        }
    }

    @Test func wrongShapeIsADecodingError() async throws {
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=wrong-shape,op=GetScans")] }) { client, _ in
            let error = await failure { _ = try await client.getScans(ids: ["a_b"]) }
            #expect(error?.kind == .decoding)
            #expect(error?.message.contains("unreadable reply") == true)
            #expect(error?.traceID != nil)
        }
    }

    @Test func aScanSamples200WithoutResourcesMayHaveTakenEffect() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=no-resources,op=ScanSamples")] }) { client, _ in
            let sha = try await client.uploadSample(path: try dir.write("a.txt", "a")).sha256
            let error = await failure { _ = try await client.scanSamples([sha]) }
            #expect(error?.message.contains("no scan id") == true)
            #expect(error?.mayHaveTakenEffect == true)
        }
    }

    @Test func aGetScans200WithoutResourcesMeansNothingYet() async throws {
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=no-resources,op=GetScans")] }) { client, _ in
            let response = try await client.getScans(ids: ["0123456789abcdef0123456789abcdef_0123456789abcdef0123456789abcdef"])
            #expect(response.resources.isEmpty)
        }
    }

    @Test func anUploadReplyWithoutTheSampleIsAnError() async throws {
        let dir = try TemporaryDirectory()
        try await withClient(configure: { $0.faults = [try! FaultRule.parse("malformed:shape=no-resources,op=UploadSampleV3")] }) { client, _ in
            let error = await failure { _ = try await client.uploadSample(path: try dir.write("a.txt", "a")) }
            #expect(error?.message.contains("names no sample") == true)
        }
    }

    @Test func faultSpecForMalformedRoundTrips() throws {
        let rule = try FaultRule.parse("malformed:shape=truncated,op=GetScans,count=1")
        #expect(try FaultRule.parse(rule.description) == rule)
        #expect(throws: (any Error).self) { try FaultRule.parse("malformed:shape=bogus") }
    }
}
