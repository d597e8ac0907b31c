import FalconAPI
import Foundation

/// The cloud cleaner: with `delete_samples_after_scan`, deletes each scanned sample from the
/// cloud as soon as its volume is done, many at once through the client's `RequestLimiter`
/// (`api_concurrency` at most). The ledger in `samples` (delete_pending) survives a crash: a
/// sample is marked deleted only after the API confirmed, so a killed run deletes it again
/// (DeleteSampleV3 is idempotent; a 404 counts as deleted).
struct CloudCleaner: Sendable {
    let context: StageContext

    func run() async throws {
        guard await context.policy.deferral == nil else { return }
        if context.config.api == .quickscanpro {
            try await runPro()
            return
        }
        guard context.config.deleteSamplesAfterScan else { return }
        let pending = try await context.store.samplesPendingDeletion()
        guard !pending.isEmpty else { return }
        let (client, store) = (context.client, context.store)
        let results = await boundedMap(pending, width: context.config.apiConcurrency) { sha -> Result<Void, any Error> in
            do throws(FalconError) {
                try await client.deleteSample(sha256: sha)
            } catch {
                return .failure(error)
            }
            // Recorded as each answer comes: a crash keeps every confirmed delete.
            do { try await store.markSampleDeleted(sha) } catch { return .failure(error) }
            return .success(())
        }
        var errors: [FalconError] = []
        for case .failure(let error) in results {
            guard let apiError = error as? FalconError else { throw error }  // the store: fatal, via the policy
            errors.append(apiError)
        }
        if errors.count < pending.count { await context.policy.apiSucceeded() }
        // One failure reported per pass: the rest are the same cause, retried next pass.
        if let first = errors.first(where: { FailureTriage.of($0) != .transient }) ?? errors.first {
            try await context.policy.apiFailed(first, during: "DeleteSampleV3")
        }
    }

    /// QuickScan Pro: DeleteFile takes many sha256s per call (100 per call, by the client), and
    /// with `delete_scan_results_after_scan` DeleteScanResult removes the stored results. Each
    /// confirmed call is recorded before the next; a 404 (already gone) counts as deleted.
    private func runPro() async throws {
        let (client, store, policy) = (context.client, context.store, context.policy)
        if context.config.deleteSamplesAfterScan {
            let pending = try await store.samplesPendingDeletion()
            let perCall = HTTPFalconClient.quickScanProIDsPerCall
            for start in stride(from: 0, to: pending.count, by: perCall) {
                let chunk = Array(pending[start..<min(start + perCall, pending.count)])
                do {
                    try await client.deleteQuickScanProFiles(sha256s: chunk)
                } catch {
                    try await policy.apiFailed(error, during: "DeleteFile")
                    return
                }
                await policy.apiSucceeded()
                try await store.markSamplesDeleted(chunk)
            }
        }
        guard context.config.deleteScanResultsAfterScan else { return }
        let results = try await store.scanResultsPendingDeletion()
        guard !results.isEmpty else { return }
        do {
            try await client.deleteQuickScanProResults(ids: results.map(\.scanID))
        } catch {
            try await policy.apiFailed(error, during: "DeleteScanResult")
            return
        }
        await policy.apiSucceeded()
        try await store.markScanResultsDeleted(results.map(\.volume))
    }
}
