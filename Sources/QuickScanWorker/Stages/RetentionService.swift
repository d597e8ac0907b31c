import Foundation
import Logging
import ServiceLifecycle

/// Watch mode's scheduled retention (`retention.older_than_days` every
/// `retention.interval_hours`), as a service of the `ServiceGroup`. A failed prune is logged
/// and tried at the next interval: retention never stops the scanning.
public struct RetentionService: Service {
    let pruner: RetentionPruner
    let olderThanDays: Double
    let interval: Duration

    public init(pruner: RetentionPruner, olderThanDays: Double, intervalHours: Double) {
        self.pruner = pruner
        self.olderThanDays = olderThanDays
        self.interval = .milliseconds(Int64(intervalHours * 3_600_000))
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown {
                    _ = try await pruner.prune(olderThan: olderThanDays * 86400)
                }
            } catch is CancellationError {
                return
            } catch {
                pruner.logger.warning("scheduled prune failed; tried again at the next interval", metadata: ["error": "\(error)"])
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }
}
