import FalconAPI
import Foundation

/// The uploader: files recorded `hashed` either reuse a recent verdict of the same content,
/// reuse an upload already in the cloud, or are uploaded (Sample Uploads v3, or QuickScan Pro's
/// own store with `scan=false`), many at once through the client's `RequestLimiter`
/// (`api_concurrency` at most). Both uploads are idempotent (stored by content): a lost
/// answer is simply uploaded again.
struct SampleUploader: Sendable {
    let context: StageContext
    let watcher: DirectoryWatcher

    /// One pass. Uploads go in chunks of one volume, and `between` runs after each chunk but
    /// the last, so a full volume is submitted (and polled) while the next chunk uploads.
    func run(between: () async throws -> Void) async throws {
        let (store, config, policy) = (context.store, context.config, context.policy)
        let files = try await store.files(in: [.hashed], limit: 5000)
        guard !files.isEmpty else { return }
        let ttl = config.verdictCacheTTLHours * 3600
        var toUpload: [String: FileRecord] = [:]
        for file in files {
            guard let sha = file.sha256, let sample = try await store.sample(sha) else { continue }
            if let verdict = sample.verdict, let at = sample.scannedAt, context.now() - at < ttl {
                // Mapped as the API that gave it says (a Pro "clean" is not a legacy verdict).
                let (outcome, reason) = VerdictMapping.outcome(verdict: verdict, error: sample.error, api: sample.verdictAPI,
                                                               likelyBenign: config.likelyBenign)
                try await store.decide(file.id, outcome: outcome, reason: reason, verdict: verdict, error: sample.error,
                                       scanID: sample.scanID, scannedAt: at, cached: true, details: sample.details)
                continue
            }
            if sample.uploadedAt != nil && sample.deletedAt == nil && sample.uploadAPI == config.api {
                try await store.markUploaded(sha, api: config.api)  // the same content is already in the cloud
                continue
            }
            if toUpload[sha] == nil { toUpload[sha] = file }
        }
        guard !toUpload.isEmpty, await policy.deferral == nil else { return }
        let pending = Array(toUpload)
        let chunk = max(1, config.volumeMaxSamples)
        for start in stride(from: 0, to: pending.count, by: chunk) {
            guard await policy.deferral == nil else { return }
            try await upload(Array(pending[start..<min(start + chunk, pending.count)]))
            if start + chunk < pending.count { try await between() }
        }
    }

    private func upload(_ batch: [(key: String, value: FileRecord)]) async throws {
        let (client, api) = (context.client, context.config.api)
        let outcomes = await boundedMap(batch, width: context.config.apiConcurrency) { sha, file -> (String, FileRecord, Result<Void, FalconError>) in
            do throws(FalconError) {
                // With custody the worker's own copy goes up, never the inbox's file.
                let path = file.spoolPath ?? file.path
                let name = (file.path as NSString).lastPathComponent
                switch api {
                case .quickscan:
                    _ = try await client.uploadSample(path: path, fileName: name, comment: nil, isConfidential: true, expectedSHA256: sha)
                case .quickscanpro:
                    // scan=false: the upload stays idempotent; the scan is started by LaunchScan
                    // after its intent is recorded (ProScanLauncher).
                    _ = try await client.uploadQuickScanProFile(path: path, fileName: name, scan: false, password: nil, expectedSHA256: sha)
                }
                return (sha, file, .success(()))
            } catch {
                return (sha, file, .failure(error))
            }
        }
        for (sha, file, result) in outcomes {
            switch result {
            case .success:
                await context.policy.apiSucceeded()
                await context.policy.resetFailures("upload:\(sha)")
                try await context.store.markUploaded(sha, api: context.config.api)
                CrashPoint.reach("uploaded")
            case .failure(let error):
                try await uploadFailed(error, sha: sha, file: file)
            }
        }
    }

    private func uploadFailed(_ error: FalconError, sha: String, file: FileRecord) async throws {
        let (store, policy) = (context.store, context.policy)
        if error.kind == .localFile {
            // The file itself: gone, changed since it was hashed, or unreadable.
            context.logger.warning("upload failed", metadata: ["file.path": "\(file.path)", "error": "\(error)"])
            if file.spoolPath != nil {
                // Our own copy cannot change; it can only be lost (someone removed it).
                try await store.decide(file.id, outcome: .notScanned, reason: .unreadable, error: "the worker's copy: \(error.message)")
                return
            }
            guard let now = FileStat.of(file.path) else {
                try await store.decide(file.id, outcome: .notScanned, reason: .vanished, error: "vanished before upload")
                return
            }
            if now.identity != file.identity {
                try await store.supersede(file.id, detail: "changed before upload")
                await watcher.forgetVersion(file.path)
                return
            }
            try await store.decide(file.id, outcome: .notScanned, reason: .unreadable, error: error.message)
            return
        }
        try await policy.apiFailed(error, during: context.config.api == .quickscan ? "UploadSampleV3" : "UploadFileQuickScanPro")
        if case .rateLimited = FailureTriage.of(error) { return }
        let failures = await policy.countFailure("upload:\(sha)")
        if failures >= context.config.scanMaxAttempts {
            await policy.resetFailures("upload:\(sha)")
            for f in try await store.files(in: [.hashed]) where f.sha256 == sha {
                try await store.decide(f.id, outcome: .notScanned, reason: .scanFailed, error: "upload failed \(failures) times: \(error)")
            }
        }
    }
}

/// Runs `body` over `items` with at most `width` at once; results in completion order.
func boundedMap<Item: Sendable, Result: Sendable>(
    _ items: [Item], width: Int, _ body: @escaping @Sendable (Item) async -> Result
) async -> [Result] {
    await withTaskGroup(of: Result.self) { group in
        var results: [Result] = []
        results.reserveCapacity(items.count)
        var next = 0
        while next < items.count && next < width {
            let item = items[next]
            group.addTask { await body(item) }
            next += 1
        }
        while let result = await group.next() {
            results.append(result)
            if next < items.count {
                let item = items[next]
                group.addTask { await body(item) }
                next += 1
            }
        }
        return results
    }
}
