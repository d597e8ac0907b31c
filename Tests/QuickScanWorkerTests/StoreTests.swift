import Foundation
import QuickScanWorker
import SQLiteKit
import Testing
import TestSupport

@Suite struct StoreTests {
    let sha = String(repeating: "a", count: 64)

    @Test func transitionsAreCompareAndSetWithAnEventEach() async throws {
        let dir = try TemporaryDirectory()
        let store = try WorkerStore(path: dir.path + "/db.sqlite")
        _ = try await store.beginRun(mode: "test")
        let identity = FileIdentity(inode: 7, size: 5, mtimeNs: 1, ctimeNs: 2)
        let id = try #require(try await store.insertDiscovered([("/in/a", "/in", identity)])[0])
        #expect(try await store.insertDiscovered([("/in/a", "/in", identity)]).isEmpty, "same version once")
        try await store.markHashed([(id, sha, 5)])
        await #expect(throws: StaleTransition.self) { try await store.markHashed([(id, self.sha, 5)]) }
        try await store.markUploaded(sha)
        let volume = try await store.createVolumeIntent(samples: [sha])
        #expect(try await store.samplesAwaitingVolume(limit: 10).isEmpty, "a sample is in one active volume at most")
        try await store.markVolumeSubmitted(volume, scanID: "x_y")
        try await store.completeVolume(volume, scanID: "x_y", results: [sha: ("malware", nil)], maxAttempts: 3, deleteSamples: false)
        let file = try #require(try await store.file(id: id))
        #expect(file.state == .decided)
        #expect(file.outcome == .threat)
        try await store.beginDisposal(id, destination: "/q/a")
        try await store.finishDisposal(id, destination: "/q/a")

        let db = try SQLiteConnection(path: dir.path + "/db.sqlite")
        let events = try db.query("SELECT from_state, to_state FROM events WHERE entity = 'file' ORDER BY id").map { "\($0.string("from_state") ?? "-")>\($0.string("to_state")!)" }
        #expect(events == ["->discovered", "discovered>hashed", "hashed>uploaded", "uploaded>decided", "decided>disposing", "disposing>disposed"])
        let result = try #require(try db.queryOne("SELECT * FROM results"))
        #expect(result.string("outcome") == "threat")
        #expect(result.string("verdict") == "malware")
        #expect(result.string("scan_id") == "x_y")
        #expect(result.string("disposed_to") == "/q/a")
    }

    @Test func aMissingVerdictRequeuesThenFailsAfterMaxAttempts() async throws {
        let dir = try TemporaryDirectory()
        let store = try WorkerStore(path: dir.path + "/db.sqlite")
        _ = try await store.beginRun(mode: "test")
        let id = try #require(try await store.insertDiscovered([("/in/b", "/in", FileIdentity(inode: 1, size: 1, mtimeNs: 1, ctimeNs: 1))])[0])
        try await store.markHashed([(id, sha, 1)])
        try await store.markUploaded(sha)
        for attempt in 1...2 {
            let v = try await store.createVolumeIntent(samples: [sha])
            try await store.markVolumeSubmitted(v, scanID: "scan-\(attempt)")
            try await store.completeVolume(v, scanID: "scan-\(attempt)", results: [:], maxAttempts: 2, deleteSamples: false)
            if attempt == 1 { #expect(try await store.samplesAwaitingVolume(limit: 5) == [sha]) }
            #expect(try await store.volumes(in: .done).last?.attempt == attempt)
        }
        let file = try #require(try await store.file(id: id))
        #expect(file.outcome == .notScanned)
        #expect(file.reason == "scan_failed")
    }

    @Test func notScannedIsNeverClean() throws {
        let dir = try TemporaryDirectory()
        let db = try SQLiteConnection(path: dir.path + "/db.sqlite")
        try WorkerStore.migrations.migrate(db)
        // The schema refuses a decided file without an outcome, and not_scanned without a reason.
        #expect(throws: SQLiteError.self) {
            try db.run("INSERT INTO files (path, inbox, inode, size, mtime_ns, ctime_ns, state, discovered_at, updated_at) VALUES ('p','i',1,1,1,1,'decided',0,0)")
        }
        #expect(throws: SQLiteError.self) {
            try db.run("INSERT INTO files (path, inbox, inode, size, mtime_ns, ctime_ns, state, outcome, discovered_at, updated_at) VALUES ('p','i',1,1,1,1,'decided','not_scanned',0,0)")
        }
    }
}
