import FalconAPI
import Foundation

/// The volume submitter: seals uploaded samples into Quick Scan volumes (ScanSamples), within
/// the quota, as soon as nothing more is coming for them (`Decisions.sealVolume`). The intent
/// (the exact sample set) is recorded, durably, before the call, so a lost answer is reconciled
/// instead of resubmitted; a volume refused because of one sample is split until that sample
/// is alone.
struct VolumeSubmitter: Sendable {
    let context: StageContext
    let reconciler: VolumeReconciler
    let watcher: DirectoryWatcher
    let poller: ScanPoller

    func run(once: Bool) async throws {
        let (store, config, policy) = (context.store, context.config, context.policy)
        guard await policy.deferral == nil else { return }
        try await reconciler.run()
        while true {
            let waiting = try await store.samplesAwaitingVolume(limit: config.volumeMaxSamples)
            guard !waiting.isEmpty else { return }
            let counts = try await store.stateCounts()
            let upstream = (counts["discovered"] ?? 0) + (counts["hashed"] ?? 0)
            let arriving = await watcher.arriving(within: Decisions.lingerGrace)
            let oldest = try await store.oldestAwaitingSince() ?? context.now()
            guard Decisions.sealVolume(waiting: waiting.count, maxSamples: config.volumeMaxSamples, oldestWaited: context.now() - oldest,
                                       maxWait: config.volumeMaxWaitSeconds, upstream: upstream, arriving: arriving) else { return }
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
        let volume = try await context.store.createVolumeIntent(samples: samples)
        CrashPoint.reach("volume-intent")
        if let refusal = try await send(volume, samples) {
            try await refused(volume, samples, refusal)
        }
    }

    /// ScanSamples for a recorded intent. Returns the API's 400 (no scan was created) for the
    /// caller to split on; any other failure is handled here.
    private func send(_ volume: Int64, _ samples: [String]) async throws -> FalconError? {
        let (store, policy, logger) = (context.store, context.policy, context.logger)
        let scanID: String
        let response: FalconResponse<String>
        do {
            (scanID, response) = try await context.client.scanSamples(samples)
        } catch {
            if error.status == 400 && !error.mayHaveTakenEffect && !Self.namesQuota(error) { return error }
            try await submitFailed(error, volume: volume, samples: samples)
            return nil
        }
        CrashPoint.reach("volume-sent")
        await policy.apiSucceeded()
        try await store.markVolumeSubmitted(volume, scanID: scanID)
        context.metrics.volumeSubmitted()
        if let q = response.meta.quota { try await store.setValue("quota", "\(q.total) \(q.used) \(q.inProgress) \(context.now())") }
        logger.info("volume submitted", metadata: ["volume.id": "\(volume)", "scan.id": "\(scanID)", "volume.samples": "\(samples.count)"])
        await poller.volumeSubmitted()
        return nil
    }

    /// ScanSamples refused a volume with a 400. One bad sample must not fail the others: the
    /// volume is split and each half sent (each recorded as an intent first). A half refused
    /// again is split again, so one bad sample among n costs 2·log2(n) extra calls and ends
    /// alone. When both halves are refused the cause is not one sample (the API may no longer
    /// hold them): their samples are uploaded again, as for a volume of one.
    private func refused(_ volume: Int64, _ samples: [String], _ error: FalconError) async throws {
        let (store, policy, logger) = (context.store, context.policy, context.logger)
        await policy.apiSucceeded()  // the API answered; the volume's content was the problem
        let reason = "ScanSamples refused: \(error.message)"
        guard samples.count > 1 else {
            try await giveUp([(volume, samples)], reason: reason)
            return
        }
        logger.info("volume refused; splitting it", metadata: ["volume.id": "\(volume)", "volume.samples": "\(samples.count)", "error": "\(error)"])
        let halves = try await store.splitVolume(volume, reason: reason)
        var refusals: [(id: Int64, samples: [String], error: FalconError)] = []
        for half in halves {
            // Deferred (a 429): a half not sent stays an intent; reconciliation sends it later.
            guard await policy.deferral == nil else { return }
            if let refusal = try await send(half.id, half.samples) { refusals.append((half.id, half.samples, refusal)) }
        }
        switch refusals.count {
        case 0: return
        case 1: try await refused(refusals[0].id, refusals[0].samples, refusals[0].error)
        default:
            try await giveUp(refusals.map { ($0.id, $0.samples) }, reason: "ScanSamples refused: \(refusals[0].error.message)")
        }
    }

    /// Refused volumes that are not split further: failed (a sample refused `scan.max_attempts`
    /// times ends `not_scanned` with the API's message) and their samples uploaded again, in
    /// case the API no longer holds them.
    private func giveUp(_ volumes: [(id: Int64, samples: [String])], reason: String) async throws {
        let (store, config) = (context.store, context.config)
        for (id, samples) in volumes {
            try await store.failVolume(id, from: .submitting, reason: reason, maxAttempts: config.scanMaxAttempts)
            try await store.forgetUploads(samples)
        }
    }

    /// A refusal that names the quota: the volume is not split (no sample is at fault); the
    /// work waits for the quota instead.
    static func namesQuota(_ error: FalconError) -> Bool {
        error.status != nil && error.status! < 500 && "\(error.message) \(error.apiErrors.map(\.message).joined(separator: " "))".lowercased().contains("quota")
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
        if error.status == 403 || error.status == 429 || Self.namesQuota(error) {
            await policy.deferWork("ScanSamples refused: \(error)")
        }
        try await store.failVolume(volume, from: .submitting, reason: "ScanSamples not accepted: \(error.message)", maxAttempts: config.scanMaxAttempts + 1)
    }
}
