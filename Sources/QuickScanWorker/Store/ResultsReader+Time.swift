import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// ISO 8601 UTC timestamps in the form the `results` view writes (`2026-11-01T12:00:00Z`).
public enum ISOTime {
    /// `date` in UTC, to the second, or to the millisecond with `milliseconds`.
    public static func string(_ date: Date, milliseconds: Bool = false) -> String {
        let t = date.timeIntervalSince1970
        let whole = t.rounded(.down)
        var seconds = time_t(whole)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if milliseconds {
            text += "." + pad(Int32(min(999, ((t - whole) * 1000).rounded(.down))), 3)
        }
        return text + "Z"
    }
}

/// The values `--since` and `--until` take: a duration ago (`90s`, `30m`, `24h`, `7d`, `2w`,
/// combined as `1h30m`) or an ISO 8601 date (`2026-11-01`, midnight UTC) or datetime
/// (`2026-11-01T12:00:00Z`; UTC when no offset is given, seconds and fraction optional).
public enum TimeExpression {
    /// The point in time `text` names, durations counted back from `now`; an error names `text`.
    public static func parse(_ text: String, now: Date) throws -> Date {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = duration(trimmed) { return now.addingTimeInterval(-seconds) }
        if let date = dateTime(trimmed) { return date }
        throw ResultsReaderError(.invalidValue, "'\(text)' is not a time: give a duration ago (90s, 30m, 24h, 7d, 2w) "
                                 + "or a UTC date or datetime (2026-11-01, 2026-11-01T12:00:00Z)")
    }

    /// Seconds in a duration such as `90s`, `24h` or `1h30m`; nil when `text` is not one.
    public static func duration(_ text: String) -> TimeInterval? {
        let units: [UInt8: Double] = [UInt8(ascii: "s"): 1, UInt8(ascii: "m"): 60, UInt8(ascii: "h"): 3600,
                                      UInt8(ascii: "d"): 86_400, UInt8(ascii: "w"): 604_800]
        var total = 0.0
        var number: Double?
        var terms = 0
        for byte in text.utf8 {
            if byte >= 48 && byte <= 57 {
                number = (number ?? 0) * 10 + Double(byte - 48)
                guard number! < 1e12 else { return nil }
            } else if let unit = units[byte], let value = number {
                total += value * unit
                number = nil
                terms += 1
            } else {
                return nil
            }
        }
        return terms > 0 && number == nil ? total : nil
    }

    /// `YYYY-MM-DD`, or that followed by `T` (or a space) `HH:MM[:SS[.fff]]` and an optional
    /// `Z` or `±HH:MM` offset; nil when `text` is not one or names an impossible date.
    public static func dateTime(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var i = 0
        func digits(_ count: Int) -> Int? {
            guard i + count <= bytes.count else { return nil }
            var value = 0
            for k in 0..<count {
                let b = bytes[i + k]
                guard b >= 48 && b <= 57 else { return nil }
                value = value * 10 + Int(b - 48)
            }
            i += count
            return value
        }
        func accept(_ characters: String) -> Bool {
            guard i < bytes.count, characters.utf8.contains(bytes[i]) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), accept("-"), let month = digits(2), accept("-"), let day = digits(2) else { return nil }
        var hour = 0, minute = 0, second = 0, fraction = 0.0, offset = 0
        if i < bytes.count {
            guard accept("Tt "), let h = digits(2), accept(":"), let m = digits(2) else { return nil }
            (hour, minute) = (h, m)
            if accept(":") {
                guard let s = digits(2) else { return nil }
                second = s
                if accept(".") {
                    var scale = 0.1
                    let start = i
                    while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
                        fraction += Double(bytes[i] - 48) * scale
                        scale /= 10
                        i += 1
                    }
                    guard i > start else { return nil }
                }
            }
            if accept("Zz") {
            } else if i < bytes.count {
                let sign = bytes[i] == UInt8(ascii: "-") ? -1 : 1
                guard accept("+-"), let oh = digits(2) else { return nil }
                _ = accept(":")
                guard let om = digits(2), oh <= 23, om <= 59 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            }
            guard i == bytes.count else { return nil }
        }
        guard (1...12).contains(month), (1...31).contains(day), hour <= 23, minute <= 59, second <= 59 else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        var epoch = timegm(&parts)
        // timegm normalises 2026-02-30 to March 2: a date that does not survive the round trip is refused.
        var check = tm()
        gmtime_r(&epoch, &check)
        guard check.tm_mday == Int32(day), check.tm_mon == Int32(month - 1) else { return nil }
        return Date(timeIntervalSince1970: Double(epoch) + fraction - Double(offset))
    }
}
