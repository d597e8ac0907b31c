import FalconAPI
import Foundation

/// The scan poller: one GetScans call per 100 volumes in flight, soon after a submission and
/// then backing off to every `scan.poll_interval_seconds` (`Decisions.scanPollDelay`); a
/// finished scan's verdicts go to its samples and the files waiting on them.
actor ScanPoller {
    let context: StageContext
    private var schedule = PollSchedule()
    /// When the next GetScans is due.
    var nextPoll: Double { schedule.next }

    init(context: StageContext) {
        self.context = context
    }

    /// Statuses seen that are neither done, failed nor known to mean running: logged once.
    private var statusesLogged: Set<String> = []

    func run(force: Bool) async throws {
        let (store, config) = (context.store, context.config)
        let volumes = try await store.volumes(in: .submitted)
        guard schedule.take(volumes, force: force, now: context.now(), interval: config.scanPollIntervalSeconds) else { return }
        for chunk in stride(from: 0, to: volumes.count, by: 100).map({ Array(volumes[$0..<min($0 + 100, volumes.count)]) }) {
            let response: FalconResponse<ScanResult>
            do {
                response = try await context.client.getScans(ids: chunk.compactMap(\.scanID))
                await context.policy.apiSucceeded()
            } catch {
                try await context.policy.apiFailed(error, during: "GetScans")
                return
            }
            if response.status == 404 && chunk.count > 1 && response.resources.count < chunk.count {
                // The API does not know some of these ids: ask one by one, so only a volume
                // whose id alone is unknown fails (its samples are queued again).
                for volume in chunk { try await pollSingle(volume) }
                continue
            }
            for volume in chunk { try await apply(volume, response) }
        }
    }

    /// A volume was just submitted: poll it soon, whatever the cadence of older volumes.
    func volumeSubmitted() {
        schedule.scanStarted(now: context.now(), interval: context.config.scanPollIntervalSeconds)
    }

    private func apply(_ volume: VolumeRecord, _ response: FalconResponse<ScanResult>) async throws {
        guard let scanID = volume.scanID else { return }
        let listed = response.resources
        if response.status == 404 && !listed.contains(where: { $0.id == scanID }) {
            try await context.store.failVolume(volume.id, from: .submitted, reason: "scan \(scanID) is unknown to the API",
                                               maxAttempts: context.config.scanMaxAttempts)
            return
        }
        if let status = listed.first(where: { $0.id == scanID })?.status.lowercased(), !ProScanPoller.runningStatuses.contains(status),
           status != "done", !Decisions.failedStatuses.contains(status), statusesLogged.insert(status).inserted {
            context.logger.warning("GetScans reported a scan status never seen before; polling on", metadata: ["scan.id": "\(scanID)", "status": "\(status)"])
        }
        switch Decisions.poll(scanID: scanID, listed: listed, submittedAt: volume.submittedAt ?? volume.intentAt, now: context.now(),
                              timeout: context.config.scanTimeoutSeconds) {
        case .complete(let scan):
            var results: [String: (verdict: String?, error: String?)] = [:]
            for s in scan.samples { results[s.sha256] = (s.verdict, s.error) }
            try await context.store.completeVolume(volume.id, scanID: scan.id, results: results,
                                                   maxAttempts: context.config.scanMaxAttempts, deleteSamples: context.config.deleteSamplesAfterScan)
            context.logger.info("volume done", metadata: ["scan.id": "\(scan.id)"])
        case .fail(let reason):
            try await context.store.failVolume(volume.id, from: .submitted, reason: reason, maxAttempts: context.config.scanMaxAttempts)
        case .wait:
            break
        }
    }

    private func pollSingle(_ volume: VolumeRecord) async throws {
        guard let scanID = volume.scanID else { return }
        do {
            let response = try await context.client.getScans(ids: [scanID])
            await context.policy.apiSucceeded()
            try await apply(volume, response)
        } catch let error as FalconError {
            try await context.policy.apiFailed(error, during: "GetScans")
        }
    }
}
