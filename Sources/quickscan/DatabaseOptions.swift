import ArgumentParser
import Foundation
import QuickScanWorker

/// `--config` / `--database`: where the operator commands (`results`, `status`, `history`) find
/// the results database.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "Config file whose `database` key names the results database (default: ./quickscan.json when it exists).")
    var config: String?

    @Option(help: "Results database (overrides the config's; default: the config's database, else ./quickscan.sqlite).")
    var database: String?

    /// `--database`, else the config's `database` (`--config`, or ./quickscan.json when it exists),
    /// else ./quickscan.sqlite. An explicit `--config` is always read, so a broken one is reported.
    func databasePath() throws -> String {
        var configPath = config
        if configPath == nil, database == nil, FileManager.default.fileExists(atPath: "quickscan.json") { configPath = "quickscan.json" }
        let settings = try configPath.map(WorkerConfiguration.load(path:))
        return database ?? settings?.database ?? "quickscan.sqlite"
    }

    /// Opens the database read-only. A config error is one line on stderr and exit 3; a missing
    /// or unreadable database is one line naming it and exit 1.
    func openReader() throws -> ResultsReader {
        let path: String
        do {
            path = try databasePath()
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        do {
            return try ResultsReader(path: path)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }
}

/// Runs a query of an open reader; a failure (SQLite busy for longer than the timeout, a
/// damaged file) is one line on stderr and exit 1.
func reading<T>(_ reader: ResultsReader, _ body: (ResultsReader) throws -> T) throws -> T {
    do {
        return try body(reader)
    } catch {
        printError("\(reader.path): \(error)")
        throw ExitCode(1)
    }
}

/// A duration for people: `42s`, `3m12s`, `2h05m`, `4d03h`.
func humanAge(_ seconds: Double) -> String {
    let s = Int(max(0, seconds).rounded(.down))
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    switch s {
    case ..<60: return "\(s)s"
    case ..<3600: return "\(s / 60)m\(two(s % 60))s"
    case ..<86_400: return "\(s / 3600)h\(two(s % 3600 / 60))m"
    default: return "\(s / 86_400)d\(two(s % 86_400 / 3600))h"
    }
}
