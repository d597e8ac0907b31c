import ArgumentParser
import FalconAPI
import FalconEmulator
import Foundation
import Logging
import Metrics
import Prometheus
import QuickScanWorker
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `quickscan run`: the worker, as a watcher or a cron job.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Scan every file dropped into the inboxes and file it by its verdict.",
        discussion: """
            Without --once, watches the inboxes until SIGINT or SIGTERM (a second signal exits at once).
            With --once, takes every file present now, carries each to a final outcome and exits with these exit codes:
              0  every file reached a verdict, none is a threat
              1  at least one threat (malware, suspicious or an unrecognised verdict)
              2  no threat, but some files ended not scanned
              3  configuration or credential error: nothing was done
              4  deferred: quota, rate limit or deadline left work pending for the next run
              5  another run holds the database lock
              6  internal error: the database is unusable (locked by another writer, corrupt), an I/O error or a bug
            Watch mode exits 0 only when asked to stop (SIGINT, SIGTERM); a fatal error exits 3 or 6, so a
            supervisor restarts it.
            --emulator runs against an in-process Falcon emulator: no credentials needed.
            """)

    @Flag(help: "Take the files present now, finish them, exit with the code above.")
    var once = false

    @Flag(help: "Use an in-process Falcon emulator instead of the real API (no credentials).")
    var emulator = false

    @Option(help: "Config file (JSON; see sample-config.json). Default: ./quickscan.json when it exists.")
    var config: String?

    @Option(help: "An inbox folder (repeatable); added to the config's inboxes.")
    var inbox: [String] = []

    @Option(help: "Results database (overrides the config's database).")
    var database: String?

    @Option(help: "Seconds a file must stay unchanged before it is taken (overrides settle_seconds).")
    var settleSeconds: Double?

    @Option(help: "Give up and exit 4 after this many seconds (run --once).")
    var deadline: Double?

    @Option(help: "Falcon cloud (overrides falcon.cloud and FALCON_CLOUD).")
    var cloud: String?

    @Option(help: "Scanning API: quickscan (volumes, the default) or quickscanpro (one scan per file); overrides falcon.api.")
    var api: String?

    @Option(name: .customLong("base-url"), help: "API base URL (overrides falcon.base_url and FALCON_BASE_URL).")
    var baseURL: String?

    @Flag(help: "Do not verify the API's TLS certificate (lab proxies only; logged as a warning).")
    var insecureSkipTLSVerify = false

    @Option(help: "Log level on stderr (overrides log.level).")
    var logLevel: String?

    @Option(help: "Log format on stderr: text or json, one object per line (overrides log.format).")
    var logFormat: String?

    func run() async throws {
        HeapMemory.tune()
        var settings: WorkerConfiguration
        do {
            settings = try loadSettings()
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LogSetup.bootstrap(level: level, format: settings.logFormat)
        let logger = Logger(label: "quickscan")
        // The process's one metrics bootstrap: the library code is handed this factory.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(WorkerMetrics.prometheusFactory(registry: registry))
        let metrics = WorkerMetrics(factory: MetricsSystem.factory)

        // The database and its lock are keyed by the resolved path of their folder, and neither
        // is opened through a symlink.
        settings.database = Self.resolvedDatabasePath(settings.database)
        let lock: RunLock
        do {
            // A database not created yet is no symlink; SQLite refuses one anyway (NOFOLLOW).
            if let st = try? PosixFileSystem().lstat(settings.database), st.kind == .symlink {
                throw ConfigurationError("database \(settings.database) is a symbolic link; give the real file")
            }
            try FileManager.default.createDirectory(atPath: (settings.database as NSString).deletingLastPathComponent.isEmpty ? "." : (settings.database as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            lock = try RunLock(databasePath: settings.database)
        } catch let held as RunLock.Held {
            printError("\(held)")
            throw ExitCode(5)
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }

        var emulatorInstance: FalconEmulator?
        if emulator {
            var emulatorConfig = EmulatorConfiguration()
            emulatorConfig.scanPollsUntilDone = 1
            let instance = FalconEmulator(configuration: emulatorConfig, logger: Logger(label: "falcon-emulator"))
            try await instance.start()
            emulatorInstance = instance
        }

        let client: HTTPFalconClient
        let store: WorkerStore
        do {
            client = try makeClient(settings, emulatorURL: emulatorInstance?.baseURL, logger: logger, observer: metrics)
            store = try WorkerStore(path: settings.database)
        } catch {
            printError("\(error)")
            await emulatorInstance?.shutdown()
            throw ExitCode(3)
        }

        let pipeline = ScanPipeline(config: settings, store: store, client: client, logger: logger, once: once, metrics: metrics)
        var exitCode: Int32 = 0
        do {
            _ = try await store.beginRun(mode: once ? "once" : "watch")
            if once {
                // On a terminal, a live progress line on stderr; plain log lines otherwise.
                let progress = isatty(2) == 1 && settings.logFormat == "text" ? Task { await showProgress(store) } : nil
                let summary = try await pipeline.runOnce(deadline: deadline.map { Date().timeIntervalSince1970 + $0 })
                progress?.cancel()
                if let progress {
                    // The final counts stay on screen: a short run may end before the first redraw.
                    await progress.value
                    // Display only: without the figures the line is simply not redrawn.
                    let final = (try? await store.progress()).map { "\($0)\n" } ?? ""
                    FileHandle.standardError.write(Data("\r\u{1B}[K\(final)".utf8))
                }
                exitCode = summary.exitCode
                FileHandle.standardError.write(Data("quickscan: \(summary)\n".utf8))
                if let textfile = settings.metrics.textfile {
                    do {
                        try MetricsTextfile.write(registry, to: textfile)
                    } catch {
                        logger.error("cannot write the metrics textfile", metadata: ["error": "\(error)"])
                    }
                }
            } else {
                try await watchUntilSignalled(pipeline, settings: settings, store: store, registry: registry, logger: logger)
            }
        } catch let failure as WorkerFailure {
            printError("\(failure)")
            exitCode = failure.exitCode
        } catch let error as FalconError where error.kind == .configuration || error.kind == .authentication || (error.kind == .transport && error.operation == "oauth2AccessToken") {
            printError("\(error)")
            exitCode = 3
        } catch let error as ConfigurationError {
            printError("\(error)")
            exitCode = 3
        } catch is CancellationError {
            exitCode = 0
        } catch {
            // Anything else is ours: a database error, an I/O error, a bug. Never 0 or 1.
            printError("internal error: \(error)")
            exitCode = 6
        }
        // The run is recorded as having reported last, right before the exit: killed before
        // this, the next run reports its outcomes again (at least once, never lost).
        await client.shutdown()
        await emulatorInstance?.shutdown()
        // Not recorded (database gone bad at the very end): the next run reports this run's
        // outcomes again, at least once, never lost; the exit code below still tells.
        try? await store.finishRun(exitCode: exitCode)
        withExtendedLifetime(lock) {}
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    /// Redraws one progress line on stderr until cancelled.
    func showProgress(_ store: WorkerStore) async {
        while !Task.isCancelled {
            if let progress = try? await store.progress() {  // display only (see above)
                FileHandle.standardError.write(Data("\r\u{1B}[K\(progress)".utf8))
            }
            try? await Task.sleep(for: .milliseconds(250))  // cancelled: the loop ends
        }
    }

    /// Runs the watcher as a service until SIGINT or SIGTERM (graceful shutdown: the current
    /// pass ends between batches, at most 30 s, then it is cancelled). The pipeline returns
    /// only when asked to stop; a fatal error is rethrown. Beside it, in the same group: the heap
    /// trim every second (`HeapTrimService`), the
    /// `/metrics` endpoint (`metrics.listen`), systemd's readiness and watchdog
    /// (`NOTIFY_SOCKET`), and the scheduled prune (`retention.older_than_days`).
    func watchUntilSignalled(_ pipeline: ScanPipeline, settings: WorkerConfiguration, store: WorkerStore,
                             registry: PrometheusCollectorRegistry, logger: Logger) async throws {
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: WatchService(pipeline: pipeline, onReady: { readyContinuation.yield(); readyContinuation.finish() }),
                  successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        services.append(.init(service: HeapTrimService()))
        if let listen = settings.metrics.listen {
            let (host, port) = try MetricsConfiguration.address(listen)
            services.append(.init(service: MetricsServer(registry: registry, host: host, port: port, logger: logger,
                                                         refresh: { await pipeline.refreshGauges() })))
        }
        let systemd = SystemdNotifier()
        if systemd.isEnabled {
            let heartbeat = pipeline.heartbeat
            services.append(.init(service: SystemdWatchdogService(notifier: systemd, interval: SystemdNotifier.watchdogInterval(),
                                                                  ready: ready, logger: logger, heartbeatAge: { heartbeat.age })))
        }
        if let days = settings.retention.olderThanDays {
            services.append(.init(service: RetentionService(pruner: RetentionPruner(store: store, config: settings, logger: logger),
                                                            olderThanDays: days, intervalHours: settings.retention.intervalHours)))
        }
        var configuration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [.sigquit],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(30)
        try await ServiceGroup(configuration: configuration).run()
    }

    /// The database path with its folder resolved (realpath), so every run names it the same.
    static func resolvedDatabasePath(_ path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        guard let real = realpath(folder.isEmpty ? "." : folder, nil) else { return path }
        defer { free(real) }
        return (String(cString: real) as NSString).appendingPathComponent((path as NSString).lastPathComponent)
    }

    func loadSettings() throws -> WorkerConfiguration {
        var path = config
        if path == nil, FileManager.default.fileExists(atPath: "quickscan.json") { path = "quickscan.json" }
        var settings = try path.map(WorkerConfiguration.load(path:)) ?? WorkerConfiguration()
        if path == nil { settings.database = database ?? "quickscan.sqlite" }
        for folder in inbox {
            let absolute = folder.hasPrefix("/") ? folder : FileManager.default.currentDirectoryPath + "/" + folder
            settings.inboxes.append(InboxConfiguration(path: absolute))
        }
        if let database { settings.database = database }
        if let settleSeconds { settings.settleSeconds = settleSeconds }
        if let logLevel {
            guard Logger.Level(rawValue: logLevel) != nil else { throw ConfigurationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical") }
            settings.logLevel = logLevel
        }
        if let logFormat {
            guard ["text", "json"].contains(logFormat) else { throw ConfigurationError("--log-format must be text or json") }
            settings.logFormat = logFormat
        }
        if let cloud { settings.cloud = cloud }
        if let api {
            guard let parsed = ScanAPI(rawValue: api) else { throw ConfigurationError("--api \(api) is not one of quickscan, quickscanpro") }
            settings.api = parsed
        }
        if let baseURL { settings.baseURL = baseURL }
        guard !settings.inboxes.isEmpty else {
            throw ConfigurationError("no inbox: give --inbox PATH or inboxes in the config file")
        }
        return settings
    }

    func makeClient(_ settings: WorkerConfiguration, emulatorURL: String?, logger: Logger,
                    observer: (any FalconCallObserver)? = nil) throws -> HTTPFalconClient {
        let env = ProcessInfo.processInfo.environment
        var credentials: FalconCredentials
        if emulatorURL != nil {
            credentials = FalconCredentials(clientID: "emulator", clientSecret: "emulator")
        } else if let id = settings.clientID, let secret = settings.clientSecret, env["FALCON_CLIENT_ID"] == nil {
            credentials = FalconCredentials(clientID: id, clientSecret: secret)
        } else {
            credentials = try FalconCredentials.fromEnvironment(env)
        }
        if let member = settings.memberCID { credentials.memberCID = member }
        let cloudName = settings.cloud ?? env["FALCON_CLOUD"]
        let cloud = try cloudName.map { name in
            guard let c = FalconCloud(name: name) else { throw ConfigurationError("cloud \(name) is not one of us-1, us-2, eu-1, us-gov-1, us-gov-2, auto") }
            return c
        } ?? .us1
        let base = emulatorURL ?? settings.baseURL ?? env["FALCON_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        var clientConfig = FalconClientConfiguration(credentials: credentials, cloud: cloud, baseURL: base, userAgent: settings.userAgent,
                                                     requestTimeout: settings.timeoutSeconds)
        clientConfig.verifyTLSCertificates = settings.tlsVerify && !insecureSkipTLSVerify
        clientConfig.allowPlainHTTP = settings.allowPlainHTTP
        clientConfig.maxConcurrentRequests = settings.apiConcurrency
        return try HTTPFalconClient(configuration: clientConfig, logger: logger, observer: observer)
    }
}

/// Watch mode as a `Service`: the pipeline runs until a graceful shutdown cancels it.
struct WatchService: Service {
    let pipeline: ScanPipeline
    var onReady: @Sendable () -> Void = {}

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await pipeline.runForever(onReady: onReady)
        }
        if !Task.isShuttingDownGracefully && !Task.isCancelled {
            throw WorkerFailure(.internalError, "the watcher stopped without being asked to")
        }
    }
}
