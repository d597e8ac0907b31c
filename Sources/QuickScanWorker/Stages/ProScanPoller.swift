import FalconAPI
import Foundation

/// QuickScan Pro's poller: GetScanResult for every scan in flight (100 ids per call, by the
/// client), on the legacy poller's cadence. A `done` scan's verdict, reason, confidence, file
/// type and details go to its sample and the files waiting on it; a failed scan (a failure
/// status, or an unknown status with `scan.errors`) or one not done in `scan.timeout_seconds`
/// is queued again, bounded by `scan.max_attempts`.
actor ProScanPoller: ScanWatcher {
    let context: StageContext
    private var schedule = PollSchedule()
    /// When the next GetScanResult is due.
    var nextPoll: Double { schedule.next }
    /// Statuses seen that are neither `done` nor a known running or failure status: logged once.
    private var statusesLogged: Set<String> = []

    init(context: StageContext) {
        self.context = context
    }

    /// Statuses that mean "not finished yet" without being worth a log line.
    static let runningStatuses: Set<String> = ["", "pending", "queued", "running", "in_progress", "in progress", "processing", "scanning"]

    func run(force: Bool) async throws {
        let (store, config) = (context.store, context.config)
        let volumes = try await store.volumes(in: .submitted)
        guard schedule.take(volumes, force: force, now: context.now(), interval: config.scanPollIntervalSeconds) else { return }
        let response: FalconResponse<QuickScanProScan>
        do {
            response = try await context.client.getQuickScanProResults(ids: volumes.compactMap(\.scanID))
            await context.policy.apiSucceeded()
        } catch {
            try await context.policy.apiFailed(error, during: "GetScanResult")
            return
        }
        var listed: [String: QuickScanProScan] = [:]
        for scan in response.resources { listed[scan.id] = scan }
        for volume in volumes {
            guard let scanID = volume.scanID else { continue }
            try await apply(volume, scanID: scanID, scan: listed[scanID])
        }
    }

    func volumeSubmitted() {
        schedule.scanStarted(now: context.now(), interval: context.config.scanPollIntervalSeconds)
    }

    private func apply(_ volume: VolumeRecord, scanID: String, scan: QuickScanProScan?) async throws {
        let (store, config) = (context.store, context.config)
        let submittedAt = volume.submittedAt ?? volume.intentAt
        if let scan, scan.isDone {
            guard let sha = try await store.members(ofVolume: volume.id).first else { return }
            let errors = Self.describe(scan.scan.errors)
            let verdict = scan.result?.verdict?.description
            try await store.completeVolume(volume.id, scanID: scanID, results: [sha: (verdict, errors)], maxAttempts: config.scanMaxAttempts,
                                           deleteSamples: config.deleteSamplesAfterScan, api: .quickscanpro, likelyBenign: config.likelyBenign,
                                           details: scan.result.map { [sha: Self.details($0)] } ?? [:],
                                           deleteResult: config.deleteScanResultsAfterScan)
            context.logger.info("scan done", metadata: ["scan.id": "\(scanID)", "verdict": "\(verdict ?? "none")"])
            return
        }
        if let scan, scan.isFailed {
            let errors = Self.describe(scan.scan.errors).map { ": \($0)" } ?? ""
            try await store.failVolume(volume.id, from: .submitted, reason: "scan \(scanID) ended \(scan.scan.status)\(errors)",
                                       maxAttempts: config.scanMaxAttempts)
            return
        }
        if let status = scan?.scan.status.lowercased(), !Self.runningStatuses.contains(status), statusesLogged.insert(status).inserted {
            context.logger.warning("QuickScan Pro reported a scan status never seen before; polling on", metadata: ["scan.id": "\(scanID)", "status": "\(status)"])
        }
        if context.now() - submittedAt > config.scanTimeoutSeconds {
            try await store.failVolume(volume.id, from: .submitted, reason: "scan \(scanID) not done after \(Int(config.scanTimeoutSeconds)) s",
                                       maxAttempts: config.scanMaxAttempts)
        }
    }

    /// `scan.errors[]` as one line ("code: message; …"), nil when there are none.
    static func describe(_ errors: [QuickScanProScanError]) -> String? {
        guard !errors.isEmpty else { return nil }
        return errors.map { $0.code.isEmpty ? $0.message : "\($0.code): \($0.message)" }.joined(separator: "; ")
    }

    /// What the `results` view and `results --details` keep of a Pro result: the reason, the
    /// confidence, the file type, and the whole `result` object as JSON.
    static func details(_ result: QuickScanProResult) -> ScanDetails {
        let reason = result.verdictReason ?? (result.verdictReasons.isEmpty ? nil : result.verdictReasons.joined(separator: "; "))
        // Encoding a decoded JSONValue cannot fail (no non-finite numbers survive decoding).
        let json = (try? JSONEncoder.sortedCompact.encode(result.raw)).map { String(decoding: $0, as: UTF8.self) }
        return ScanDetails(verdictReason: reason, maliciousConfidence: result.maliciousConfidence,
                           fileType: result.fileTypeShort ?? result.fileType ?? result.mimeType, json: json)
    }
}

extension JSONEncoder {
    /// Compact JSON with sorted keys and unescaped slashes (stable text for the database).
    static var sortedCompact: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
