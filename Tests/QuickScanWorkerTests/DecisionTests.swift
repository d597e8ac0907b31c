import FalconAPI
import Foundation
import QuickScanWorker
import SQLiteKit
import Testing

/// The worker's pure decisions, from tables: no socket, no file, no database.
@Suite struct DecisionTests {
    static let recorded = FileIdentity(inode: 7, size: 10, mtimeNs: 100, ctimeNs: 200)
    static func stat(inode: UInt64 = 7, size: Int64 = 10, mtime: Int64 = 100, ctime: Int64 = 200, device: UInt64 = 1) -> FileStat {
        FileStat(kind: .regular, identity: FileIdentity(inode: inode, size: size, mtimeNs: mtime, ctimeNs: ctime), mode: 0o100644, device: device)
    }

    @Test(arguments: [
        // destination, source, target, target holds the scanned bytes → action
        ("leave", nil as FileStat?, nil as FileStat?, false, Decisions.ResumeAction.finish(destination: nil)),
        ("/q/a", nil, stat(inode: 9), false, .finish(destination: nil)),  // gone; what is there is not ours
        ("/q/a", nil, stat(inode: 9), true, .finish(destination: "/q/a")),  // copy placed, source removed
        ("/q/a", stat(ctime: 300), stat(ctime: 300), false, .removeSourceThenFinish),  // crashed between link and unlink
        ("/q/a", stat(), stat(inode: 9, device: 2), true, .removeSourceThenFinish),  // cross-device copy placed: never copy twice
        ("/q/a", stat(size: 11), stat(inode: 9, device: 2), true, .finish(destination: "/q/a")),  // scanned bytes filed; new version stays
        ("/q/a", stat(), nil, false, .disposeAgain),
        ("/q/a", stat(), stat(inode: 9), false, .disposeAgain),  // something else at the name: another name is taken
        ("/q/a", stat(size: 11), nil, false, .supersede),
        ("/q/a", nil, nil, false, .finish(destination: nil)),
        ("(deleted)", nil, nil, false, .finish(destination: "(deleted)")),
        ("(deleted)", stat(), nil, false, .disposeAgain),
        ("(deleted)", stat(size: 12), nil, false, .supersede),  // v2 saved after the crash: never deleted unscanned
        ("(deleted)", stat(inode: 8), nil, false, .supersede),
    ])
    func resumingAnInterruptedDisposal(destination: String, source: FileStat?, target: FileStat?, holds: Bool, expected: Decisions.ResumeAction) {
        let action = Decisions.resume(destination: destination == "leave" ? nil : destination, recorded: Self.recorded,
                                      source: source, target: target, targetHoldsScannedBytes: holds)
        #expect(action == expected)
    }

    @Test(arguments: [
        // waiting, oldest waited, upstream (taken, not uploaded), arriving within the grace → seal
        (0, 0.0, 0, 0, false),  // nothing to seal
        (1, 0.0, 0, 0, true),  // one file, nothing else coming: no linger (watch mode latency)
        (1000, 0.0, 5, 9, true),  // full
        (3, 31.0, 5, 9, true),  // lingered volume.max_wait_seconds
        (3, 1.0, 5, 0, false),  // the uploader still has files for it
        (3, 1.0, 0, 2, false),  // a burst still settling: linger while more arrive
        (999, 29.9, 1, 0, false),
        (3, 1.0, 0, 0, true),
    ])
    func sealingAVolume(waiting: Int, waited: Double, upstream: Int, arriving: Int, seal: Bool) {
        #expect(Decisions.sealVolume(waiting: waiting, maxSamples: 1000, oldestWaited: waited, maxWait: 30, upstream: upstream, arriving: arriving) == seal)
    }

    @Test(arguments: [
        // seconds since the youngest volume was submitted, scan.poll_interval_seconds → delay
        (0.0, 3.0, 0.1), (0.1, 3.0, 0.1), (0.5, 3.0, 0.25), (2.0, 3.0, 1.0), (6.0, 3.0, 3.0), (600.0, 3.0, 3.0), (0.0, 0.02, 0.02),
    ])
    func pollingAScanSoonAfterItsSubmission(age: Double, interval: Double, delay: Double) {
        #expect(Decisions.scanPollDelay(age: age, interval: interval) == delay)
    }

    @Test(arguments: [
        // seconds the last pass took, poll_interval_seconds → pause
        (0.0001, 10.0, 0.2), (0.01, 10.0, 0.5), (0.15, 10.0, 7.5), (1.0, 10.0, 10.0), (0.001, 0.05, 0.05),
    ])
    func idlePauseFollowsThePassCost(pass: Double, interval: Double, pause: Double) {
        #expect(abs(Decisions.idlePause(passSeconds: pass, pollInterval: interval) - pause) < 1e-9)
    }

