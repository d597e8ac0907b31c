import FalconAPI
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The worker's decisions that need no socket, file or database: pure functions of their
/// inputs, tested from tables (Tests/QuickScanWorkerTests/DecisionTests.swift).
public enum Decisions {
    // MARK: what to submit next

    /// Whether the samples waiting for a volume go out now: a full volume, one whose oldest
    /// sample waited `volume.max_wait_seconds`, or one the uploader has nothing more for.
    /// Batching costs nothing when nothing else is coming: the linger applies only while more
    /// files are on their way — taken but not uploaded yet (`upstream`), or becoming stable
    /// within `lingerGrace` (`arriving`, a burst still being copied in).
    public static func sealVolume(waiting: Int, maxSamples: Int, oldestWaited: Double, maxWait: Double, upstream: Int, arriving: Int) -> Bool {
        guard waiting > 0 else { return false }
        return waiting >= maxSamples || oldestWaited >= maxWait || (upstream == 0 && arriving == 0)
    }

    /// Seconds ahead within which a settling file counts as arriving for the open volume.
    public static let lingerGrace = 1.0

    /// Seconds until the next GetScans, `age` seconds after the youngest volume in flight was
    /// submitted: soon after a submission (a scan may finish in well under a second), then
    /// backing off by half the age up to `scan.poll_interval_seconds` — about eight extra calls
    /// in a volume's first six seconds, each covering every volume in flight.
    public static func scanPollDelay(age: Double, interval: Double) -> Double {
        min(interval, max(0.1, age / 2))
    }

    /// Watch mode: seconds between idle passes. A pass that took `passSeconds` waits 50 times
    /// that (at most 2 % of a core on passes), at least 0.2 s and at most
    /// `poll_interval_seconds`: a small inbox is polled five times a second, a 100,000-file
    /// inbox (a 150 ms pass) every 7.5 s.
    public static func idlePause(passSeconds: Double, pollInterval: Double) -> Double {
        min(pollInterval, max(0.2, passSeconds * 50))
    }

    /// How many of `waiting` samples to submit under `quota` (nil: the API reported none);
    /// nil with a reason when nothing is left (`total − used − in_progress` ≤ 0).
    ///
    /// The quota's unit is undocumented (it may count volumes, files or bytes), so a volume is
    /// not cut to the number left: while anything is left the volume goes out whole, and the
    /// API's own refusal (403/429, or a 400 naming the quota) defers the rest. Cutting would
    /// turn the last of a quota counted in volumes into many tiny volumes.
    public static func volumeSize(waiting: Int, quota: QuickScanQuota?) -> (count: Int?, deferral: String?) {
        guard let quota else { return (waiting, nil) }
        if quota.remaining <= 0 {
            return (nil, "Quick Scan quota used up (\(quota.used) used and \(quota.inProgress) in progress of \(quota.total))")
        }
        return (waiting, nil)
    }

    // MARK: how a poll answer maps to outcomes

    /// What to do with one volume after a GetScans answer.
    public enum PollDecision: Sendable, Equatable {
        case complete(ScanResult)
        case fail(String)
        case wait
    }

    /// Statuses that clearly say a scan ended without results.
    static let failedStatuses: Set<String> = ["failed", "error", "canceled", "cancelled"]

    /// One volume's fate from the scans a GetScans answer listed.
    public static func poll(scanID: String, listed: [ScanResult], submittedAt: Double, now: Double, timeout: Double) -> PollDecision {
        if let scan = listed.first(where: { $0.id == scanID }) {
            if scan.isDone { return .complete(scan) }
            if failedStatuses.contains(scan.status.lowercased()) { return .fail("scan \(scanID) ended \(scan.status)") }
        }
        if now - submittedAt > timeout { return .fail("scan \(scanID) not done after \(Int(timeout)) s") }
        return .wait
    }

    // MARK: how to dispose a file

    /// What the disposer does with one decided file.
    public enum DisposalPlan: Sendable, Equatable {
        case leave
        case delete
        /// Move to `folder/relative`, the file made `fileMode`, new folders `folderMode`.
        case move(folder: String, relative: String, fileMode: mode_t?, folderMode: mode_t)
    }

