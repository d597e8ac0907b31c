import AsyncHTTPClient
import FalconAPI
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The driver: runs the stages in order on every pass — watch, hash, upload, submit,
/// reconcile, poll, dispose, clean the cloud — with SQLite as the queue between them. State
/// lives in the store (and, for files not recorded yet, in the watcher), so a restart resumes
/// where the last committed transition left off. Every error goes through the
/// `FailurePolicy`: one file's fault never stops the others; only a fatal one (the database
/// unusable, credentials refused) ends the run, as a `WorkerFailure`.
public final class ScanPipeline: Sendable {
    public let context: StageContext
    let watcher: DirectoryWatcher
    let hasher: InboxHasher
    let uploader: SampleUploader
    /// The scan backend (`falcon.api`): volumes on Quick Scan, one scan per file on QuickScan Pro.
    let submitter: any ScanStarter
    let poller: any ScanWatcher
    let disposer: FileDisposer
    let cleaner: CloudCleaner
    let custodian: SpoolCustodian?
    let notifier: Notifier
    let once: Bool
    /// When a stage last began or ended (the systemd watchdog pings only while this is fresh).
    public let heartbeat = Heartbeat()
    /// One read connection for the gauges, opened on first use (opening runs a quick_check).
    let gaugeSource = GaugeSource()

    /// - Parameters:
    ///   - once: `run --once`: a file that fails is not retried in the same run.
    public init(config: WorkerConfiguration, store: WorkerStore, client: any FalconClient, logger: Logger,
                fileSystem: (any FileSystem)? = nil, clock: any FalconClock = SystemFalconClock(),
                hooks: PipelineHooks = PipelineHooks(), once: Bool = true, metrics: WorkerMetrics = WorkerMetrics(),
                httpClient: HTTPClient = .shared) {
        let config = config.normalized()
        let policy = FailurePolicy(store: store, rateLimit: client.rateLimit, clock: clock, logger: logger, once: once)
        // By default every path below an inbox, a destination or the spool is resolved through
        // descriptors, never by name (see PosixFileSystem).
        let fileSystem = fileSystem ?? PosixFileSystem(roots: config.inboxes.map(\.path)
            + Outcome.allCases.compactMap { config.disposition[$0]?.to } + [config.spoolFolder])
        context = StageContext(config: config, store: store, client: client, fs: fileSystem, policy: policy, clock: clock,
                               logger: logger, hooks: hooks, metrics: metrics)
        let custodian = config.custodyEnabled ? SpoolCustodian(context: context) : nil
        hasher = InboxHasher(threads: config.hashThreads, hooks: hooks, spool: custodian.map { _ in config.spoolFolder }, byLink: config.custodyByLink)
        watcher = DirectoryWatcher(context: context, hasher: hasher, custodian: custodian)
        self.custodian = custodian
        uploader = SampleUploader(context: context, watcher: watcher)
        switch config.api {
        case .quickscan:
            let poller = ScanPoller(context: context)
            self.poller = poller
            submitter = VolumeSubmitter(context: context, reconciler: VolumeReconciler(context: context), watcher: watcher, poller: poller)
        case .quickscanpro:
            let poller = ProScanPoller(context: context)
            self.poller = poller
            submitter = ProScanLauncher(context: context, poller: poller)
        }
        disposer = FileDisposer(context: context, watcher: watcher)
        cleaner = CloudCleaner(context: context)
        notifier = Notifier(context: context, http: httpClient)
        self.once = once
    }

    deinit { hasher.shutdown() }

    var store: WorkerStore { context.store }
    var policy: FailurePolicy { context.policy }

    /// Checks the paths, finishes interrupted disposals, loads the watcher index, restores
    /// the rate-limit cooldown and reconciles volumes a crash left `submitting`.
    public func prepare() async throws {
        try await guarded {
            try context.config.checkPaths(fs: context.fs)
            if let custodian {
                // The spool first: a crash may have left files taken by link but not recorded
                // (given back to the inbox), copies nobody recorded, and originals whose
                // removal was not recorded.
                try custodian.prepareSpool()
                let unsettled = try await custodian.settleJournals()
                _ = try await custodian.removeOriginals()
                try await custodian.removeOrphans(keeping: unsettled)
            }
            await store.configureNotifications(outcomes: context.config.notify.outcomes, channels: context.config.notify.channels)
            await store.useMetrics(context.metrics)
            // Interrupted disposals first: a crash between link and unlink leaves the source
            // with a new ctime, which the watcher would otherwise take for a new version.
            try await disposer.resumeInterrupted()
            // Scans in flight on another API refuse the start; files waiting on an upload to
            // the other API are uploaded to this one.
            try await store.useAPI(context.config.api)
            try await watcher.load()
            if let until = try await store.value("rate_limit_cooldown_until").flatMap(Double.init), until > context.now() {
                await context.client.rateLimit.coolDown(until: until)
            }
            try await submitter.reconcile()
        }
    }

