import FalconAPI
import Foundation
import SQLiteKit

/// A JSON value whose objects keep their keys in order (the view's column order), written by
/// hand so the operator commands print stable, diffable output (RFC 8259).
public indirect enum OrderedJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([OrderedJSON])
    case object([Member])

    /// One key and its value.
    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: OrderedJSON
        public init(_ key: String, _ value: OrderedJSON) {
            self.key = key
            self.value = value
        }
    }

    public init(_ value: SQLiteValue) {
        switch value {
        case .null: self = .null
        case .integer(let v): self = .int(v)
        case .real(let v): self = .double(v)
        case .text(let s): self = .string(s)
        case .blob(let b): self = .string(String(decoding: b, as: UTF8.self))
        }
    }

    /// A JSON text as a value (object keys sorted); nil when it is not JSON.
    public init?(parsing text: String) {
        // Not JSON is what nil means here (the caller shows such text as it is).
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return nil }
        self.init(value)
    }

    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let n): self = n.rounded() == n && abs(n) < 9e15 ? .int(Int64(n)) : .double(n)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(OrderedJSON.init))
        case .object(let o): self = .object(o.keys.sorted().map { .init($0, OrderedJSON(o[$0]!)) })
        }
    }

    public static func nullable(_ value: String?) -> OrderedJSON { value.map(OrderedJSON.string) ?? .null }
    public static func nullable(_ value: Int?) -> OrderedJSON { value.map { .int(Int64($0)) } ?? .null }
    public static func nullable(_ value: Int64?) -> OrderedJSON { value.map(OrderedJSON.int) ?? .null }
    public static func time(_ date: Date?, milliseconds: Bool = false) -> OrderedJSON {
        date.map { .string(ISOTime.string($0, milliseconds: milliseconds)) } ?? .null
    }

    /// Compact on one line, or indented by two spaces per level with `pretty`.
    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        write(into: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(into out: inout String, pretty: Bool, indent: Int) {
        func newline(_ level: Int) {
            guard pretty else { return }
            out += "\n" + String(repeating: "  ", count: level)
        }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let v): out += String(v)
        case .double(let v): out += v.isFinite ? String(v) : "null"
        case .string(let s): Self.quote(s, into: &out)
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += "," }
                newline(indent + 1)
                item.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            newline(indent)
            out += "]"
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{"
            for (n, member) in members.enumerated() {
                if n > 0 { out += "," }
                newline(indent + 1)
                Self.quote(member.key, into: &out)
                out += pretty ? ": " : ":"
                member.value.write(into: &out, pretty: pretty, indent: indent + 1)
            }
            newline(indent)
            out += "}"
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259 §7).
    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// RFC 4180 records: fields with a quote, comma, CR or LF are quoted with inner quotes doubled;
/// records end with CRLF.
public enum CSVRecord {
    /// One record; a nil field (SQL NULL) is written empty.
    public static func line(_ fields: [String?]) -> String {
        fields.map { field -> String in
            guard let field else { return "" }
            guard field.contains(where: { $0 == "\"" || $0 == "," || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return field }
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }.joined(separator: ",") + "\r\n"
    }
}

extension ResultRow {
    /// An object keyed by the view's column names, NULL as `null`.
    public var json: OrderedJSON {
        var members = zip(Self.columns, values).map { OrderedJSON.Member($0, OrderedJSON($1)) }
        if let details { members.append(.init("details", OrderedJSON(parsing: details) ?? .string(details))) }
        return .object(members)
    }

    /// The fields of a CSV record in ``columns`` order, NULL as nil.
    public var csvFields: [String?] {
        (values + (details.map { [.text($0)] } ?? [])).map { value -> String? in
            switch value {
            case .null: nil
            case .integer(let v): String(v)
            case .real(let v): String(v)
            case .text(let s): s
            case .blob(let b): String(decoding: b, as: UTF8.self)
            }
        }
    }
}

extension StatusReport {
    /// The `status --json` document: times ISO 8601 UTC, ages in whole seconds.
    public var json: OrderedJSON {
        func age(_ date: Date) -> OrderedJSON { .int(Int64(max(0, generatedAt.timeIntervalSince(date)).rounded(.down))) }
        func counts(_ list: [Count]) -> OrderedJSON { .object(list.map { .init($0.name, .int(Int64($0.count))) }) }
        return .object([
            .init("generated_at", .time(generatedAt)),
            .init("files", counts(fileStates)),
            .init("pending_files", .int(Int64(pendingFiles))),
            .init("outcomes", counts(outcomes)),
            .init("volumes", counts(volumeStates)),
            .init("volumes_in_flight", .array(volumesInFlight.map { v in
                .object([
                    .init("id", .int(v.id)), .init("state", .string(v.state)), .init("scan_id", .nullable(v.scanID)),
                    .init("created_at", .time(v.createdAt)), .init("age_seconds", age(v.createdAt)),
                    .init("attempt", .int(Int64(v.attempt))), .init("samples", .int(Int64(v.samples))),
                ])
            })),
            .init("oldest_pending", oldestPending.map { f in
                .object([
                    .init("file_id", .int(f.id)), .init("path", .string(f.path)), .init("state", .string(f.state)),
                    .init("discovered_at", .time(f.discoveredAt)), .init("age_seconds", age(f.discoveredAt)),
                ])
            } ?? .null),
            .init("not_filed_count", .int(Int64(notFiledCount))),
            .init("not_filed", .array(notFiled.map { f in
                .object([.init("file_id", .int(f.id)), .init("path", .string(f.path)), .init("state", .string(f.state)),
                         .init("reason", .string(f.reason))])
            })),
            .init("undelivered_notifications_count", .int(Int64(undeliveredCount))),
            .init("undelivered_notifications", .array(undelivered.map { n in
                .object([.init("id", .string(n.id)), .init("channel", .string(n.channel)), .init("path", .string(n.path)),
                         .init("outcome", .string(n.outcome)), .init("attempts", .int(Int64(n.attempts))),
                         .init("next_attempt_at", .time(Date(timeIntervalSince1970: n.nextAttemptAt))), .init("last_error", .nullable(n.lastError))])
            })),
            .init("recent_runs", .array(recentRuns.map { r in
                .object([
                    .init("id", .int(r.id)), .init("mode", .string(r.mode)), .init("started_at", .time(r.startedAt)),
                    .init("finished_at", .time(r.finishedAt)), .init("exit_code", .nullable(r.exitCode)), .init("pid", .nullable(r.pid)),
                    .init("host", .nullable(r.host)),
                ])
            })),
            .init("quota", quota.map { q in
                .object([
                    .init("total", .int(Int64(q.total))), .init("used", .int(Int64(q.used))), .init("in_progress", .int(Int64(q.inProgress))),
                    .init("remaining", .int(Int64(q.remaining))), .init("fetched_at", .time(q.fetchedAt)), .init("age_seconds", age(q.fetchedAt)),
                ])
            } ?? .null),
            .init("rate_limit_cooldown_until", .time(rateLimitCooldownUntil)),
        ])
    }
}

extension HistoryEvent {
    /// One `history --json` entry; the time to the millisecond, `path` only for file events.
    public var json: OrderedJSON {
        .object([
            .init("event_id", .int(id)), .init("time", .time(time, milliseconds: true)), .init("run_id", .nullable(runID)),
            .init("entity", .string(entity)), .init("id", .string(entityID)), .init("from", .nullable(from)), .init("to", .string(to)),
            .init("detail", .nullable(detail)), .init("path", .nullable(path)),
        ])
    }
}
