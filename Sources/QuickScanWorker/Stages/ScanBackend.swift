import Foundation

/// Starts scans of uploaded samples and recovers the ones whose answer was lost: the legacy
/// `VolumeSubmitter` (ScanSamples volumes) or QuickScan Pro's `ProScanLauncher` (LaunchScan
/// per file), chosen by `falcon.api`.
protocol ScanStarter: Sendable {
    /// One pass: reconciles, then starts what is waiting (within the quota).
    func run(once: Bool) async throws
    /// Adopts or restarts scans left `submitting` by a lost answer or a crash.
    func reconcile() async throws
}

/// Polls the scans in flight and records their verdicts: the legacy `ScanPoller` (GetScans)
/// or QuickScan Pro's `ProScanPoller` (GetScanResult).
protocol ScanWatcher: Actor {
    /// When the next poll is due.
    var nextPoll: Double { get }
    func run(force: Bool) async throws
    /// A scan was just started: poll it soon.
    func volumeSubmitted()
}

extension ScanWatcher {
    func run() async throws { try await run(force: false) }
}

extension VolumeSubmitter: ScanStarter {
    func reconcile() async throws { try await reconciler.run() }
}

extension ScanPoller: ScanWatcher {}

/// When the next poll is due: soon after a scan starts, then backing off with the age of the
/// youngest scan in flight to every `scan.poll_interval_seconds` (`Decisions.scanPollDelay`).
/// Scans found in flight at start are polled at once.
struct PollSchedule {
    private(set) var next = -Double.infinity

    /// Whether a poll of `volumes` is due now (always with `force`); if so, schedules the next.
    mutating func take(_ volumes: [VolumeRecord], force: Bool, now: Double, interval: Double) -> Bool {
        guard !volumes.isEmpty, force || now >= next else { return false }
        let youngest = volumes.map { $0.submittedAt ?? $0.intentAt }.max() ?? now
        next = now + Decisions.scanPollDelay(age: now - youngest, interval: interval)
        return true
    }

    /// A scan was just started: poll soon, whatever the cadence of older scans.
    mutating func scanStarted(now: Double, interval: Double) {
        next = min(next, now + Decisions.scanPollDelay(age: 0, interval: interval))
    }
}
