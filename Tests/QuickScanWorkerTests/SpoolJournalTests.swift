import FalconAPI
import FalconEmulator
import Foundation
@testable import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The journal of takes by link, and what a start does with files a crash left taken but not
/// recorded: they go back to the inbox as they were, and are then taken again.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SpoolJournalTests {
    @Test func journalLinesSurviveOddNames() {
        let entries = [
            SpoolJournal.Entry(index: 0, inbox: "/in", path: "/in/plain.txt", owner: 65534, group: 65534, mode: 0o100644),
            SpoolJournal.Entry(index: 7, inbox: "/in box", path: "/in box/a\tb\nc\\d ü 📄.txt", owner: 0, group: 0, mode: 0o104755),
        ]
        let journal = SpoolJournal(batch: "b1", entries: entries)
        let decoded = SpoolJournal.decode(batch: "b1", Data(journal.encoded()))
        #expect(decoded.entries == entries)
        #expect(decoded.spoolName(7) == "b1-7.spool")
        // A journal cut short mid-line (a crash while it was written) keeps the whole lines.
        let cut = Data(journal.encoded().dropLast(5))
        #expect(SpoolJournal.decode(batch: "b1", cut).entries == [entries[0]])
        #expect(SpoolJournal.decode(batch: "b1", Data("garbage".utf8)).entries.isEmpty)
    }

    /// Simulates a crash after files were taken by link (linked into the spool, inbox name
    /// removed, made ours) and before the batch was recorded: the start gives each back, with
    /// its owner and mode, under its name (or beside a new file that took the name), removes
    /// the journal, and the run then scans and files every file once.
    @Test func filesTakenButNotRecordedAreGivenBackAtStart() async throws {
        let ws = try Workspace()
        let spool = ws.database + ".spool"
        mkdir(spool, 0o700)
        let owner: uid_t = getuid() == 0 ? 65534 : getuid()
        let group: gid_t = getuid() == 0 ? 65534 : getgid()
        var entries: [SpoolJournal.Entry] = []
        let names = ["deep/er/one.txt", "two.txt", "three.txt"]
        for (i, name) in names.enumerated() {
            let path = try ws.put(name, Array("content of \(name)".utf8))
            chown(path, owner, group)
            chmod(path, 0o640)
            var st = stat()
            lstat(path, &st)
            entries.append(SpoolJournal.Entry(index: i, inbox: ws.inbox, path: path, owner: owner, group: group, mode: UInt32(st.st_mode)))
        }
        let journal = SpoolJournal(batch: "crashed", entries: entries)
        let spoolFD = open(spool, O_RDONLY | O_DIRECTORY)
        defer { close(spoolFD) }
        try journal.write(spool: spoolFD, spoolPath: spool)
        // one.txt: taken completely (linked, inbox name gone, ours).
        #expect(link(entries[0].path, spool + "/crashed-0.spool") == 0)
        unlink(entries[0].path)
        chown(spool + "/crashed-0.spool", geteuid(), getegid())
        chmod(spool + "/crashed-0.spool", 0o600)
        // two.txt: linked, the crash came before its inbox name was removed.
        #expect(link(entries[1].path, spool + "/crashed-1.spool") == 0)
        // three.txt: taken, and a new file was dropped under its name since.
        #expect(link(entries[2].path, spool + "/crashed-2.spool") == 0)
        unlink(entries[2].path)
        try ws.put("three.txt", Array("a newer three".utf8))
        // The folder of one.txt is gone too: it comes back in the inbox's top folder.
        try FileManager.default.removeItem(atPath: ws.inbox + "/deep")

        try await withEmulator { emulator in
            let (pipeline, _, client) = try ws.pipeline(emulator) { $0.custody = "auto" }
            try await pipeline.prepare()
            await client.shutdown()
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: spool)
        #expect(left.isEmpty, "spool after the start: \(left)")
        for (path, bytes) in [(ws.inbox + "/one.txt", "content of deep/er/one.txt"), (ws.inbox + "/two.txt", "content of two.txt"),
                              (ws.inbox + "/three.txt.quickscan-restored", "content of three.txt"), (ws.inbox + "/three.txt", "a newer three")] {
            #expect(ws.contents(path) == Array(bytes.utf8), "\(path)")
        }
        for path in [ws.inbox + "/one.txt", ws.inbox + "/two.txt", ws.inbox + "/three.txt.quickscan-restored"] {
            var st = stat()
            #expect(lstat(path, &st) == 0 && st.st_uid == owner && st.st_gid == group && st.st_mode & 0o7777 == 0o640 && st.st_nlink == 1,
                    "\(path) given back with its owner, mode and one link")
        }
        // And the run takes each of them once.
        let summary = try await withEmulator { emulator in try await ws.runOnce(emulator) { $0.custody = "auto" } }
        #expect(summary.exitCode == 0)
        let rows = try ws.results()
        #expect(Set(rows.keys) == ["one.txt", "two.txt", "three.txt", "three.txt.quickscan-restored"])
        try HostileInboxTests.checkFiledMatchResults(ws.database)
    }
}