    /// `fileMode`: the mode the filed file gets (nil: unchanged).
    public static func disposal(rule: DispositionRule, outcome: Outcome, path: String, inbox: String, fileMode: mode_t?) -> DisposalPlan {
        switch rule.action {
        case .leave: return .leave
        case .delete: return .delete
        case .move:
            let relative = path.hasPrefix(inbox + "/") ? String(path.dropFirst(inbox.count + 1)) : (path as NSString).lastPathComponent
            // Quarantine: only the worker's user may read a threat.
            let restricted = outcome == .threat
            return .move(folder: rule.to ?? "", relative: relative, fileMode: fileMode, folderMode: restricted ? 0o700 : 0o755)
        }
    }

    // MARK: how to finish a disposal a crash interrupted

    /// The next step of an interrupted disposal.
    public enum ResumeAction: Sendable, Equatable {
        /// Nothing left to do on disk: record the file filed at `destination`.
        case finish(destination: String?)
        /// The copy is in place (linked or copied): remove the source, then finish.
        case removeSourceThenFinish
        /// Nothing was placed and the file is unchanged: dispose of it again.
        case disposeAgain
        /// The file changed and nothing was placed for the version that was scanned.
        case supersede
    }

    /// Decides from what is on disk now. `destination` is the recorded intent (nil: leave,
    /// "(deleted)": delete); `source` and `target` are the `lstat`s of the file and of the
    /// destination; `targetHoldsScannedBytes` says whether the destination, when it is another
    /// inode, holds exactly the bytes that were scanned.
    public static func resume(destination: String?, recorded: FileIdentity, source: FileStat?, target: FileStat?,
                              targetHoldsScannedBytes: Bool) -> ResumeAction {
        guard let destination else { return .finish(destination: nil) }
        let unchanged = source.map { $0.identity == recorded } ?? false
        if destination == deletedMarker {
            guard source != nil else { return .finish(destination: destination) }
            // The identity is checked again: a new version saved at the same path after the
            // crash is a new file, never deleted unscanned.
            return unchanged ? .disposeAgain : .supersede
        }
        if let source, let target, source.node == target.node { return .removeSourceThenFinish }  // crashed between link and unlink
        if target != nil && targetHoldsScannedBytes {
            // A copy across file systems was placed: never copy twice.
            if source == nil { return .finish(destination: destination) }
            return unchanged ? .removeSourceThenFinish : .finish(destination: destination)
        }
        guard source != nil else { return .finish(destination: nil) }  // gone, nothing placed
        return unchanged ? .disposeAgain : .supersede
    }

    /// `files.disposed_to` of a deleted file.
    public static let deletedMarker = "(deleted)"
}

/// How a run ended (README's exit codes).
public struct RunSummary: Sendable, CustomStringConvertible {
    public var outcomes: [Outcome: Int]
    public var pending: Int
    public var deferredReason: String?
    public var exitCode: Int32

    public init(outcomes: [Outcome: Int], pending: Int, deferredReason: String?) {
        self.outcomes = outcomes
        self.pending = pending
        self.deferredReason = pending > 0 ? (deferredReason ?? "work left pending") : nil
        self.exitCode = Self.exitCode(threats: outcomes[.threat] ?? 0, notScanned: outcomes[.notScanned] ?? 0, pending: pending)
    }

    /// A threat outranks a deferral, a deferral outranks not scanned.
    public static func exitCode(threats: Int, notScanned: Int, pending: Int) -> Int32 {
        if threats > 0 { return 1 }
        if pending > 0 { return 4 }
        if notScanned > 0 { return 2 }
        return 0
    }

    public var description: String {
        "clean \(outcomes[.clean] ?? 0), threat \(outcomes[.threat] ?? 0), not scanned \(outcomes[.notScanned] ?? 0), pending \(pending)"
            + (deferredReason.map { " (deferred: \($0))" } ?? "")
    }
}