    /// Runs `body`; an error that escapes a stage is either fatal (rethrown as a
    /// `WorkerFailure`) or logged and left for the next pass.
    private func guarded(_ body: () async throws -> Void) async throws {
        heartbeat.beat()
        defer { heartbeat.beat() }
        do {
            try await body()
        } catch is CancellationError {
            throw CancellationError()
        } catch let failure as WorkerFailure {
            throw failure
        } catch {
            try await policy.stageFailed(error)
        }
    }

    /// Carries every file present now to a final outcome; returns the summary and exit code.
    public func runOnce(deadline: Double? = nil) async throws -> RunSummary {
        try await prepare()
        var first = true
        var deferral: String?
        while true {
            try Task.checkCancellation()
            try await step(takeNew: true, firstPoll: first, once: true)
            first = false
            let pending = try await store.pendingCount()
            let unsettled = await watcher.unsettledCount
            let waiting = await policy.filesWaiting
            if pending == 0 && unsettled == 0 { break }
            if unsettled == 0, !waiting.isEmpty, pending == waiting.count {
                deferral = "cannot file \(waiting.count) file(s): \(waiting.values.sorted().first ?? "")"
                break
            }
            if let deadline, context.now() > deadline {
                deferral = "deadline reached"
                break
            }
            if await policy.deferral != nil, try await !hasWorkInFlight() { break }
            if await policy.streak >= FailurePolicy.streakLimit { break }
            let pause = try await nextPause(min(context.config.scanPollIntervalSeconds, max(0.05, context.config.settleSeconds / 2), 1))
            try await Task.sleep(for: .milliseconds(Int(pause * 1000)))
        }
        // Notices of this run (and of killed runs): delivered now if the receivers answer in
        // time; what is left waits in the outbox for the next run.
        await notifier.drain(timeout: context.config.notify.timeoutSeconds * 2 + 5)
        await refreshGauges()
        return try await summary(deferral: await policy.deferral ?? deferral)
    }

    /// Sets the gauges from the store (files per state, volumes in flight, oldest pending,
    /// quota, cooldown, undelivered notifications). Read on a separate connection.
    public func refreshGauges() async {
        do {
            try gaugeSource.read(path: store.path) { reader in
                let report = try reader.status(outcomes: false)
                context.metrics.update(from: report, undelivered: report.undeliveredCount)
            }
        } catch {
            context.logger.debug("cannot read the figures for the gauges", metadata: ["error": "\(error)"])
        }
    }

    /// Watch mode: polls until cancelled (a graceful shutdown); returns only then. A fatal
    /// error is thrown, so a supervisor restarts the worker.
    public func runForever(onReady: @Sendable () -> Void = {}) async throws {
        try await prepare()
        onReady()
        var passes = 0
        var gaugesAt = 0.0
        while !Task.isCancelled {
            let started = context.now()
            do {
                try await step(takeNew: true, firstPoll: false, once: false)
            } catch is CancellationError {
                return
            }
            let passSeconds = context.now() - started
            await policy.clearDeferral()  // watch mode retries quota and rate limits on the next poll
            passes += 1
            if passes % 100 == 0 { await policy.prune(keeping: Set(try await store.pendingIDs())) }
            if context.now() - gaugesAt >= 15 {
                gaugesAt = context.now()
                await refreshGauges()
            }
            // An idle pass waits in proportion to its own cost (a small inbox is polled about
            // five times a second), and no longer than until the next thing falls due.
            var pause = Decisions.idlePause(passSeconds: passSeconds, pollInterval: context.config.pollIntervalSeconds)
            if try await hasWorkInFlight() { pause = min(pause, context.config.scanPollIntervalSeconds) }
            if await notifier.isEnabled, let due = try await store.nextNotificationDue(now: context.now()) { pause = min(pause, max(0.05, due)) }
            pause = try await nextPause(pause)
            // Cancellation ends the sleep early; the loop condition then ends watch mode.
            try? await context.clock.sleep(for: .milliseconds(Int(pause * 1000)))
        }
    }

