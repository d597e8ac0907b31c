import ArgumentParser
import Foundation
import QuickScanWorker

#if canImport(Glibc)
import Glibc
#endif

/// How `quickscan results` prints its rows.
enum ResultsFormat: String, CaseIterable, ExpressibleByArgument {
    case table, json, ndjson, csv
}

/// `quickscan results`: rows of the stable `results` view, filtered, as a table, JSON, NDJSON or CSV.
struct ResultsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results", abstract: "Query the results database (the stable `results` view).",
        discussion: """
            Rows come in file id order. Filters combine with AND. Times (--since, --until) are a \
            duration ago (90s, 30m, 24h, 7d, 2w, or combined: 1h30m) or an ISO 8601 date or datetime, \
            UTC unless an offset is given (2026-11-01, 2026-11-01T12:00:00Z); they apply to updated_at, \
            the file's last transition (usually its disposal).

            Formats: json (an array of objects keyed by the view's column names, null for NULL), \
            ndjson (one such object per line), csv (RFC 4180: header row, CRLF line ends, quoted \
            fields; names with commas, quotes or newlines survive a round trip), table (a selection \
            of columns, aligned, control characters escaped). Default: table when stdout is a \
            terminal, ndjson otherwise (pipes, files, scripts).

            QuickScan Pro verdicts also fill verdict_reason, malicious_confidence and file_type \
            (NULL for legacy Quick Scan verdicts). --details adds `details`: the scan's whole result \
            (MITRE ATT&CK techniques, YARA rules, file and URL artifacts) as JSON; in a table it is \
            printed below, per file.

            Exit codes: 0 success (also when no row matches), 1 failure (missing or unreadable \
            database), 3 configuration error, 64 invalid flag value.
            """)

    @Option(help: "Only this verdict, case-insensitive (e.g. malware, suspicious, 'no specific threat').")
    var verdict: String?

    @Option(help: "Only this outcome: clean, threat or not_scanned.")
    var outcome: String?

    @Option(help: "Only rows updated at or after this time: 24h, 30m, 7d, 2w, 90s ago, or 2026-11-01, 2026-11-01T12:00:00Z.")
    var since: String?

    @Option(help: "Only rows updated before this time (same forms as --since).")
    var until: String?

    @Option(name: .customLong("path"), help: "Only paths matching this SQLite GLOB on the absolute path (case-sensitive; * also matches /).")
    var pathGlob: String?

    @Option(help: "Only files with this content (SHA-256, 64 hex characters).")
    var sha256: String?

    @Option(help: "At most this many rows (lowest file ids first).")
    var limit: Int?

    @Option(help: "Output format: table, json, ndjson or csv (default: table on a terminal, else ndjson).")
    var format: ResultsFormat?

    @Flag(help: "Add QuickScan Pro's details (MITRE ATT&CK, YARA, artifacts) as JSON.")
    var details = false

    @OptionGroup var databaseOptions: DatabaseOptions

    /// The filter the flags describe; durations count back from `now`.
    func filter(now: Date) throws -> ResultsFilter {
        func time(_ flag: String, _ value: String?) throws -> Date? {
            guard let value else { return nil }
            do { return try TimeExpression.parse(value, now: now) } catch { throw ValidationError("--\(flag): \(error)") }
        }
        let filter = ResultsFilter(verdict: verdict, outcome: outcome, since: try time("since", since), until: try time("until", until),
                                   pathGlob: pathGlob, sha256: sha256, limit: limit, details: details)
        do { try filter.validate() } catch { throw ValidationError("--\(error)") }
        return filter
    }

    func validate() throws {
        _ = try filter(now: Date())
    }

    func run() throws {
        let filter = try filter(now: Date())
        let reader = try databaseOptions.openReader()
        let rows = try reading(reader) { try $0.results(filter) }
        let chosen = format ?? (isatty(STDOUT_FILENO) == 1 ? .table : .ndjson)
        var out = ""
        switch chosen {
        case .json:
            // One row per line inside the array: still one JSON document, and readable.
            out = rows.isEmpty ? "[]\n" : "[\n" + rows.map { $0.json.serialized() }.joined(separator: ",\n") + "\n]\n"
        case .ndjson:
            for row in rows { out += row.json.serialized() + "\n" }
        case .csv:
            out = CSVRecord.line(ResultRow.columns + (details ? ["details"] : []))
            for row in rows { out += CSVRecord.line(row.csvFields) }
        case .table:
            out = Self.table(rows) + "\n"
            for row in rows where details {
                guard let text = row.details else { continue }
                // Escaped line by line: names inside the scanner's answer cannot forge output either.
                out += "\ndetails of file \(row.fileID) (\(TextTable.clean(row.path))):\n"
                let pretty = OrderedJSON(parsing: text)?.serialized(pretty: true) ?? text
                out += pretty.split(separator: "\n", omittingEmptySubsequences: false).map { TextTable.clean(String($0)) }.joined(separator: "\n") + "\n"
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    /// The columns an operator reads first; the other formats carry every column.
    static func table(_ rows: [ResultRow]) -> String {
        guard !rows.isEmpty else { return "no results" }
        // QuickScan Pro's reason and confidence, when any row has them.
        let pro = rows.contains { $0.verdictReason != nil || $0.maliciousConfidence != nil }
        var table = TextTable(headers: ["FILE_ID", "UPDATED_AT", "OUTCOME", "VERDICT"] + (pro ? ["REASON", "CONFIDENCE"] : [])
                              + ["CACHED", "PATH", "DISPOSED_TO", "ERROR"])
        for r in rows {
            // A file not filed yet says so, and why, where its destination would be.
            let filed = r.disposedTo ?? (r.state == "disposed" ? "" : "not filed" + (r.pendingReason.map { ": \($0)" } ?? ""))
            let proCells = pro ? [r.verdictReason ?? "", r.maliciousConfidence.map(String.init) ?? ""] : []
            table.add(row: ["\(r.fileID)", r.updatedAt, r.outcome, r.verdict ?? ""] + proCells + [r.cached ? "yes" : "", r.path, filed, r.error ?? ""])
        }
        return table.render()
    }
}
