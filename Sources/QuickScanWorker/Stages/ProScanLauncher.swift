import FalconAPI
import Foundation

/// QuickScan Pro's scan starter: one scan per uploaded sample (LaunchScan), recorded like a
/// volume of one sample, so the store, the poll, the crash recovery and the exit codes are the
/// legacy backend's.
///
/// Why LaunchScan and not upload with `scan=true` (quickscan-pro.md §5): the upload stays
/// idempotent (content already in the store is not sent again, a lost upload answer is simply
/// repeated), and the one call that spends quota comes after its intent is recorded durably,
/// exactly as ScanSamples does on the legacy backend. A lost LaunchScan answer is reconciled
/// with QueryScanResults by sha256 (`sha256:'…'`, from the intent's time on): a scan found is
/// adopted, so content that already has a scan never gets a second one. The cost is one more
/// (small) call per distinct file.
struct ProScanLauncher: ScanStarter {
    let context: StageContext
    let poller: ProScanPoller

    /// Intents recorded (one durable transaction) and launched per round.
    static let batch = 500

    func run(once: Bool) async throws {
        let (store, policy) = (context.store, context.policy)
        guard await policy.deferral == nil else { return }
        try await reconcile()
        while await policy.deferral == nil {
            let waiting = try await store.samplesAwaitingVolume(limit: Self.batch)
            guard !waiting.isEmpty else { return }
            // Quota: QueryScanResults carries it (GetScanResult does not; quickscan-pro.md §4).
            let quota: QuickScanQuota?
            do {
                quota = try await context.client.queryQuickScanProResults(filter: "", offset: nil, limit: 1, sort: nil).meta.quota
                await policy.apiSucceeded()
            } catch {
                try await policy.apiFailed(error, during: "QueryScanResults (quota)")
                return
            }
            if let quota { try await recordQuota(quota) }
            // One scan per file: at most what is left (total − used − in_progress).
            var count = waiting.count
            if let quota {
                guard quota.remaining > 0 else {
                    await policy.deferWork("QuickScan Pro quota used up (\(quota.used) used and \(quota.inProgress) in progress of \(quota.total))")
                    return
                }
                count = min(count, quota.remaining)
            }
            let shas = Array(waiting.prefix(count))
            let volumes = try await store.createVolumeIntents(shas.map { [$0] }, api: .quickscanpro)
            CrashPoint.reach("volume-intent")
            try await launch(Array(zip(volumes, shas)))
        }
    }

    /// LaunchScan for recorded intents, `api_concurrency` at once.
    private func launch(_ intents: [(volume: Int64, sha: String)]) async throws {
        let client = context.client
        let answers = await boundedMap(intents, width: context.config.apiConcurrency) { intent -> (Int64, String, Result<(String, QuickScanQuota?), FalconError>) in
            do throws(FalconError) {
                let (scanID, response) = try await client.launchQuickScanProScan(sha256: intent.sha, password: nil)
                return (intent.volume, intent.sha, .success((scanID, response.meta.quota)))
            } catch {
                return (intent.volume, intent.sha, .failure(error))
            }
        }
        var launched = 0
        var quota: QuickScanQuota?
        var errors: [FalconError] = []
        for (volume, sha, answer) in answers {
            switch answer {
            case .success(let (scanID, q)):
                CrashPoint.reach("volume-sent")
                try await context.store.markVolumeSubmitted(volume, scanID: scanID)
                context.metrics.volumeSubmitted()
                launched += 1
                quota = q ?? quota
            case .failure(let error):
                errors.append(error)
                try await launchFailed(error, volume: volume, sha: sha)
            }
        }
        // One report per round, as for one ScanSamples call: many launches lost to one network
        // blip are one failure of the API, not one per file.
        if launched > 0 {
            await context.policy.apiSucceeded()
            await poller.volumeSubmitted()
            context.logger.info("scans launched", metadata: ["scans": "\(launched)", "api": "quickscanpro"])
        } else if let first = errors.first(where: { FailureTriage.of($0) != .transient }) ?? errors.first {
            try await context.policy.apiFailed(first, during: "LaunchScan")
        }
        if let quota { try await recordQuota(quota) }
    }