    /// `pause`, shortened to when the next settling file becomes stable, the next GetScans is
    /// due, or the oldest sample waiting for a volume has lingered `volume.max_wait_seconds`.
    func nextPause(_ pause: Double) async throws -> Double {
        let now = context.now()
        var pause = pause
        if let due = await watcher.nextSettleDue { pause = min(pause, due - now) }
        if try await !store.volumes(in: .submitted).isEmpty { pause = min(pause, await poller.nextPoll - now) }
        // (A volume held back by a deferral is not due: the pause stays.)
        if let oldest = try await store.oldestAwaitingSince(), oldest + context.config.volumeMaxWaitSeconds > now {
            pause = min(pause, oldest + context.config.volumeMaxWaitSeconds - now)
        }
        return max(0.01, pause)
    }

    func hasWorkInFlight() async throws -> Bool {
        let counts = try await store.stateCounts()
        let volumes = try await store.volumes(in: .submitted).count + (try await store.volumes(in: .submitting).count)
        let waiting = await policy.filesWaiting.count
        let active = (counts["decided"] ?? 0) + (counts["disposing"] ?? 0) - waiting
        return volumes > 0 || active > 0 || (counts["discovered"] ?? 0) > 0
    }

    /// One pass over every stage.
    public func step(takeNew: Bool, firstPoll: Bool, once: Bool) async throws {
        try await guarded {
            if takeNew { try await watcher.poll(firstPoll: firstPoll, once: once) }
            try await watcher.hashDiscovered()
        }
        try await guarded {
            try await uploader.run {
                try await submitter.run(once: once)
                try await poller.run()
                try await cleaner.run()  // deletes as soon as a volume is done, between upload chunks
            }
        }
        try await guarded { try await submitter.run(once: once) }
        try await guarded { try await poller.run() }
        try await guarded { try await cleaner.run() }
        try await guarded { try await disposer.run() }
        await notifier.kick()
    }

    /// The run's outcomes (this run's and those of killed runs not yet reported), files left
    /// pending (recorded, or still changing in the inbox) and the exit code.
    public func summary(deferral: String? = nil) async throws -> RunSummary {
        let outcomes = try await store.outcomesThisRun()
        let stillChanging = await watcher.stillChanging.count
        let pending = try await store.pendingCount() + stillChanging
        var reason = deferral
        if reason == nil && stillChanging > 0 {
            reason = "\(stillChanging) file(s) still changing after max_settle_seconds \(context.config.maxSettleSeconds.clean)"
        }
        return RunSummary(outcomes: outcomes, pending: pending, deferredReason: reason)
    }

    // MARK: benchmarks

    /// Files hashed per batch; one batch is hashed while the one before it is recorded.
    public static var ingestBatch: Int { DirectoryWatcher.ingestBatch }

    /// Benchmarks: takes and hashes every file in the inboxes now, without any API call.
    /// Returns the number of file versions recorded.
    public func ingestOnly() async throws -> Int {
        try custodian?.prepareSpool()
        try await watcher.load()
        try await watcher.poll(firstPoll: true, once: true)
        var recorded = 0
        while try await !store.files(in: [.discovered], limit: 1).isEmpty {
            try await watcher.hashDiscovered()
        }
        for (state, count) in try await store.stateCounts() where state != FileState.superseded.rawValue { recorded += count }
        return recorded
    }

    /// Benchmarks: one watcher poll; returns the number of entries seen.
    public func pollOnce() async throws -> Int {
        try await watcher.poll(firstPoll: false, once: false)
    }
}

/// The time of the driver's last sign of life (a stage began or ended).
public final class Heartbeat: Sendable {
    private let last = NIOLockedValueBox(ContinuousClock.now)

    public func beat() { last.withLockedValue { $0 = ContinuousClock.now } }

    /// Time since the last beat.
    public var age: Duration { ContinuousClock.now - last.withLockedValue { $0 } }
}

/// The read connection the gauges are read through, one caller at a time.
final class GaugeSource: @unchecked Sendable {
    private let lock = NSLock()
    private var reader: ResultsReader?

    func read(path: String, _ body: (ResultsReader) throws -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        if reader == nil { reader = try ResultsReader(path: path) }
        try body(reader!)
        // Read every 15 s and at each scrape: its page cache is not worth keeping between reads
        // (up to 2 MB, which the watcher would otherwise hold for good).
        try reader!.db.execute("PRAGMA shrink_memory")
    }
}
