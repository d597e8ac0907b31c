import FalconAPI
import Foundation

/// The volume submitter: seals uploaded samples into Quick Scan volumes (ScanSamples), within
/// the quota. The intent (the exact sample set) is recorded, durably, before the call, so a
/// lost answer is reconciled instead of resubmitted.
struct VolumeSubmitter: Sendable {
    let context: StageContext
    let reconciler: VolumeReconciler
    let watcher: DirectoryWatcher

    func run(once: Bool) async throws {
        let (store, config, policy) = (context.store, context.config, context.policy)
        guard await policy.deferral == nil else { return }
        try await reconciler.run()
        while true {
            let waiting = try await store.samplesAwaitingVolume(limit: config.volumeMaxSamples)
            guard !waiting.isEmpty else { return }
            let counts = try await store.stateCounts()
            let upstream = (counts["discovered"] ?? 0) + (counts["hashed"] ?? 0) + (await watcher.unsettledCount)
            let oldest = try await store.oldestAwaitingSince() ?? context.now()
            guard Decisions.sealVolume(waiting: waiting.count, maxSamples: config.volumeMaxSamples, oldestWaited: context.now() - oldest,
                                       maxWait: config.volumeMaxWaitSeconds, upstream: upstream, once: once) else { return }
            // Quota: the last meta.quota seen, refreshed before each volume (reference §5.6).
            let quota: QuickScanQuota?
            do {
                quota = try await context.client.quota().quota
                await policy.apiSucceeded()
            } catch {
                try await policy.apiFailed(error, during: "GetScans (quota)")
                return
            }
            if let quota { try await store.setValue("quota", "\(quota.total) \(quota.used) \(quota.inProgress) \(context.now())") }
            let (count, deferral) = Decisions.volumeSize(waiting: waiting.count, quota: quota)
            guard let count else {
                await policy.deferWork(deferral ?? "quota used up")
                return
            }
            try await submit(Array(waiting.prefix(count)))
            if await policy.deferral != nil { return }
        }
    }

    private func submit(_ samples: [String]) async throws {
        let (store, policy, logger) = (context.store, context.policy, context.logger)
        let volume = try await store.createVolumeIntent(samples: samples)
        CrashPoint.reach("volume-intent")
        let scanID: String
        let response: FalconResponse<String>
        do {
            (scanID, response) = try await context.client.scanSamples(samples)
        } catch {
            try await submitFailed(error, volume: volume, samples: samples)
            return
        }
        CrashPoint.reach("volume-sent")
        await policy.apiSucceeded()
        try await store.markVolumeSubmitted(volume, scanID: scanID)
        context.metrics.volumeSubmitted()
        if let q = response.meta.quota { try await store.setValue("quota", "\(q.total) \(q.used) \(q.inProgress) \(context.now())") }
        logger.info("volume submitted", metadata: ["volume.id": "\(volume)", "scan.id": "\(scanID)", "volume.samples": "\(samples.count)"])
    }

    private func submitFailed(_ error: FalconError, volume: Int64, samples: [String]) async throws {
        let (store, config, policy, logger) = (context.store, context.config, context.policy, context.logger)
        if error.mayHaveTakenEffect {
            // Left in `submitting`: reconciliation adopts the scan if the API created it.
            logger.warning("ScanSamples answer lost; reconciling before any resubmission", metadata: ["volume.id": "\(volume)", "error": "\(error)"])
            try await policy.apiFailed(error, during: "ScanSamples")
            return
        }
        try await policy.apiFailed(error, during: "ScanSamples")
        if error.status == 400 {
            // Most likely a sample the API no longer holds (deleted, expired): upload the
            // volume's samples again; attempts are bounded by scan.max_attempts.
            try await store.failVolume(volume, from: .submitting, reason: "ScanSamples refused: \(error.message)", maxAttempts: config.scanMaxAttempts)
            try await store.forgetUploads(samples)
            return
        }
        if error.status == 403 || error.status == 429 {
            await policy.deferWork("ScanSamples refused: \(error)")
        }
        try await store.failVolume(volume, from: .submitting, reason: "ScanSamples not accepted: \(error.message)", maxAttempts: config.scanMaxAttempts + 1)
    }
}