    private func recordQuota(_ q: QuickScanQuota) async throws {
        try await context.store.setValue("quota", "\(q.total) \(q.used) \(q.inProgress) \(context.now())")
    }

    /// A LaunchScan that failed. An answer that may have been lost leaves the intent for
    /// reconciliation; a refusal (no scan started) fails the attempt, and the file is uploaded
    /// again in case the store no longer holds it (bounded by `scan.max_attempts`).
    private func launchFailed(_ error: FalconError, volume: Int64, sha: String) async throws {
        let (store, config, policy) = (context.store, context.config, context.policy)
        if error.mayHaveTakenEffect {
            context.logger.warning("LaunchScan answer lost; reconciling before any relaunch", metadata: ["volume.id": "\(volume)", "error": "\(error)"])
            return
        }
        if error.status == 403 || error.status == 429 || VolumeSubmitter.namesQuota(error) {
            await policy.deferWork("LaunchScan refused: \(error)")
            try await store.failVolume(volume, from: .submitting, reason: "LaunchScan not accepted: \(error.message)", maxAttempts: config.scanMaxAttempts + 1)
            return
        }
        try await store.failVolume(volume, from: .submitting, reason: "LaunchScan refused: \(error.message)", maxAttempts: config.scanMaxAttempts)
        if let status = error.status, (400..<500).contains(status) { try await store.forgetUploads([sha]) }
    }

    /// Scans whose LaunchScan answer was lost (left `submitting`): adopts the scan the API
    /// started for the sha256 since the intent, else launches it again.
    /// Many at once (`api_concurrency`): a crash may leave a whole round of intents. One
    /// failure is reported per pass; the scans not reconciled wait for the next.
    func reconcile() async throws {
        let volumes = try await context.store.volumes(in: .submitting)
        guard !volumes.isEmpty else { return }
        let known = try await context.store.knownScanIDs()
        let outcomes = await boundedMap(volumes, width: context.config.apiConcurrency) { volume -> Result<Void, any Error> in
            do {
                try await reconcile(volume, known: known)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        var errors: [FalconError] = []
        for case .failure(let error) in outcomes {
            guard let apiError = error as? FalconError else { throw error }  // the store: fatal, via the policy
            errors.append(apiError)
        }
        if errors.count < volumes.count { await context.policy.apiSucceeded() }
        if let first = errors.first(where: { FailureTriage.of($0) != .transient }) ?? errors.first {
            try await context.policy.apiFailed(first, during: "reconcile LaunchScan")
        }
    }

    private func reconcile(_ volume: VolumeRecord, known: Set<String>) async throws {
        let (store, client, logger) = (context.store, context.client, context.logger)
        guard let sha = try await store.members(ofVolume: volume.id).first else { return }
        let since = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: volume.intentAt - 300))
        let found = try await client.queryQuickScanProResults(filter: "sha256:'\(sha)'+created_timestamp:>='\(since)'",
                                                               offset: nil, limit: 100, sort: .newestFirst)
        if let adopted = found.resources.first(where: { !known.contains($0) }) {
            try await store.markVolumeSubmitted(volume.id, scanID: adopted, detail: "adopted \(adopted) after an interrupted launch")
            context.metrics.volumeAdopted()
            logger.info("scan adopted after interruption", metadata: ["volume.id": "\(volume.id)", "scan.id": "\(adopted)"])
            await poller.volumeSubmitted()
            return
        }
        let answer: Result<String, FalconError>
        do {
            answer = .success(try await client.launchQuickScanProScan(sha256: sha, password: nil).scanID)
        } catch {
            answer = .failure(error)
        }
        switch answer {
        case .success(let scanID):
            try await store.markVolumeSubmitted(volume.id, scanID: scanID, detail: "launched again: no scan of \(sha) since the intent")
            context.metrics.volumeSubmitted()
            await poller.volumeSubmitted()
        case .failure(let error):
            try await launchFailed(error, volume: volume.id, sha: sha)
            throw error  // reported by the caller, once per scan reconciled
        }
    }
}