    @Test func volumeSizeFollowsTheQuota() {
        #expect(Decisions.volumeSize(waiting: 50, quota: nil).count == 50)
        // Little left: the volume still goes out whole (the unit is unknown; no tiny volumes).
        #expect(Decisions.volumeSize(waiting: 50, quota: QuickScanQuota(total: 100, used: 90, inProgress: 0)).count == 50)
        #expect(Decisions.volumeSize(waiting: 50, quota: QuickScanQuota(total: 100, used: 90, inProgress: 9)).count == 50)
        let out = Decisions.volumeSize(waiting: 50, quota: QuickScanQuota(total: 100, used: 100, inProgress: 0))
        #expect(out.count == nil && out.deferral?.contains("quota used up") == true)
        // Scans in progress count against what is left: total − used − in_progress.
        let busy = Decisions.volumeSize(waiting: 50, quota: QuickScanQuota(total: 100, used: 90, inProgress: 10))
        #expect(busy.count == nil && busy.deferral?.contains("10 in progress") == true)
    }

    @Test(arguments: [
        ("done", 10.0, "complete"), ("running", 10.0, "wait"), ("running", 400.0, "fail"), ("failed", 10.0, "fail"),
        ("Canceled", 10.0, "fail"), ("error", 10.0, "fail"), ("something new", 10.0, "wait"), ("absent", 10.0, "wait"), ("absent", 400.0, "fail"),
    ])
    func aPollAnswerMapsToAnOutcome(status: String, age: Double, expected: String) {
        let listed = status == "absent" ? [] : [ScanResult(id: "s1", status: status, samples: [])]
        let decision = Decisions.poll(scanID: "s1", listed: listed, submittedAt: 0, now: age, timeout: 300)
        switch decision {
        case .complete: #expect(expected == "complete")
        case .wait: #expect(expected == "wait")
        case .fail(let reason): #expect(expected == "fail", "\(reason)")
        }
    }

    @Test func disposalPlans() {
        let move = DispositionRule(action: .move, to: "/q")
        #expect(Decisions.disposal(rule: move, outcome: .threat, path: "/in/a/b.txt", inbox: "/in", fileMode: 0o600)
                == .move(folder: "/q", relative: "a/b.txt", fileMode: 0o600, folderMode: 0o700))
        #expect(Decisions.disposal(rule: move, outcome: .clean, path: "/in/b.txt", inbox: "/in", fileMode: nil)
                == .move(folder: "/q", relative: "b.txt", fileMode: nil, folderMode: 0o755))
        #expect(Decisions.disposal(rule: .init(action: .delete), outcome: .threat, path: "/in/b", inbox: "/in", fileMode: nil) == .delete)
        #expect(Decisions.disposal(rule: .init(action: .leave), outcome: .clean, path: "/in/b", inbox: "/in", fileMode: nil) == .leave)
    }

    @Test(arguments: [(1, 0, 3, Int32(1)), (0, 0, 3, 4), (0, 2, 0, 2), (0, 0, 0, 0), (2, 5, 0, 1), (0, 1, 1, 4)])
    func exitCodes(threats: Int, notScanned: Int, pending: Int, code: Int32) {
        #expect(RunSummary.exitCode(threats: threats, notScanned: notScanned, pending: pending) == code)
    }

    @Test func errorTriage() throws {
        #expect(FailureTriage.of(FalconError(kind: .authentication, message: "no")) == .configuration)
        #expect(FailureTriage.of(FalconError(kind: .rateLimited, message: "429", retryAfter: 5)) == .rateLimited(until: 5))
        #expect(FailureTriage.of(FalconError(kind: .http, message: "503", status: 503)) == .transient)
        #expect(FailureTriage.of(FalconError(kind: .transport, message: "reset")) == .transient)
        #expect(FailureTriage.of(FalconError(kind: .transport, message: "refused", operation: "oauth2AccessToken")) == .configuration)
        #expect(FailureTriage.of(FalconError(kind: .localFile, message: "gone")) == .fileProblem)
        #expect(FailureTriage.of(FileSystemError(.unlink, "/x", errno: EPERM)) == .fileProblem)
        let db = try SQLiteConnection(path: ":memory:")
        let sqlError = #expect(throws: SQLiteError.self) { try db.execute("NOT SQL") }
        #expect(FailureTriage.of(try #require(sqlError)) == .internalError)
        #expect(FailureTriage.of(ConfigurationError("bad")) == .configuration)
        #expect(FailureTriage.retryDelay(attempt: 1) == 5)
        #expect(FailureTriage.retryDelay(attempt: 3) == 20)
        #expect(FailureTriage.retryDelay(attempt: 30) == 600)
    }

    @Test(arguments: [
        ("/srv/inbox/", "/srv/inbox"), ("/srv//inbox/./x/../y", "/srv/inbox/y"), ("/", "/"), ("/../a", "/a"), ("a/b/", "a/b"), ("./", "."),
    ])
    func pathsAreNormalisedOnce(raw: String, normal: String) {
        #expect(WorkerConfiguration.normalize(raw) == normal)
    }
}
