import ArgumentParser
import Foundation
import QuickScanWorker

/// `quickscan status`: what the queue, the volumes and the recent runs look like right now.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show counts per state, volumes in flight, the oldest pending file, last runs, quota and cooldown.",
        discussion: """
            Reads the results database only (no API call): the quota is the last one the worker \
            read, with its age; the rate-limit cooldown is shown only while it lasts. With --json, \
            one JSON object (times ISO 8601 UTC, ages in seconds).

            Exit codes: 0 success, 1 failure (missing or unreadable database), 3 configuration error, \
            64 invalid flag.
            """)

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @OptionGroup var databaseOptions: DatabaseOptions

    func run() throws {
        let reader = try databaseOptions.openReader()
        let report = try reading(reader) { try $0.status() }
        if json {
            print(report.json.serialized(pretty: true))
        } else {
            print(Self.text(report, database: reader.path))
        }
    }

    /// The human-readable report.
    static func text(_ r: StatusReport, database: String) -> String {
        func ago(_ date: Date) -> String { humanAge(r.generatedAt.timeIntervalSince(date)) }
        func nonZero(_ counts: [StatusReport.Count]) -> String {
            let shown = counts.filter { $0.count > 0 }.map { "\($0.name) \($0.count)" }
            return shown.isEmpty ? "none" : shown.joined(separator: ", ")
        }
        var lines: [String] = []
        var summary = TextTable("", "")
        summary.add("database", TextTable.clean(database))
        summary.add("files", nonZero(r.fileStates) + " (pending \(r.pendingFiles))")
        summary.add("outcomes", nonZero(r.outcomes))
        summary.add("volumes", nonZero(r.volumeStates))
        if let f = r.oldestPending {
            summary.add("oldest pending", "file \(f.id), \(f.state), discovered \(ISOTime.string(f.discoveredAt)) (\(ago(f.discoveredAt)) ago): \(TextTable.clean(f.path))")
        } else {
            summary.add("oldest pending", "none")
        }
        if r.notFiledCount > 0 {
            summary.add("not filed", "\(r.notFiledCount) file(s) whose disposal failed; retried with backoff")
            for f in r.notFiled { summary.add("", "file \(f.id) (\(f.state)): \(TextTable.clean(f.path)): \(TextTable.clean(f.reason))") }
        }
        if r.undeliveredCount > 0 {
            summary.add("notifications", "\(r.undeliveredCount) not delivered yet; retried with backoff")
            for n in r.undelivered {
                let error = n.lastError.map { ": " + TextTable.clean($0) } ?? ""
                summary.add("", "\(n.id) \(n.channel) \(n.outcome) \(TextTable.clean(n.path)), \(n.attempts) attempt(s), next \(ISOTime.string(Date(timeIntervalSince1970: n.nextAttemptAt)))\(error)")
            }
        } else {
            summary.add("notifications", "none undelivered")
        }
        if let q = r.quota {
            summary.add("quota", "used \(q.used) of \(q.total), in progress \(q.inProgress), remaining \(q.remaining) (read \(ISOTime.string(q.fetchedAt)), \(ago(q.fetchedAt)) ago)")
        } else {
            summary.add("quota", "unknown (no run has read it yet)")
        }
        if let until = r.rateLimitCooldownUntil {
            summary.add("rate limit", "cooling down until \(ISOTime.string(until)) (\(humanAge(until.timeIntervalSince(r.generatedAt))) left)")
        } else {
            summary.add("rate limit", "no cooldown")
        }
        // The header row of a two-column key/value table is empty: drop it.
        lines.append(summary.render().split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n"))

        lines.append("")
        if r.volumesInFlight.isEmpty {
            lines.append("volumes in flight: none")
        } else {
            lines.append("volumes in flight:")
            var table = TextTable("VOLUME", "STATE", "SCAN_ID", "SAMPLES", "ATTEMPT", "CREATED_AT", "AGE")
            for v in r.volumesInFlight {
                table.add("\(v.id)", v.state, v.scanID ?? "-", "\(v.samples)", "\(v.attempt)", ISOTime.string(v.createdAt), ago(v.createdAt))
            }
            lines.append(table.render())
        }

        lines.append("")
        if r.recentRuns.isEmpty {
            lines.append("last runs: none")
        } else {
            lines.append("last runs:")
            var table = TextTable("RUN", "MODE", "STARTED_AT", "FINISHED_AT", "EXIT", "PID", "HOST")
            for run in r.recentRuns {
                table.add("\(run.id)", run.mode, ISOTime.string(run.startedAt), run.finishedAt.map { ISOTime.string($0) } ?? "-",
                          run.exitCode.map(String.init) ?? "-", run.pid.map(String.init) ?? "-", run.host ?? "-")
            }
            lines.append(table.render())
        }
        return lines.joined(separator: "\n")
    }
}
