import FalconAPI
import Foundation

/// The cloud cleaner: with `delete_samples_after_scan`, deletes each scanned sample from the
/// cloud; the ledger in `samples` (delete_pending) survives a crash.
struct CloudCleaner: Sendable {
    let context: StageContext

    func run() async throws {
        guard context.config.deleteSamplesAfterScan else { return }
        for sha in try await context.store.samplesPendingDeletion() {
            do {
                try await context.client.deleteSample(sha256: sha)
                await context.policy.apiSucceeded()
            } catch {
                try await context.policy.apiFailed(error, during: "DeleteSampleV3")
                return
            }
            try await context.store.markSampleDeleted(sha)
        }
    }
}
