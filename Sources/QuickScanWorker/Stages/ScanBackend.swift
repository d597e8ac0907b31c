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
