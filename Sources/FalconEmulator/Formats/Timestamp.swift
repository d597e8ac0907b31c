#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 timestamps and FQL relative times, as whole Unix epoch seconds (UTC).
///
/// Written against libc `timegm`/`gmtime_r` rather than Foundation formatters, which differ
/// between platforms in what they accept.
enum Timestamp {
    /// `2026-01-01T00:00:00Z`: the `created_timestamp` format (§5.2: RFC 3339, as in Falcon X).
    static func format(epochSeconds: Int) -> String {
        var time = time_t(epochSeconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }

    /// Milliseconds variant used for aggregation bucket keys: `2026-01-01T00:00:00.000Z`.
    static func formatMilliseconds(epochSeconds: Double) -> String {
        let whole = Int(epochSeconds.rounded(.down))
        let milliseconds = Int(((epochSeconds - Double(whole)) * 1000).rounded())
        let base = format(epochSeconds: whole)
        let fraction = String(milliseconds + 1000).dropFirst()
        return base.dropLast() + "." + fraction + "Z"
    }

    /// Reads an absolute or relative time: RFC 3339 (`2026-01-01T00:00:00Z`, fractions and
    /// offsets allowed), a date (`2026-01-01`), `now`, `now-7d` / `now+1h` (s, m, h, d, w),
    /// or `Last 7 days` / `last 24 hours` (seconds, minutes, hours, days, weeks).
    static func parse(_ text: String, now: Double) -> Double? {
        let value = text.trimmingSpaces
        if let absolute = parseRFC3339(value) { return absolute }
        let lower = value.lowercased()
        if lower == "now" { return now }
        if lower.hasPrefix("now"), lower.count > 4 {
            let sign: Double
            switch lower[lower.index(lower.startIndex, offsetBy: 3)] {
            case "-": sign = -1
            case "+": sign = 1
            default: return nil
            }
            var amountText = String(lower.dropFirst(4))
            guard let unit = amountText.popLast(), let amount = Double(amountText),
                  let seconds = unitSeconds(String(unit)) else { return nil }
            return now + sign * amount * seconds
        }
        if lower.hasPrefix("last ") {
            let words = lower.split(separator: " ")
            guard words.count == 3, let amount = Double(words[1]), let seconds = unitSeconds(String(words[2])) else {
                return nil
            }
            return now - amount * seconds
        }
        return nil
    }

    private static func unitSeconds(_ unit: String) -> Double? {
        switch unit {
        case "s", "second", "seconds": return 1
        case "m", "minute", "minutes": return 60
        case "h", "hour", "hours": return 3600
        case "d", "day", "days": return 86_400
        case "w", "week", "weeks": return 604_800
        default: return nil
        }
    }

    /// Strict RFC 3339 (`T` or space separator; `Z` or `±hh:mm`), or a bare `yyyy-mm-dd`.
    static func parseRFC3339(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) -> Int? {
            guard index + width <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + width] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            index += width
            return value
        }
        func expect(_ character: Character) -> Bool {
            guard index < bytes.count, bytes[index] == character.asciiValue else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offset = 0
        if index < bytes.count {
            guard bytes[index] == UInt8(ascii: "T") || bytes[index] == UInt8(ascii: "t") || bytes[index] == UInt8(ascii: " ") else {
                return nil
            }
            index += 1
            guard let h = number(2), expect(":"), let m = number(2), expect(":"), let s = number(2),
                  h < 24, m < 60, s < 61 else { return nil }
            hour = h
            minute = m
            second = s
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                var scale = 0.1
                let start = index
                while index < bytes.count, (48...57).contains(bytes[index]) {
                    fraction += Double(bytes[index] - 48) * scale
                    scale /= 10
                    index += 1
                }
                guard index > start else { return nil }
            }
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                index += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                index += 1
                guard let oh = number(2), expect(":"), let om = number(2) else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            default:
                return nil
            }
            guard index == bytes.count else { return nil }
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = Int(timegm(&parts))
        return Double(epoch - offset) + fraction
    }
}
