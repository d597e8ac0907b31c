import FalconAPI
import Foundation
import Hashing
import Logging
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// How a run ended (PRODUCT.md exit codes).
public struct RunSummary: Sendable, CustomStringConvertible {
    public var outcomes: [Outcome: Int]
    public var pending: Int
    public var deferredReason: String?
    public var exitCode: Int32

    public var description: String {
        "clean \(outcomes[.clean] ?? 0), threat \(outcomes[.threat] ?? 0), not scanned \(outcomes[.notScanned] ?? 0), pending \(pending)"
            + (deferredReason.map { " (deferred: \($0))" } ?? "")
    }
}

/// The worker: watch → hash → upload → submit volumes → poll → dispose, with SQLite as the
/// queue. Each `step()` moves every file as far as it can go; state lives only in the store,
/// so a restart resumes where the last committed transition left off.
public final class ScanPipeline: @unchecked Sendable {
    let config: WorkerConfiguration
    let store: WorkerStore
    let client: HTTPFalconClient
    let logger: Logger
    let walker: DirectoryWalker
    /// One thread that hosts each hashing batch (`ParallelHasher` on `hash_threads` threads), so
    /// blocking reads never occupy Swift's cooperative pool.
    let hashPool: NIOThreadPool

    /// Watcher index: the last version recorded per path (loaded from the store).
    private var known: [String: FileIdentity] = [:]
    /// Files seen but not yet stable: identity and when it was first seen unchanged.
    private var settling: [String: (identity: FileIdentity, since: Double, inbox: String)] = [:]
    /// Paths whose recorded version changed since the last poll (see `forgetVersion`).
    private var changed: Set<String> = []
    /// In `--once` mode: only paths present at the first poll are taken.
    private var onlyPaths: Set<String>?
    private var lastScanPoll = 0.0
    private var uploadFailures: [String: Int] = [:]
    /// Files whose disposal failed in this run, with the reason (they stay `decided`).
    private var disposalFailures: [Int64: String] = [:]
    /// Test hooks: called with the file's path at fixed points, to change the file under us.
    public var hooks = PipelineHooks()
    /// API calls that failed in a row (after the client's own retries); reset by any success.
    private var apiFailureStreak = 0
    /// In `--once` mode, this many failures in a row end the run as deferred (exit 4).
    static let apiFailureLimit = 5
    /// Why submitting stopped (quota used up, rate limited beyond the deadline).
    public private(set) var deferredReason: String?

    public init(config: WorkerConfiguration, store: WorkerStore, client: HTTPFalconClient, logger: Logger) {
        self.config = config
        self.store = store
        self.client = client
        self.logger = logger
        self.walker = DirectoryWalker(threads: config.hashThreads)
        self.hashPool = NIOThreadPool(numberOfThreads: 1)
        hashPool.start()
    }

    deinit { try? hashPool.syncShutdownGracefully() }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Loads the watcher index and reconciles volumes left in `submitting` by a crash.
    public func prepare() async throws {
        // Interrupted disposals first: a crash between link and unlink leaves the source with a
        // new ctime, which the watcher would otherwise take for a new version.
        for file in try await store.files(in: [.disposing]) { try await resumeDisposal(file) }
        known = try await store.knownFiles()
        if let until = try await store.value("rate_limit_cooldown_until").flatMap(Double.init), until > Self.now() {
            await client.rateLimit.coolDown(until: until)
        }
        try await reconcileSubmittingVolumes()
    }

    /// Carries every file present now to a final outcome; returns the summary and exit code.
    public func runOnce(deadline: Double? = nil) async throws -> RunSummary {
        try await prepare()
        var first = true
        while true {
            try Task.checkCancellation()
            try await step(takeNew: true, firstPoll: first, once: true)
            first = false
            let pending = try await store.pendingCount()
            let unsettled = settling.keys.filter { onlyPaths?.contains($0) ?? true }.count + changed.count
            if pending == 0 && unsettled == 0 { break }
            if unsettled == 0, !disposalFailures.isEmpty, pending == disposalFailures.count {
                deferredReason = "cannot file \(disposalFailures.count) file(s): \(disposalFailures.values.first ?? "")"
                break
            }
            if let deadline, Self.now() > deadline {
                deferredReason = deferredReason ?? "deadline reached"
                break
            }
            if deferredReason != nil, try await !hasWorkInFlight() { break }
            if apiFailureStreak >= Self.apiFailureLimit {
                deferredReason = "the Falcon API failed \(apiFailureStreak) times in a row"
                break
            }
            try await Task.sleep(for: .milliseconds(Int(min(config.scanPollIntervalSeconds, max(0.05, config.settleSeconds / 2), 1) * 1000)))
        }
        return try await summary()
    }

