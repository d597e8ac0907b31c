// quickscan-bench: drives the worker's ingest and idle-poll paths without any API call, for
// scripts/bench. Subcommands are parsed by hand:
//
//   quickscan-bench ingest INBOX DB      discover, settle (0 s), hash and record every file
//   quickscan-bench idle-poll INBOX DB   one watcher poll over an already ingested inbox
//   quickscan-bench ingest-custody INBOX DB
//                                        the same as ingest with custody: every file taken
//                                        into the spool (linked under a lease, or copied while
//                                        hashed), synced, recorded, and gone from INBOX
//
// The last stdout line of each is one JSON object for the harness.

import FalconAPI
import Foundation
import Logging
import QuickScanWorker

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("quickscan-bench: \(message)\n".utf8))
    exit(code)
}

let usage = """
    usage: quickscan-bench ingest INBOX DB
           quickscan-bench idle-poll INBOX DB
           quickscan-bench ingest-custody INBOX DB
    """

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// The worker as `quickscan run` builds it, with a client that is never contacted.
func makePipeline(inbox: String, database: String, custody: Bool = false) throws -> (ScanPipeline, WorkerStore) {
    var config = WorkerConfiguration()
    if custody {
        config.maxFileBytes = 1 << 40  // the big-file row takes one 1 GiB file into custody
        config.scanMaxFileBytesSetting = 1 << 40
        let dir = (absolute(database) as NSString).deletingLastPathComponent
        config.disposition = [.clean: .init(action: .move, to: dir + "/filed-clean"), .threat: .init(action: .move, to: dir + "/filed-threat"),
                              .notScanned: .init(action: .move, to: dir + "/filed-failed")]
    } else {
        config.custody = "off"
    }
    config.inboxes = [InboxConfiguration(path: absolute(inbox))]
    config.settleSeconds = 0
    config.database = absolute(database)
    config.baseURL = "http://127.0.0.1:9"
    let store = try WorkerStore(path: config.database)
    let clientConfig = FalconClientConfiguration(
        credentials: FalconCredentials(clientID: "bench", clientSecret: "bench"), baseURL: "http://127.0.0.1:9")
    let logger = Logger(label: "quickscan-bench")
    let client = try HTTPFalconClient(configuration: clientConfig, logger: logger)
    return (ScanPipeline(config: config, store: store, client: client, logger: logger), store)
}

func json(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

func format(_ value: Double) -> String { String(format: "%.6f", value) }

func ingest(inbox: String, database: String, custody: Bool = false) async throws {
    let (pipeline, _) = try makePipeline(inbox: inbox, database: database, custody: custody)
    let clock = ContinuousClock()
    let started = clock.now
    let files = try await pipeline.ingestOnly()
    let elapsed = seconds(clock.now - started)
    let rate = elapsed > 0 ? Double(files) / elapsed : 0
    print("ingested \(files) files in \(String(format: "%.3f", elapsed)) s (\(String(format: "%.0f", rate)) files/s)")
    print(json([("files", "\(files)"), ("seconds", format(elapsed))]))
}

func idlePoll(inbox: String, database: String) async throws {
    let (pipeline, store) = try makePipeline(inbox: inbox, database: database)
    try await pipeline.prepare()
    let clock = ContinuousClock()
    let writesBefore = await store.totalChanges()
    let started = clock.now
    let entries = try await pipeline.pollOnce()
    let elapsed = seconds(clock.now - started)
    let writes = await store.totalChanges() - writesBefore
    print("polled \(entries) entries in \(String(format: "%.1f", elapsed * 1000)) ms, \(writes) database writes")
    print(json([("entries", "\(entries)"), ("seconds", format(elapsed)), ("writes", "\(writes)")]))
}

LogSetup.bootstrap(level: .warning, format: "text")
// The heap as `quickscan run` sets it up (the ingest measured is the worker's).
HeapMemory.tune()
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count == 3 else { fail(usage, code: 64) }
do {
    switch arguments[0] {
    case "ingest": try await ingest(inbox: arguments[1], database: arguments[2])
    case "idle-poll": try await idlePoll(inbox: arguments[1], database: arguments[2])
    case "ingest-custody": try await ingest(inbox: arguments[1], database: arguments[2], custody: true)
    default: fail(usage, code: 64)
    }
} catch {
    fail("\(error)")
}
