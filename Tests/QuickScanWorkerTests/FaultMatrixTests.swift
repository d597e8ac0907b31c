import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

/// The same mixed inbox under each API fault, alone and together: every file still reaches
/// its outcome and the run its exit code.
@Suite(.timeLimit(.minutes(3)))
struct FaultMatrixTests {
    static let faults: [[String]] = [
        ["429:retry-after=1,count=2,op=ScanSamples"],
        ["429:retry-after=1,count=1,op=UploadSampleV3"],
        ["5xx:status=503,every=3"],
        ["5xx:status=500,count=2,op=GetScans"],
        ["html502:count=3"],
        ["drop:every=4"],
        ["lost-response:op=ScanSamples,count=1"],
        ["lost-response:op=UploadSampleV3,count=2"],
        ["latency:ms=30"],
        ["expire-tokens:every=3"],
        ["malformed:shape=html,count=2,op=GetScans"],
        ["malformed:shape=truncated,count=1,op=UploadSampleV3"],
        ["malformed:shape=no-resources,count=1,op=ScanSamples"],
        ["malformed:shape=wrong-shape,count=1,op=GetScans"],
        ["5xx:status=502,every=5", "drop:every=7", "latency:ms=10", "expire-tokens:every=6", "lost-response:op=ScanSamples,count=1"],
    ]

    @Test(arguments: faults)
    func mixedInboxUnderFaults(specs: [String]) async throws {
        let ws = try Workspace()
        for i in 0..<6 { try ws.put("docs/file \(i).txt", Array("text \(i)".utf8)) }
        try ws.put("docs/dup.txt", Array("text 0".utf8))
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("photo.png", SampleContent.png)
        try await withEmulator({ config in
            config.scanPollsUntilDone = 1
            config.faults = specs.map { try! FaultRule.parse($0) }
        }) { emulator in
            let summary = try await ws.runOnce(emulator) { $0.volumeMaxSamples = 3 }
            #expect(summary.exitCode == 1, "\(specs): \(summary)")
            #expect(summary.pending == 0)
            let results = try ws.results()
            #expect(results.count == 9)
            #expect(results["eicar.com"]?.string("outcome") == "threat")
            #expect(results["photo.png"]?.string("outcome") == "not_scanned")
            for i in 0..<6 { #expect(results["docs/file \(i).txt"]?.string("outcome") == "clean", "\(specs)") }
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }

    @Test(arguments: [[], ["5xx:status=503,every=4", "drop:every=6", "latency:ms=20"]])
    func fiveSecondTokensThroughALongRun(specs: [String]) async throws {
        let ws = try Workspace()
        for i in 0..<4 { try ws.put("f\(i).txt", Array("five \(i)".utf8)) }
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try await withEmulator({ config in
            config.tokenLifetimeSeconds = 5
            config.scanDurationSeconds = 7  // the scan outlives the first token
            config.faults = specs.map { try! FaultRule.parse($0) }
        }) { emulator in
            let summary = try await ws.runOnce(emulator) { $0.scanPollIntervalSeconds = 0.5 }
            #expect(summary.exitCode == 1, "\(summary)")
            #expect(try ws.results().count == 5)
            #expect(emulator.stats.tokensIssued >= 2, "tokens renewed during the run")
        }
    }

    @Test func aRateLimitBeyondTheDeadlineDefers() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        try await withEmulator({ $0.faults = [try! FaultRule.parse("429:retry-after=3600,op=UploadSampleV3")] }) { emulator in
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 4)
            #expect(summary.pending == 1)
            #expect(FileManager.default.fileExists(atPath: ws.inbox + "/a.txt"))
        }
    }
}