    /// Watch mode: poll until cancelled.
    public func runForever() async throws {
        try await prepare()
        while !Task.isCancelled {
            try await step(takeNew: true, firstPoll: false, once: false)
            deferredReason = nil  // watch mode retries quota and rate limits on the next poll
            // Sleep the poll interval, shorter while files settle or volumes are in flight.
            var pause = config.pollIntervalSeconds
            if !settling.isEmpty { pause = min(pause, max(0.05, config.settleSeconds)) }
            if try await hasWorkInFlight() { pause = min(pause, config.scanPollIntervalSeconds) }
            if try await store.oldestAwaitingSince() != nil { pause = min(pause, max(0.05, config.volumeMaxWaitSeconds)) }
            try? await Task.sleep(for: .milliseconds(Int(pause * 1000)))
        }
    }

    func hasWorkInFlight() async throws -> Bool {
        let counts = try await store.stateCounts()
        let volumes = try await store.volumes(in: .submitted).count + (try await store.volumes(in: .submitting).count)
        return volumes > 0 || (counts["decided"] ?? 0) > 0 || (counts["disposing"] ?? 0) > 0 || (counts["discovered"] ?? 0) > 0
    }

    /// Benchmarks: takes and hashes every file in the inboxes now, without any API call.
    /// Returns the number of file versions recorded.
    public func ingestOnly() async throws -> Int {
        known = try await store.knownFiles()
        try await discover(firstPoll: true, once: true)
        var recorded = 0
        while true {
            let before = try await store.files(in: [.discovered], limit: 1).count
            if before == 0 { break }
            try await hashDiscovered()
        }
        for (state, count) in try await store.stateCounts() where state != FileState.superseded.rawValue { recorded += count }
        return recorded
    }

    /// Benchmarks: one watcher poll; returns the number of entries seen.
    public func pollOnce() async throws -> Int {
        try await discover(firstPoll: false, once: false)
    }

    public func summary() async throws -> RunSummary {
        let outcomes = try await store.outcomesThisRun()
        let pending = try await store.pendingCount()
        let code: Int32
        if (outcomes[.threat] ?? 0) > 0 { code = 1 }
        else if pending > 0 { code = 4 }
        else if (outcomes[.notScanned] ?? 0) > 0 { code = 2 }
        else { code = 0 }
        return RunSummary(outcomes: outcomes, pending: pending, deferredReason: pending > 0 ? (deferredReason ?? "work left pending") : nil, exitCode: code)
    }

    /// One pass over every stage.
    public func step(takeNew: Bool, firstPoll: Bool, once: Bool) async throws {
        if takeNew { try await discover(firstPoll: firstPoll, once: once) }
        try await hashDiscovered()
        try await uploadHashed(once: once)
        try await submitVolumes(once: once)
        try await pollVolumes(force: false)
        try await dispose()
        try await deleteScannedSamples()
    }

    // MARK: watcher

