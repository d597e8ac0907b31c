import Foundation
import Logging

/// A swift-log handler writing one JSON object per line to stderr, with stable keys:
/// `ts` (ISO 8601 UTC, milliseconds), `level`, `logger`, `message`, and `metadata` (an object of
/// strings, present when there is any).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        var object: [String: Any] = [
            "ts": Self.timestamp(Date()), "level": level.rawValue, "logger": label, "message": message.description,
        ]
        if !merged.isEmpty { object["metadata"] = merged.mapValues { Self.flatten($0) } }
        // Strings only: this cannot fail; and a log handler has nowhere to report its own error.
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        write(String(decoding: data, as: UTF8.self) + "\n")
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        default: value.description
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// Sets up swift-log for the process: text (swift-log's stream handler) or JSON lines on stderr.
public enum LogSetup {
    public static func bootstrap(level: Logger.Level, format: String) {
        LoggingSystem.bootstrap { label in
            if format == "json" {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = TextLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// A swift-log handler writing one line per message to stderr, like swift-log's stream
/// handler, with every control character escaped: a file name with a newline, a C1 or a bidi
/// control never forges a line or reorders what a terminal shows.
public struct TextLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        let meta = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(JSONLogHandler.flatten($0.value))" }.joined(separator: " ")
        let text = "\(JSONLogHandler.timestamp(Date())) \(level) \(label):\(meta.isEmpty ? "" : " " + meta) [\(source)] \(message)"
        write(Self.escape(text) + "\n")
    }

    /// C0 (but tab), DEL, C1 and the bidi controls as `\u{…}`.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if (v < 0x20 && v != 0x09) || (0x7f...0x9f).contains(v) || v == 0x061c || v == 0x200e || v == 0x200f
                || (0x202a...0x202e).contains(v) || (0x2066...0x2069).contains(v) {
                out += "\\u{\(String(v, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
