import ArgumentParser
import Foundation
import QuickScanWorker

/// `quickscan history PATH|SHA256`: every recorded transition of a file or a sample, oldest first.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show every recorded transition of a file or sample, oldest first.",
        discussion: """
            A PATH (made absolute against the current directory, as the database stores it) shows \
            every version of the file found at that path or filed to it. A SHA256 (64 hex \
            characters) shows the sample's transitions, those of every file with that content and \
            those of every volume that held it. Times are ISO 8601 UTC to the millisecond. With \
            --json, an array of objects (event_id, time, run_id, entity, id, from, to, detail, path).

            Exit codes: 0 success, 1 failure (nothing recorded for it, missing or unreadable \
            database), 3 configuration error, 64 invalid flag.
            """)

    @Argument(help: "A file path (as found in an inbox, or where it was filed), or a SHA-256.")
    var pathOrSHA256: String

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var databaseOptions: DatabaseOptions

    func run() throws {
        let reader = try databaseOptions.openReader()
        var events: [HistoryEvent] = []
        if ResultsReader.isSHA256(pathOrSHA256) {
            events = try reading(reader) { try $0.history(pathOrSHA256: pathOrSHA256) }
        }
        if events.isEmpty {
            // The raw absolute form first (what the walker stored), then without `.`, `..` and `//`.
            for candidate in Self.absolute(pathOrSHA256) where events.isEmpty {
                events = try reading(reader) { try $0.history(pathOrSHA256: candidate) }
            }
        }
        guard !events.isEmpty else {
            printError("no recorded history for \(TextTable.clean(pathOrSHA256)) in \(reader.path)")
            throw ExitCode(1)
        }
        if json {
            let items = events.map { $0.json.serialized() }
            print("[\n" + items.joined(separator: ",\n") + "\n]")
            return
        }
        var table = TextTable("TIME", "ENTITY", "ID", "FROM", "TO", "DETAIL")
        for e in events {
            table.add(ISOTime.string(e.time, milliseconds: true), e.entity, e.entityID, e.from ?? "-", e.to, e.detail ?? "")
        }
        print(table.render())
    }

    /// `path` made absolute against the current directory: as given, and lexically normalised.
    static func absolute(_ path: String, currentDirectory: String = FileManager.default.currentDirectoryPath) -> [String] {
        let raw = path.hasPrefix("/") ? path : (currentDirectory.hasSuffix("/") ? currentDirectory : currentDirectory + "/") + path
        var parts: [Substring] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        let normalised = "/" + parts.joined(separator: "/")
        return normalised == raw ? [raw] : [raw, normalised]
    }
}