    /// One watcher poll: stats every entry, takes the stable ones in one transaction. An idle
    /// poll (nothing changed) costs the stats and a dictionary lookup per file, no database
    /// access. Returns the number of entries seen.
    @discardableResult
    func discover(firstPoll: Bool, once: Bool) async throws -> Int {
        let now = Self.now()
        // The set of paths seen is needed only to forget settling files that vanished and to
        // fix a --once run's file list; an idle poll skips it.
        let needSeen = !settling.isEmpty || (firstPoll && once)
        var seen: Set<String> = []
        var entriesSeen = 0
        var stable: [InboxEntry] = []
        let skip = Set(Outcome.allCases.compactMap { config.disposition[$0]?.to })
        for inbox in config.inboxes {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: inbox.path, isDirectory: &isDir) || !isDir.boolValue {
                let problem = FileManager.default.fileExists(atPath: inbox.path) ? "is not a folder" : "does not exist"
                // A cron run with a wrong inbox is a configuration error; a watcher waits for it
                // (a share may come back).
                if once && firstPoll { throw ConfigurationError("inbox \(inbox.path) \(problem)") }
                logger.error("inbox \(problem)", metadata: ["inbox.path": "\(inbox.path)"])
                continue
            }
            let errors = walker.walk(inbox, excludingDirectories: skip) { entries, remaining in
                entriesSeen += entries.count
                if needSeen && seen.count == seen.capacity { seen.reserveCapacity(seen.count + remaining) }
                for (index, entry) in entries.enumerated() {
                    if needSeen { seen.insert(entry.path) }
                    if let onlyPaths, !onlyPaths.contains(entry.path) { continue }
                    if known[entry.path] == entry.stat.identity { continue }  // idle poll: a stat, nothing else
                    if config.settleSeconds == 0 {
                        // Room for the rest at once: growing by doubling held two copies of a
                        // 100,000-file list at the peak.
                        if stable.count == stable.capacity { stable.reserveCapacity(stable.count + remaining - index) }
                        stable.append(entry)
                    } else if let s = settling[entry.path], s.identity == entry.stat.identity {
                        if now - s.since >= config.settleSeconds { stable.append(entry) }
                    } else {
                        settling[entry.path] = (entry.stat.identity, now, entry.inbox)
                    }
                }
            }
            if once && firstPoll, let rootError = errors.first(where: { $0.hasPrefix("cannot read folder \(inbox.path):") }) {
                throw ConfigurationError("inbox \(rootError.dropFirst("cannot read folder ".count))")
            }
            for e in errors { logger.warning("\(e)") }
        }
        // Forget files that vanished while settling.
        if needSeen && !settling.isEmpty {
            for path in settling.keys where !seen.contains(path) && settling[path]?.since != now { settling[path] = nil }
        }
        changed.removeAll()
        if firstPoll && once { onlyPaths = seen }
        try await take(&stable)
        return entriesSeen
    }

    /// The recorded version of `path` is gone (changed or filed): the watcher looks again, and
    /// a `--once` run does not end before it has.
    private func forgetVersion(_ path: String) {
        known[path] = nil
        changed.insert(path)
    }

    /// Files hashed per batch; one batch is hashed while the one before it is recorded.
    public static let ingestBatch = 10_000

    /// Takes stable files. Those that cannot be scanned are recorded decided at once; the rest
    /// are hashed in batches and recorded already `hashed`, each batch hashed while the one
    /// before it is written (hashing has no persisted in-progress state: after a crash the
    /// file is simply found and hashed again). `entries` is left holding the files hashed.
    private func take(_ entries: inout [InboxEntry]) async throws {
        var unscannable: [UnscannableFile] = []
        known.reserveCapacity(known.count + entries.count)
        for entry in entries {
            settling[entry.path] = nil
            known[entry.path] = entry.stat.identity
            if let (reason, error) = unscannableReason(entry) {
                unscannable.append((entry.path, entry.inbox, entry.stat.identity, reason, error))
            }
        }
        if !unscannable.isEmpty {
            // In place: a 100,000-file inbox is not copied.
            let recorded = Set(unscannable.map(\.path))
            entries.removeAll { recorded.contains($0.path) }
            try await store.recordNotScanned(unscannable)
        }
        let batches = stride(from: 0, to: entries.count, by: Self.ingestBatch).map { $0..<min($0 + Self.ingestBatch, entries.count) }
        guard let first = batches.first else { return }
        var hashing = startHashing(entries[first].map(\.path))
        for (index, batch) in batches.enumerated() {
            // A shutdown between batches keeps what is recorded; the rest is found next run
            // (a 1,000,000-file inbox takes about 25 s to take whole).
            if index > 0 && Task.isCancelled {
                for entry in entries[batch.lowerBound...] { forgetVersion(entry.path) }
                throw CancellationError()
            }
            let digests = try await hashing.value
            if index + 1 < batches.count { hashing = startHashing(entries[batches[index + 1]].map(\.path)) }
            try await record(entries[batch], digests)
        }
    }

    /// Why a stable entry cannot be scanned, before reading it (nil: hash it).
    private func unscannableReason(_ entry: InboxEntry) -> (NotScannedReason, String)? {
        if !entry.hasValidName {
            logger.warning("file name is not valid UTF-8; left in place", metadata: ["file.path": "\(entry.path)"])
            return (.unreadable, "file name is not valid UTF-8: rename the file to have it scanned")
        }
        switch entry.stat.kind {
        case .symlink:
            return (.unreadable, "symbolic link: not followed")
        case .other:
            return (.unreadable, "not a regular file")
        default:
            if entry.stat.identity.size > config.maxFileBytes {
                return (.tooLarge, "\(entry.stat.identity.size) bytes, over max_file_bytes \(config.maxFileBytes)")
            }
            return nil
        }
    }

    // MARK: hasher

    /// One file read by the hasher: its digest and its `stat` taken right after.
    typealias HashResult = (digest: Result<FileDigest, FileHashError>, after: FileStat?)

    /// Hashes `paths` on the hashing threads (one hop for the whole batch: per-file hops cost
    /// more than hashing a small file), then stats each file again there, off the recording path.
    private func startHashing(_ paths: [String]) -> Task<[HashResult], any Error> {
        let (threads, hooks, pool) = (max(1, config.hashThreads), self.hooks, hashPool)
        return Task {
            try await pool.runIfActive {
                let digests = ParallelHasher.hash(paths: paths, threads: threads, followSymlinks: false,
                                                  before: hooks.beforeHash, after: hooks.afterHash)
                return zip(paths, digests).map { path, digest in
                    if case .success = digest { return (digest, FileStat.of(path)) }
                    return (digest, nil)
                }
            }
        }
    }

    enum HashOutcome {
        case hashed(sha256: String)
        /// The file changed while it was read: the watcher takes its new version.
        case changed
        case notScanned(NotScannedReason, String)
    }

    /// What one hashing result means for the file version that was read.
    func classify(identity: FileIdentity, _ result: HashResult) -> HashOutcome {
        switch result.digest {
        case .success(let digest):
            // The stat after hashing: a file that changed while hashed goes back to discovery.
            guard let now = result.after else { return .notScanned(.vanished, "vanished while being hashed") }
            if now.identity != identity || digest.size != identity.size { return .changed }
            return .hashed(sha256: digest.sha256)
        case .failure(let error):
            if error.errno == ENOENT { return .notScanned(.vanished, "vanished before it was hashed") }
            if error.errno == ELOOP { return .notScanned(.unreadable, "symbolic link: not followed") }
            return .notScanned(.unreadable, error.description)
        }
    }

    /// Records one hashed batch of newly taken files.
    private func record(_ batch: ArraySlice<InboxEntry>, _ digests: [HashResult]) async throws {
        var hashed: [HashedFile] = []
        hashed.reserveCapacity(batch.count)
        var unscannable: [UnscannableFile] = []
        for (entry, result) in zip(batch, digests) {
            switch classify(identity: entry.stat.identity, result) {
            case .hashed(let sha256):
                hashed.append((entry.path, entry.inbox, entry.stat.identity, sha256))
            case .changed:
                forgetVersion(entry.path)
            case .notScanned(let reason, let error):
                unscannable.append((entry.path, entry.inbox, entry.stat.identity, reason, error))
            }
        }
        try await store.recordHashed(hashed)
        try await store.recordNotScanned(unscannable)
        CrashPoint.reach("hashed")
    }

    /// Files recorded `discovered` and not hashed (a database written by an earlier version):
    /// hashed and moved on.
    func hashDiscovered() async throws {
        let files = try await store.files(in: [.discovered], limit: 5000)
        guard !files.isEmpty else { return }
        let digests = try await startHashing(files.map(\.path)).value
        var hashed: [(id: Int64, sha256: String, size: Int64)] = []
        for (file, result) in zip(files, digests) {
            switch classify(identity: file.identity, result) {
            case .hashed(let sha256):
                hashed.append((file.id, sha256, file.identity.size))
            case .changed:
                try await store.supersede(file.id, detail: "changed while being hashed")
                forgetVersion(file.path)
            case .notScanned(let reason, let error):
                try await store.decide(file.id, outcome: .notScanned, reason: reason, error: error)
            }
        }
        try await store.markHashed(hashed)
        CrashPoint.reach("hashed")
    }

    // MARK: uploader

    func uploadHashed(once: Bool) async throws {
        let files = try await store.files(in: [.hashed], limit: 5000)
        guard !files.isEmpty else { return }
        let ttl = config.verdictCacheTTLHours * 3600
        var toUpload: [String: FileRecord] = [:]
        for file in files {
            guard let sha = file.sha256, let sample = try await store.sample(sha) else { continue }
            if let verdict = sample.verdict, let at = sample.scannedAt, Self.now() - at < ttl {
                let (outcome, reason) = VerdictMapping.outcome(verdict: verdict, error: sample.error)
                try await store.decide(file.id, outcome: outcome, reason: reason, verdict: verdict, error: sample.error,
                                       scanID: sample.scanID, scannedAt: at, cached: true)
                continue
            }
            if sample.uploadedAt != nil && sample.deletedAt == nil {
                try await store.markUploaded(sha)  // the same content is already in the cloud
                continue
            }
            if toUpload[sha] == nil { toUpload[sha] = file }
        }
        guard !toUpload.isEmpty, deferredReason == nil else { return }
        // Uploads go in chunks of one volume: a full volume is submitted (and polled) while
        // the next chunk uploads, so volumes are pipelined behind the uploads.
        let pending = Array(toUpload)
        let chunk = max(1, config.volumeMaxSamples)
        for start in stride(from: 0, to: pending.count, by: chunk) {
            guard deferredReason == nil else { return }
            try await upload(Array(pending[start..<min(start + chunk, pending.count)]))
            if start + chunk < pending.count {
                try await submitVolumes(once: once)
                try await pollVolumes(force: false)
            }
        }
    }

    private func upload(_ batch: [(key: String, value: FileRecord)]) async throws {
        let client = self.client
        let outcomes = await boundedMap(batch, width: config.uploadConcurrency) { sha, file -> (String, FileRecord, Result<Void, FalconError>) in
            do {
                _ = try await client.uploadSample(path: file.path, fileName: (file.path as NSString).lastPathComponent, expectedSHA256: sha)
                return (sha, file, .success(()))
            } catch let error as FalconError {
                return (sha, file, .failure(error))
            } catch {
                return (sha, file, .failure(FalconError(kind: .transport, message: "\(error)")))
            }
        }
        for (sha, file, result) in outcomes {
            switch result {
            case .success:
                apiFailureStreak = 0
                try await store.markUploaded(sha)
                CrashPoint.reach("uploaded")
            case .failure(let error):
                try await handleUploadFailure(error, sha: sha, file: file)
            }
        }
    }

    private func handleUploadFailure(_ error: FalconError, sha: String, file: FileRecord) async throws {
        logger.warning("upload failed", metadata: ["file.path": "\(file.path)", "error": "\(error)"])
        if error.kind == .rateLimited {
            try await noteCooldown(error)
            return
        }
        if error.kind == .localFile {
            guard let now = FileStat.of(file.path) else {
                try await store.decide(file.id, outcome: .notScanned, reason: .vanished, error: "vanished before upload")
                return
            }
            if now.identity != file.identity {
                try await store.supersede(file.id, detail: "changed before upload")
                forgetVersion(file.path)
                return
            }
            try await store.decide(file.id, outcome: .notScanned, reason: .unreadable, error: error.message)
            return
        }
        if error.kind == .configuration || error.kind == .authentication { throw error }
        apiFailureStreak += 1
        let failures = (uploadFailures[sha] ?? 0) + 1
        uploadFailures[sha] = failures
        if failures >= config.scanMaxAttempts {
            for f in try await store.files(in: [.hashed]) where f.sha256 == sha {
                try await store.decide(f.id, outcome: .notScanned, reason: .scanFailed, error: "upload failed \(failures) times: \(error)")
            }
        }
    }

    private func noteCooldown(_ error: FalconError) async throws {
        deferredReason = "rate limited by the API until \(error.retryAfter.map { Date(timeIntervalSince1970: $0).description } ?? "later")"
        if let until = error.retryAfter { try await store.setValue("rate_limit_cooldown_until", String(until)) }
    }

    // MARK: volume submitter

    func submitVolumes(once: Bool) async throws {
        guard deferredReason == nil else { return }
        try await reconcileSubmittingVolumes()
        while true {
            let waiting = try await store.samplesAwaitingVolume(limit: config.volumeMaxSamples)
            guard !waiting.isEmpty else { return }
            let counts = try await store.stateCounts()
            let upstream = (counts["discovered"] ?? 0) + (counts["hashed"] ?? 0) + settling.count
            let oldest = try await store.oldestAwaitingSince() ?? Self.now()
            let full = waiting.count >= config.volumeMaxSamples
            let waitedEnough = Self.now() - oldest >= config.volumeMaxWaitSeconds
            guard full || waitedEnough || (once && upstream == 0) else { return }

            // Quota: the last meta.quota seen, refreshed when it looks short (reference §5.6).
            var batch = waiting
            let reading = try await currentQuota()
            if case .unavailable = reading { return }
            if case .known(let quota) = reading {
                if quota.remaining <= 0 {
                    deferredReason = "Quick Scan quota used up (\(quota.used) of \(quota.total))"
                    logger.warning("quota used up: submissions stop", metadata: ["quota.used": "\(quota.used)", "quota.total": "\(quota.total)"])
                    return
                }
                batch = Array(batch.prefix(quota.remaining))
            }
            try await submit(batch)
            if deferredReason != nil { return }
        }
    }

    /// The quota now; nil when it could not be read (rate limited or an API failure): the
    /// caller skips submitting this round.
    private func currentQuota() async throws -> QuotaReading {
        let result: Result<QuickScanQuota?, FalconError>
        do {
            result = .success(try await client.quota().quota)
        } catch {
            result = .failure(error)
        }
        switch result {
        case .failure(let error):
            if error.kind == .configuration || error.kind == .authentication { throw error }
            if error.kind == .rateLimited { try await noteCooldown(error) } else { apiFailureStreak += 1 }
            logger.warning("quota check failed; submitting later", metadata: ["error": "\(error)"])
            return .unavailable
        case .success(let quota):
            guard let quota else { return .notReported }
            try await store.setValue("quota", "\(quota.total) \(quota.used) \(quota.inProgress) \(Self.now())")
            return .known(quota)
        }
    }

    enum QuotaReading {
        case known(QuickScanQuota)
        /// The reply carried no `meta.quota`: submit without a limit.
        case notReported
        case unavailable
    }

    private func submit(_ samples: [String]) async throws {
        let volume = try await store.createVolumeIntent(samples: samples)
        CrashPoint.reach("volume-intent")
        do {
            let (scanID, response) = try await client.scanSamples(samples)
            CrashPoint.reach("volume-sent")
            try await store.markVolumeSubmitted(volume, scanID: scanID)
            if let q = response.meta.quota { try await store.setValue("quota", "\(q.total) \(q.used) \(q.inProgress) \(Self.now())") }
            logger.info("volume submitted", metadata: ["volume.id": "\(volume)", "scan.id": "\(scanID)", "volume.samples": "\(samples.count)"])
        } catch let error as FalconError {
            if error.mayHaveTakenEffect {
                // Left in `submitting`: reconciliation adopts the scan if the API created it.
                logger.warning("ScanSamples answer lost; reconciling before any resubmission", metadata: ["volume.id": "\(volume)", "error": "\(error)"])
                return
            }
            if error.kind == .rateLimited { try await noteCooldown(error) } else { logger.error("ScanSamples failed", metadata: ["error": "\(error)"]) }
            if error.kind == .configuration || error.kind == .authentication { throw error }
            if error.status == 400 {
                // Most likely a sample the API no longer holds (deleted, expired): upload the
                // volume's samples again; attempts are bounded by scan.max_attempts.
                try await store.failVolume(volume, from: .submitting, reason: "ScanSamples refused: \(error.message)", maxAttempts: config.scanMaxAttempts)
                try await store.forgetUploads(samples)
                return
            }
            if error.status == 403 || error.status == 429 {
                deferredReason = deferredReason ?? "ScanSamples refused: \(error)"
            }
            try await store.failVolume(volume, from: .submitting, reason: "ScanSamples not accepted: \(error.message)", maxAttempts: config.scanMaxAttempts + 1)
        }
    }

    /// Volumes left in `submitting`: adopt the scan the API created for exactly our sample set,
    /// or resubmit when none exists; wait while candidate scans cannot be read yet.
    func reconcileSubmittingVolumes() async throws {
        for volume in try await store.volumes(in: .submitting) {
            do {
                try await reconcile(volume)
            } catch let error as FalconError where error.kind != .configuration && error.kind != .authentication {
                apiFailureStreak += 1
                if error.kind == .rateLimited { try await noteCooldown(error) }
                logger.warning("volume reconciliation failed; retried on the next pass", metadata: ["volume.id": "\(volume.id)", "error": "\(error)"])
            }
        }
    }

    private func reconcile(_ volume: VolumeRecord) async throws {
        let members = Set(try await store.members(ofVolume: volume.id))
        let since = Date(timeIntervalSince1970: volume.intentAt - 300)
        let filter = "created_timestamp:>='\(ISO8601DateFormatter().string(from: since))'"
        let known = try await store.knownScanIDs()
        var candidates: [String] = []
        var offset: String?
        repeat {
            let page = try await client.querySubmissions(filter: filter, offset: offset, limit: 5000)
            candidates += page.resources.filter { !known.contains($0) }
            let total = page.meta.pagination?.total ?? 0
            let next = (Int(offset ?? "0") ?? 0) + page.resources.count
            offset = next < total && !page.resources.isEmpty ? String(next) : nil
        } while offset != nil
        var unreadable = false
        var adopted: String?
        for chunk in stride(from: 0, to: candidates.count, by: 100).map({ Array(candidates[$0..<min($0 + 100, candidates.count)]) }) {
            let scans = try await client.getScans(ids: chunk)
            for id in chunk {
                guard let scan = scans.resources.first(where: { $0.id == id }), !scan.samples.isEmpty else {
                    unreadable = true
                    continue
                }
                if Set(scan.samples.map(\.sha256)) == members { adopted = id }
            }
            if adopted != nil { break }
        }
        if let adopted {
            try await store.markVolumeSubmitted(volume.id, scanID: adopted, detail: "adopted \(adopted) after an interrupted submission")
            logger.info("volume adopted after interruption", metadata: ["volume.id": "\(volume.id)", "scan.id": "\(adopted)"])
        } else if unreadable && Self.now() - volume.intentAt < config.scanTimeoutSeconds {
            logger.info("volume reconciliation waits for scans in progress", metadata: ["volume.id": "\(volume.id)"])
        } else {
            do {
                let (scanID, _) = try await client.scanSamples(members.sorted())
                try await store.markVolumeSubmitted(volume.id, scanID: scanID, detail: "resubmitted: no scan matched the recorded intent")
            } catch let error as FalconError where error.mayHaveTakenEffect {
                logger.warning("resubmission answer lost; reconciling again", metadata: ["volume.id": "\(volume.id)"])
            }
        }
    }

    // MARK: poller

    func pollVolumes(force: Bool) async throws {
        let volumes = try await store.volumes(in: .submitted)
        guard !volumes.isEmpty else { return }
        guard force || Self.now() - lastScanPoll >= config.scanPollIntervalSeconds else { return }
        lastScanPoll = Self.now()
        for chunk in stride(from: 0, to: volumes.count, by: 100).map({ Array(volumes[$0..<min($0 + 100, volumes.count)]) }) {
            let response: FalconResponse<ScanResult>
            do {
                response = try await client.getScans(ids: chunk.compactMap(\.scanID))
            } catch {
                if error.kind == .rateLimited { try await noteCooldown(error) }
                if error.kind == .configuration || error.kind == .authentication { throw error }
                apiFailureStreak += 1
                logger.warning("GetScans failed; polling again later", metadata: ["error": "\(error)"])
                return
            }
            apiFailureStreak = 0
            if response.status == 404 {
                // The API knows none (or not all) of these ids: ask one by one, and fail a
                // volume whose id alone is unknown (its samples are queued again).
                if chunk.count == 1, let volume = chunk.first {
                    try await store.failVolume(volume.id, from: .submitted, reason: "scan \(volume.scanID ?? "-") is unknown to the API",
                                               maxAttempts: config.scanMaxAttempts)
                } else {
                    for volume in chunk { try await pollSingle(volume) }
                }
                continue
            }
            for volume in chunk {
                guard let scanID = volume.scanID else { continue }
                if let scan = response.resources.first(where: { $0.id == scanID }), scan.isDone {
                    try await complete(volume, with: scan)
                } else if Self.now() - (volume.submittedAt ?? volume.intentAt) > config.scanTimeoutSeconds {
                    try await store.failVolume(volume.id, from: .submitted, reason: "scan \(scanID) not done after \(Int(config.scanTimeoutSeconds)) s",
                                               maxAttempts: config.scanMaxAttempts)
                }
            }
        }
    }

    /// A finished scan: its verdicts go to the samples and the files waiting on them.
    private func complete(_ volume: VolumeRecord, with scan: ScanResult) async throws {
        var results: [String: (verdict: String?, error: String?)] = [:]
        for s in scan.samples { results[s.sha256] = (s.verdict, s.error) }
        try await store.completeVolume(volume.id, scanID: scan.id, results: results,
                                       maxAttempts: config.scanMaxAttempts, deleteSamples: config.deleteSamplesAfterScan)
        logger.info("volume done", metadata: ["scan.id": "\(scan.id)"])
    }

    private func pollSingle(_ volume: VolumeRecord) async throws {
        guard let scanID = volume.scanID else { return }
        let response: FalconResponse<ScanResult>
        do {
            response = try await client.getScans(ids: [scanID])
        } catch {
            return
        }
        if response.status == 404 {
            try await store.failVolume(volume.id, from: .submitted, reason: "scan \(scanID) is unknown to the API", maxAttempts: config.scanMaxAttempts)
        } else if let scan = response.resources.first(where: { $0.id == scanID }), scan.isDone {
            try await complete(volume, with: scan)
        }
    }

    // MARK: disposer

    func dispose() async throws {
        for file in try await store.files(in: [.disposing]) { try await resumeDisposal(file) }
        for file in try await store.files(in: [.decided]) {
            guard let outcome = file.outcome else { continue }
            hooks.beforeDisposal?(file.path)
            let rule = config.disposition[outcome] ?? DispositionRule(action: .leave)
            guard let now = FileStat.of(file.path) else {
                try await store.beginDisposal(file.id, destination: nil)
                try await store.finishDisposal(file.id, destination: nil)
                continue
            }
            if now.identity != file.identity {
                // Never file a changed file under the old verdict: its new version is rescanned.
                try await store.supersede(file.id, detail: "changed before disposal")
                forgetVersion(file.path)
                continue
            }
            switch rule.action {
            case .leave:
                try await store.beginDisposal(file.id, destination: nil)
                try await store.finishDisposal(file.id, destination: nil)
            case .delete:
                try await store.beginDisposal(file.id, destination: "(deleted)")
                unlink(file.path)
                try await store.finishDisposal(file.id, destination: "(deleted)")
            case .move:
                let folder = rule.to!
                let relative = file.path.hasPrefix(file.inbox + "/") ? String(file.path.dropFirst(file.inbox.count + 1)) : (file.path as NSString).lastPathComponent
                let restricted = outcome == .threat
                do {
                    try FileMover.makeFolders(folder, mode: restricted ? 0o700 : 0o755)
                    if restricted { chmod(folder, 0o700) }
                    let destination = FileMover.uniqueDestination(folder: folder, relative: relative)
                    try FileMover.makeFolders((destination as NSString).deletingLastPathComponent, mode: restricted ? 0o700 : 0o755)
                    try await store.beginDisposal(file.id, destination: destination)
                    CrashPoint.reach("disposal-begun")
                    try await moveChecked(file, to: destination, restricted: restricted)
                } catch let error as ConfigurationError {
                    disposalFailures[file.id] = error.message
                    logger.error("cannot file the file; it stays decided and is retried", metadata: ["file.path": "\(file.path)", "error": "\(error)"])
                }
            }
            // Moved or deleted: the path is free for a new file. Left in place: still known.
            if rule.action != .leave { known[file.path] = nil }
        }
    }

    private func moveChecked(_ file: FileRecord, to destination: String, restricted: Bool) async throws {
        guard let now = FileStat.of(file.path), now.identity == file.identity else {
            try await store.abandonDisposal(file.id, detail: "changed just before the move")
            return
        }
        try FileMover.move(file.path, to: destination, fileMode: restricted ? 0o600 : nil)
        try await store.finishDisposal(file.id, destination: destination)
        logger.info("file disposed", metadata: ["file.path": "\(file.path)", "file.destination": "\(destination)"])
    }

    /// A disposal interrupted by a crash: finish it, or give it up when the file changed.
    private func resumeDisposal(_ file: FileRecord) async throws {
        let source = FileStat.of(file.path)
        guard let destination = file.disposedTo, destination != "(deleted)" else {
            if source != nil, file.disposedTo == "(deleted)" { unlink(file.path) }
            try await store.finishDisposal(file.id, destination: file.disposedTo)
            return
        }
        let target = FileStat.of(destination)
        switch (source, target) {
        case (nil, _?):
            try await store.finishDisposal(file.id, destination: destination)
        case (let s?, let t?) where s.identity.inode == t.identity.inode && s.device == t.device:
            unlink(file.path)  // crashed between link and unlink
            try await store.finishDisposal(file.id, destination: destination)
        case (let s?, _) where s.identity == file.identity:
            let free = target == nil ? destination : FileMover.uniqueDestination(folder: (destination as NSString).deletingLastPathComponent,
                                                                                  relative: (destination as NSString).lastPathComponent)
            try FileMover.move(file.path, to: free, fileMode: file.outcome == .threat ? 0o600 : nil)
            try await store.finishDisposal(file.id, destination: free)
        case (_?, _):
            try await store.abandonDisposal(file.id, detail: "changed before disposal finished")
            forgetVersion(file.path)
        case (nil, nil):
            try await store.finishDisposal(file.id, destination: nil)
        }
    }

    // MARK: cloud cleanup

    func deleteScannedSamples() async throws {
        guard config.deleteSamplesAfterScan else { return }
        for sha in try await store.samplesPendingDeletion() {
            do {
                try await client.deleteSample(sha256: sha)
                try await store.markSampleDeleted(sha)
            } catch {
                logger.warning("sample delete failed; retried next pass", metadata: ["sample.sha256": "\(sha)", "error": "\(error)"])
                return
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

/// Points where tests change files under the pipeline (vanish, grow, truncate).
public struct PipelineHooks: Sendable {
    public var beforeHash: (@Sendable (String) -> Void)?
    public var afterHash: (@Sendable (String) -> Void)?
    public var beforeDisposal: (@Sendable (String) -> Void)?
    public init() {}
}
