import FalconAPI
import FalconEmulator
import Foundation
import Hashing
import Logging
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

/// Concurrent per-sample calls through the client's `RequestLimiter`: deletes right after a
/// volume is done, a refused sample isolated by splitting its volume, and a tight rate limit
/// that is paced rather than run into. Real HTTP against the in-process emulator.
@Suite(.timeLimit(.minutes(3)))
struct ThroughputTests {
    /// Runs `--once` over `ws` with a client built from `clientConfig`.
    func runOnce(_ ws: Workspace, _ emulator: FalconEmulator, clientConfig: (inout FalconClientConfiguration) -> Void = { _ in },
                 _ configure: (inout WorkerConfiguration) -> Void) async throws -> (RunSummary, HTTPFalconClient) {
        let store = try WorkerStore(path: ws.database)
        var config = FalconClientConfiguration(credentials: FalconCredentials(clientID: "id", clientSecret: "secret"), baseURL: emulator.baseURL,
                                               retry: RetryPolicy(maxAttempts: 3, deadline: 60))
        clientConfig(&config)
        let client = try HTTPFalconClient(configuration: config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let pipeline = ScanPipeline(config: ws.config(configure), store: store, client: client, logger: logger)
        _ = try await store.beginRun(mode: "once")
        let summary = try await pipeline.runOnce(deadline: Date().timeIntervalSince1970 + 120)
        try await store.finishRun(exitCode: summary.exitCode)
        await client.shutdown()
        return (summary, client)
    }

    @Test func deletesGoConcurrentlyAsSoonAsAVolumeIsDone() async throws {
        let ws = try Workspace()
        for i in 0..<40 { try ws.put("f\(i).txt", Array("delete me \(i)".utf8)) }
        // 100 ms on each delete: concurrency shows as overlapping deletes.
        try await withEmulator({ $0.faults = [try! FaultRule.parse("latency:ms=100,op=DeleteSampleV3")] }) { emulator in
            let (summary, client) = try await runOnce(ws, emulator) {
                $0.deleteSamplesAfterScan = true
                $0.volumeMaxSamples = 20
            }
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.samplesDeleted == 40)
            let peak = await client.limiter.peakInFlight["DeleteSampleV3"] ?? 0
            #expect(peak > 1, "deletes ran one at a time")
            // The deletes follow the GetScans that saw the volumes done, before anything else.
            let operations = emulator.recorded.compactMap(\.operation)
            let firstDelete = try #require(operations.firstIndex(of: .deleteSampleV3))
            #expect(operations[firstDelete - 1] == .getScans)
            // The ledger is empty: every sample's delete was confirmed and recorded.
            let db = try SQLiteConnection(path: ws.database)
            #expect(try db.queryOne("SELECT COUNT(*) AS n FROM samples WHERE delete_pending = 1")?.int("n") == 0)
            #expect(try db.queryOne("SELECT COUNT(*) AS n FROM samples WHERE deleted_at IS NOT NULL")?.int("n") == 40)
        }
    }

    @Test func oneRefusedSampleIsIsolatedBySplittingItsVolume() async throws {
        let ws = try Workspace()
        var bad = ""
        for i in 0..<8 {
            let bytes = Array("sample \(i)".utf8)
            try ws.put("f\(i).txt", bytes)
            if i == 5 { bad = SHA256Hasher.hash(bytes) }
        }
        try await withEmulator({ $0.faults = [try! FaultRule.parse("refuse-sample:sha256=\(bad)")] }) { emulator in
            let (summary, _) = try await runOnce(ws, emulator) { $0.scanMaxAttempts = 1 }
            #expect(summary.exitCode == 2)
            // 8 → 4 + 4 → 2 + 2 → 1 + 1: the first call and two per level, 1 + 2·log2(8).
            #expect(emulator.stats.scanSamplesCalls == 7)
            #expect(emulator.stats.scansCreated == 3)
            #expect(emulator.stats.uploads == 8)
            let results = try ws.results()
            #expect(results.values.filter { $0.string("outcome") == "clean" }.count == 7)
            let refused = try #require(results["f5.txt"])
            #expect(refused.string("outcome") == "not_scanned")
            #expect(refused.string("error")?.contains("sample \(bad) cannot be scanned") == true, "\(refused.string("error") ?? "")")
            // Each sample reached the API in exactly one scan.
            let db = try SQLiteConnection(path: ws.database)
            #expect(try db.queryOne("SELECT COUNT(*) AS n FROM volumes WHERE state = 'done'")?.int("n") == 3)
            #expect(try db.queryOne("SELECT COUNT(*) AS n FROM volumes WHERE state = 'failed'")?.int("n") == 4)
        }
    }

    @Test func aRefusedSampleIsRetriedUpToMaxAttemptsAlone() async throws {
        let ws = try Workspace()
        var bad = ""
        for i in 0..<4 {
            let bytes = Array("retry \(i)".utf8)
            try ws.put("f\(i).txt", bytes)
            if i == 0 { bad = SHA256Hasher.hash(bytes) }
        }
        try await withEmulator({ $0.faults = [try! FaultRule.parse("refuse-sample:sha256=\(bad)")] }) { emulator in
            let (summary, _) = try await runOnce(ws, emulator) { $0.scanMaxAttempts = 3 }
            #expect(summary.exitCode == 2)
            // 1 + 2·log2(4) to isolate it, then alone twice more, uploaded again each time.
            #expect(emulator.stats.scanSamplesCalls == 7)
            #expect(emulator.stats.uploads == 6)
            let refused = try #require(try ws.results()["f0.txt"])
            #expect(refused.string("error")?.hasPrefix("scan_failed: no verdict after 3 attempts: ScanSamples refused: sample \(bad) cannot be scanned") == true,
                    "\(refused.string("error") ?? "")")
        }
    }

    @Test func aTightRateLimitIsPacedNotRunInto() async throws {
        let ws = try Workspace()
        for i in 0..<150 { try ws.put("f\(i).txt", Array("paced \(i)".utf8)) }
        // 200 requests per 10-second window; the run needs about 305 (150 uploads, 150 deletes,
        // ScanSamples, GetScans, quota), so it must wait for the window.
        try await withEmulator({
            $0.rateLimitPerMinute = 200
            $0.rateLimitWindowSeconds = 10
        }) { emulator in
            let (summary, client) = try await runOnce(ws, emulator, clientConfig: { $0.rateLimitWindow = 10 }) {
                $0.deleteSamplesAfterScan = true
            }
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.samplesDeleted == 150)
            let authenticated = emulator.recorded.filter { $0.authorizationScheme?.lowercased() == "bearer" }
            let limited = authenticated.filter { $0.status == 429 }.count
            #expect(limited == emulator.stats.rateLimited)
            #expect(authenticated.count > 300)
            #expect(Double(limited) <= 0.01 * Double(authenticated.count), "\(limited) of \(authenticated.count) answered 429")
            #expect(await client.limiter.pacedRequests > 0)
        }
    }
}
