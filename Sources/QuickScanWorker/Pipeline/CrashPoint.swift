import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Deterministic crash injection for the crash tests: with `QUICKSCAN_CRASH_AT=NAME[:N]` in the
/// environment, the process SIGKILLs itself the N-th time (default 1) it reaches point NAME.
/// Points: `hashed`, `uploaded`, `volume-intent` (intent committed, ScanSamples not sent),
/// `volume-sent` (ScanSamples answered, scan id not committed), `disposal-begun` (destination
/// recorded, file not moved), `linked` (destination linked, source not yet unlinked), `copied`
/// (a cross-device copy written and synced under its temporary name), `placed` (the copy at
/// its destination with its mode, source not yet unlinked), `source-removed` (moved, not yet
/// recorded), `notify-due` (a verdict's notification committed, not sent), `notify-sent`
/// (sent, its delivery not recorded).
public enum CrashPoint {
    private static let target: (name: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["QUICKSCAN_CRASH_AT"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":")
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let counter = NSLock()
    nonisolated(unsafe) private static var reached = 0

    /// Called at each named point; a no-op unless the environment names it.
    public static func reach(_ name: String) {
        guard let target, target.name == name else { return }
        counter.lock()
        reached += 1
        let hit = reached == target.count
        counter.unlock()
        if hit { kill(getpid(), SIGKILL) }
    }
}
