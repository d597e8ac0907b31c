import FalconAPI
import FalconEmulator
import Foundation
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2)))
struct DisposalTests {
    @Test func movesAcrossFileSystemsCopySyncAndUnlink() async throws {
        let other = "/dev/shm/quickscan-test-\(UUID().uuidString)"
        guard FileManager.default.fileExists(atPath: "/dev/shm") else { return }
        defer { try? FileManager.default.removeItem(atPath: other) }
        let ws = try Workspace()
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try ws.put("deep/big.bin", bytes)
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) { $0.disposition[.clean] = .init(action: .move, to: other + "/clean") }
            #expect(summary.exitCode == 0)
        }
        #expect(FileManager.default.contents(atPath: other + "/clean/deep/big.bin").map(Array.init) == bytes)
        #expect(!FileManager.default.fileExists(atPath: ws.inbox + "/deep/big.bin"))
        #expect(!FileManager.default.fileExists(atPath: other + "/clean/deep/big.bin.quickscan-partial"))
    }

    @Test func collisionsGetASuffixAndNothingIsOverwritten() async throws {
        let ws = try Workspace()
        try FileManager.default.createDirectory(atPath: ws.dir.path + "/clean", withIntermediateDirectories: true)
        try Data("already here".utf8).write(to: URL(fileURLWithPath: ws.dir.path + "/clean/report.txt"))
        try Data("older copy".utf8).write(to: URL(fileURLWithPath: ws.dir.path + "/clean/report (1).txt"))
        try ws.put("report.txt", Array("new report".utf8))
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator)
            #expect(summary.exitCode == 0)
        }
        #expect(ws.contents(ws.dir.path + "/clean/report.txt") == Array("already here".utf8))
        #expect(ws.contents(ws.dir.path + "/clean/report (1).txt") == Array("older copy".utf8))
        #expect(ws.contents(ws.dir.path + "/clean/report (2).txt") == Array("new report".utf8))
        #expect(try ws.results()["report.txt"]?.string("disposed_to") == ws.dir.path + "/clean/report (2).txt")
    }

    @Test func deleteAndLeaveActions() async throws {
        let ws = try Workspace()
        try ws.put("keep.txt", Array("keep".utf8))
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) {
                $0.disposition = [.clean: .init(action: .leave), .threat: .init(action: .delete), .notScanned: .init(action: .leave)]
            }
            #expect(summary.exitCode == 1)
        }
        #expect(FileManager.default.fileExists(atPath: ws.inbox + "/keep.txt"))
        #expect(!FileManager.default.fileExists(atPath: ws.inbox + "/eicar.com"))
        let results = try ws.results()
        #expect(results["keep.txt"]?.string("disposed_to") == nil)
        #expect(results["eicar.com"]?.string("disposed_to") == "(deleted)")
        // A file left in place is not taken again by the next run.
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) { $0.disposition[.clean] = .init(action: .leave) }
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.uploads == 0)
        }
    }

    @Test func samplesAreDeletedFromTheCloudAfterTheirScan() async throws {
        let ws = try Workspace()
        for i in 0..<3 { try ws.put("f\(i).txt", Array("content \(i)".utf8)) }
        try await withEmulator { emulator in
            let summary = try await ws.runOnce(emulator) { $0.deleteSamplesAfterScan = true }
            #expect(summary.exitCode == 0)
            #expect(emulator.stats.samplesDeleted == 3)
            #expect(emulator.storedSamples.isEmpty)
        }
        let db = try SQLiteConnection(path: ws.database)
        #expect(try db.queryOne("SELECT COUNT(*) AS n FROM samples WHERE deleted_at IS NOT NULL AND delete_pending = 0")?.int("n") == 3)
    }
}
