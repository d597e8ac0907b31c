import ArgumentParser
import FalconAPI
import Foundation
import Logging
import QuickScanWorker

/// `quickscan prune`: retention for the results database, and cleanup of samples left in the
/// cloud.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove rows of files disposed long ago; delete samples left in the cloud.",
        discussion: """
            --older-than removes the rows of files disposed (or superseded) longer ago than DURATION, \
            with their events and delivered notifications, volumes finished as long ago, and samples \
            no file refers to once they are older than the verdict cache (verdict_cache_ttl_hours). \
            A file whose notification is not delivered yet stays. Works in short transactions (each \
            well under a second), so a running watcher is never held up; free pages go back to the \
            file system on databases created by this version (older ones: --vacuum once). \
            Quarantined files are deleted only when retention.quarantine_days is set (each one logged).
            --cloud deletes from the cloud every sample an earlier run uploaded and never deleted \
            (credentials as for run).
            Exit codes: 0 success, 1 failure, 3 configuration or credential error.
            """)

    @Option(help: "Prune what finished longer ago than this: 90d, 12h, 1w, 30m…")
    var olderThan: String?

    @Flag(help: "Delete samples left in the cloud by earlier runs (DeleteSampleV3).")
    var cloud = false

    @Flag(help: "Rewrite the database once so later prunes return space to the file system (locks it while it runs).")
    var vacuum = false

    @OptionGroup var databaseOptions: DatabaseOptions

    @Option(name: .customLong("base-url"), help: "API base URL for --cloud (overrides falcon.base_url and FALCON_BASE_URL).")
    var baseURL: String?

    func validate() throws {
        if let olderThan, TimeExpression.duration(olderThan) == nil {
            throw ValidationError("--older-than \(olderThan) is not a duration such as 90d, 12h or 1w")
        }
        if olderThan == nil && !cloud && !vacuum { throw ValidationError("give --older-than DURATION, --cloud or --vacuum") }
    }

    func run() async throws {
        LogSetup.bootstrap(level: .info, format: "text")
        let logger = Logger(label: "quickscan")
        let settings: WorkerConfiguration
        let path: String
        do {
            settings = try databaseOptions.config.map(WorkerConfiguration.load(path:)) ?? WorkerConfiguration()
            path = try databaseOptions.databasePath()
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        guard FileManager.default.fileExists(atPath: path) else {
            printError("no results database at \(path)")
            throw ExitCode(1)
        }
        do {
            let opening = ContinuousClock.now
            let store = try WorkerStore(path: path, quickCheck: false)
            let opened = ContinuousClock.now - opening
            let pruner = RetentionPruner(store: store, config: settings, logger: logger)
            if vacuum {
                try await store.vacuumIntoIncrementalMode()
                print("vacuumed: later prunes return free pages to the file system")
            }
            if let olderThan, let seconds = TimeExpression.duration(olderThan) {
                let report = try await pruner.prune(olderThan: seconds)
                print("pruned: \(report)")
                print("timings: open \(opened.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 2)))), \(report.timings)")
            }
            if cloud {
                let client = try makeClient(settings, logger: logger)
                defer { Task { await client.shutdown() } }
                let deleted = try await pruner.pruneCloud(client: client)
                print("deleted \(deleted) sample(s) from the cloud")
            }
        } catch let error as FalconError where error.kind == .configuration || error.kind == .authentication {
            printError("\(error)")
            throw ExitCode(3)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }

    func makeClient(_ settings: WorkerConfiguration, logger: Logger) throws -> HTTPFalconClient {
        let env = ProcessInfo.processInfo.environment
        var credentials: FalconCredentials
        if let id = settings.clientID, let secret = settings.clientSecret, env["FALCON_CLIENT_ID"] == nil {
            credentials = FalconCredentials(clientID: id, clientSecret: secret)
        } else {
            credentials = try FalconCredentials.fromEnvironment(env)
        }
        if let member = settings.memberCID { credentials.memberCID = member }
        let cloudName = settings.cloud ?? env["FALCON_CLOUD"].flatMap { $0.isEmpty ? nil : $0 }
        guard let cloud = FalconCloud(name: cloudName ?? "us-1") else {
            throw ConfigurationError("cloud \(cloudName ?? "") is not one of us-1, us-2, eu-1, us-gov-1, us-gov-2, auto")
        }
        let base = baseURL ?? settings.baseURL ?? env["FALCON_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        var configuration = FalconClientConfiguration(credentials: credentials, cloud: cloud, baseURL: base, userAgent: settings.userAgent,
                                                      requestTimeout: settings.timeoutSeconds)
        configuration.verifyTLSCertificates = settings.tlsVerify
        return try HTTPFalconClient(configuration: configuration, logger: logger)
    }
}
