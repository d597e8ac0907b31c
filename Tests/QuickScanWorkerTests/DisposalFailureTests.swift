import FalconAPI
import FalconEmulator
import Foundation
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Every step of a disposal failed once, through the injected `FileSystem`: the failing file
/// is not claimed as filed, stays in the inbox with its reason, never stops the others, and
/// is filed by the next run.
@Suite(.timeLimit(.minutes(3)))
struct DisposalFailureTests {
    /// One fault on `doc.txt`'s disposal; `other.txt` must be filed regardless.
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var faults: [FaultInjectingFileSystem.Fault]
        /// True when the fault is absorbed (copy instead of link): filed in the first run.
        var filedAnyway = false
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "link EACCES", faults: [.init(.link, errno: EACCES, pathContains: "doc.txt")]),
        Case(name: "link ENOSPC", faults: [.init(.link, errno: ENOSPC, pathContains: "doc.txt")]),
        Case(name: "link ENAMETOOLONG", faults: [.init(.link, errno: ENAMETOOLONG, pathContains: "doc.txt")]),
        Case(name: "link EROFS", faults: [.init(.link, errno: EROFS, pathContains: "doc.txt")]),
        Case(name: "unlink source EPERM after link", faults: [.init(.unlink, errno: EPERM, pathContains: "inbox/doc.txt")]),
        // A sticky shared inbox as a service user: link refused, copy made, unlink refused.
        Case(name: "link EPERM then unlink source EPERM", faults: [
            .init(.link, errno: EPERM, pathContains: "inbox/doc.txt"), .init(.unlink, errno: EPERM, pathContains: "inbox/doc.txt")]),
        Case(name: "chmod EPERM", faults: [.init(.chmod, errno: EPERM, pathContains: "quarantine/doc.txt")]),
        Case(name: "fsync of the destination folder EIO", faults: [.init(.fsyncDirectory, errno: EIO, pathContains: "quarantine")]),
        Case(name: "mkdir EACCES", faults: [.init(.mkdir, errno: EACCES, pathContains: "quarantine")]),
        Case(name: "EXDEV then copy create ENOSPC", faults: [
            .init(.link, errno: EXDEV, pathContains: "inbox/doc.txt"), .init(.create, errno: ENOSPC, pathContains: "doc.txt")]),
        Case(name: "EXDEV then write ENOSPC", faults: [
            .init(.link, errno: EXDEV, pathContains: "inbox/doc.txt"), .init(.write, errno: ENOSPC, pathContains: "doc.txt")]),
        Case(name: "EXDEV then fsync EIO", faults: [
            .init(.link, errno: EXDEV, pathContains: "inbox/doc.txt"), .init(.fsync, errno: EIO, pathContains: "doc.txt")]),
        Case(name: "EXDEV: copied instead", faults: [.init(.link, errno: EXDEV, pathContains: "inbox/doc.txt")], filedAnyway: true),
    ]

    @Test(arguments: cases)
    func aFailedStepLeavesTheFileUnfiledWithItsReasonAndTheNextRunFilesIt(_ failure: Case) async throws {
        let ws = try Workspace()
        let threat = Array(SampleContent.eicar.utf8)
        try ws.put("doc.txt", threat)
        try ws.put("other.txt", Array("harmless".utf8))
        let fs = FaultInjectingFileSystem(faults: failure.faults)
        let quarantined = ws.dir.path + "/quarantine/doc.txt"
        try await withEmulator { emulator in
            let first = try await ws.runOnce(emulator, fileSystem: fs)
            #expect(fs.injectedCount >= 1, "the fault fired")
            // A threat is reported whatever happened to its file.
            #expect(first.exitCode == 1)
            #expect(ws.contents(ws.dir.path + "/clean/other.txt") == Array("harmless".utf8), "the other file is filed")
            let row = try #require(try ws.results()["doc.txt"])
            if failure.filedAnyway {
                #expect(ws.contents(quarantined) == threat)
                #expect(row.string("disposed_to") == quarantined)
                return
            }
            #expect(first.pending == 1)
            #expect(ws.contents(ws.inbox + "/doc.txt") == threat, "the file is still where it was")
            #expect(!FileManager.default.fileExists(atPath: quarantined), "no copy claims it was quarantined")
            #expect(!FileManager.default.fileExists(atPath: quarantined + ".quickscan-partial"))
            #expect(row.string("disposed_to") == nil)
            #expect(row.string("state") == "decided")
            #expect(row.string("pending_reason")?.isEmpty == false, "the reason is recorded")
            // The next run (no faults) files it; the threat was already reported.
            let second = try await ws.runOnce(emulator)
            #expect(second.exitCode == 0)
            #expect(ws.contents(quarantined) == threat)
            var st = stat()
            #expect(stat(quarantined, &st) == 0 && st.st_mode & 0o777 == 0o600)
            #expect(!FileManager.default.fileExists(atPath: ws.inbox + "/doc.txt"))
            let filed = try #require(try ws.results()["doc.txt"])
            #expect(filed.string("disposed_to") == quarantined)
            #expect(filed.string("pending_reason") == nil)
        }
    }

    /// The reason shows in history: an event per failed attempt, naming the call and errno.
    @Test func aFailedMoveIsInTheHistoryAndTheNextRunIsDeferredNotClean() async throws {
        let ws = try Workspace()
        try ws.put("doc.txt", Array(SampleContent.eicar.utf8))
        let fs = FaultInjectingFileSystem(faults: [.init(.link, errno: EPERM, pathContains: "inbox/doc.txt", times: 10),
                                                   .init(.unlink, errno: EPERM, pathContains: "inbox/doc.txt", times: 10)])
        try await withEmulator { emulator in
            #expect(try await ws.runOnce(emulator, fileSystem: fs).exitCode == 1)
            // Still failing: the next run has a file it cannot file, which is not "all clean".
            let next = try await ws.runOnce(emulator, fileSystem: fs)
            #expect(next.exitCode == 4)
            #expect(next.deferredReason?.contains("Operation not permitted") == true)
        }
        let status = try ResultsReader(path: ws.database).status()
        #expect(status.notFiledCount == 1)
        #expect(status.notFiled.first?.reason.contains("Operation not permitted") == true)
        let db = try SQLiteConnection(path: ws.database)
        let details = try db.query("SELECT detail FROM events WHERE entity = 'file' AND detail LIKE 'not filed:%'").compactMap { $0.string("detail") }
        #expect(details.count >= 2)
        #expect(details.allSatisfy { $0.contains("cannot remove") && $0.contains("Operation not permitted") })
    }

    /// A file that keeps growing does not keep `run --once` alive: after max_settle_seconds
    /// the run ends deferred with that file pending, and the others are done.
    @Test func aFileThatNeverStopsGrowingEndsTheRunDeferred() async throws {
        let ws = try Workspace()
        try ws.put("steady.txt", Array("steady".utf8))
        let growing = try ws.put("growing.log", Array("start\n".utf8))
        let stop = ManagedAtomicFlag()
        let writer = Thread {
            while !stop.isSet {
                if let handle = FileHandle(forWritingAtPath: growing) {
                    handle.seekToEndOfFile()
                    handle.write(Data("more\n".utf8))
                    try? handle.close()
                }
                usleep(20_000)
            }
        }
        writer.start()
        defer { stop.set() }
        try await withEmulator { emulator in
            let started = Date()
            let summary = try await ws.runOnce(emulator) {
                $0.settleSeconds = 0.3
                $0.maxSettleSeconds = 1.5
            }
            #expect(Date().timeIntervalSince(started) < 90, "the run ended by itself")
            #expect(summary.exitCode == 4)
            #expect(summary.deferredReason?.contains("still changing") == true)
            #expect(ws.contents(ws.dir.path + "/clean/steady.txt") == Array("steady".utf8))
            #expect(FileManager.default.fileExists(atPath: growing))
        }
    }

    /// An inbox written with a trailing slash and a destination inside it: refused at start,
    /// naming the key; allowed by the config, the destination is skipped by device and inode
    /// and never scanned again.
    @Test func aDestinationInsideAnInboxIsRefusedOrSkipped() async throws {
        let ws = try Workspace()
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        try ws.put("a.txt", Array("a".utf8))
        try await withEmulator { emulator in
            await #expect {
                _ = try await ws.runOnce(emulator) {
                    $0.inboxes = [InboxConfiguration(path: ws.inbox + "/")]
                    $0.disposition[.threat] = .init(action: .move, to: ws.inbox + "/./quarantine")
                }
            } throws: { error in
                "\(error)".contains("disposition.threat.to") && "\(error)".contains("inside an inbox")
            }
            for _ in 0..<3 {
                let summary = try await ws.runOnce(emulator) {
                    $0.inboxes = [InboxConfiguration(path: ws.inbox + "/")]
                    $0.disposition[.threat] = .init(action: .move, to: ws.inbox + "//quarantine/")
                    $0.disposition[.clean] = .init(action: .leave)
                    $0.allowDestinationInInbox = true
                }
                #expect([0, 1].contains(summary.exitCode))
            }
            #expect(emulator.stats.uploads == 2, "the quarantine was never scanned")
        }
        #expect(FileManager.default.fileExists(atPath: ws.inbox + "/quarantine/eicar.com"))
        #expect(!FileManager.default.fileExists(atPath: ws.inbox + "/quarantine/quarantine"))
        #expect(try ws.results().count == 2)
    }
}

/// A flag set once from any thread.
final class ManagedAtomicFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    var isSet: Bool { box.withLockedValue { $0 } }
    func set() { box.withLockedValue { $0 = true } }
}
