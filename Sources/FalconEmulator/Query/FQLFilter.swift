/// A filter the emulator cannot read; ``isSpaceForPlus`` marks the unencoded-`+` client bug.
struct FQLError: Error, CustomStringConvertible {
    var reason: String
    /// The filter has a blank where FQL's `+` (AND) belongs: a `+` sent unencoded in a query
    /// string decodes to a space (§5.3).
    var isSpaceForPlus = false
    /// The field is not one the emulator knows (the swagger lists none; §5.3).
    var isUnknownField = false

    var description: String { reason }
}

/// What an FQL filter can look at: string fields, time fields (Unix seconds) and number fields.
protocol FQLDocument {
    /// The values of a string field (arrays: every element); empty when the field has none.
    func fqlStrings(_ field: String) -> [String]
    /// The value of a time field (``FQLFilter/timeFields``), in Unix seconds.
    func fqlTime(_ field: String) -> Double?
    /// The value of a number field (``FQLFilter/numberFields``).
    func fqlNumber(_ field: String) -> Double?
}

/// A parsed FQL expression over Quick Scan volumes (and QuickScan Pro scans).
///
/// Grammar: terms joined by `+` (AND) and `,` (OR); AND binds tighter; parentheses group.
/// A term is `field:value` with an optional operator after the colon: `>`, `>=`, `<`, `<=`,
/// `!` (not), `~` (contains), `!~`. Values are `'quoted'`, `"quoted"`, bare words, or lists
/// `['a','b']` (any of). `*` in a value is a wildcard.
///
/// Fields (the swagger documents only `created_timestamp`; the others are the fact sheet's
/// likely candidates): `created_timestamp` (RFC 3339, `now-7d` or `Last 7 days`), `id`, `cid`,
/// `status`, `samples.sha256`, `samples.verdict`, `samples_count`.
indirect enum FQLFilter: Sendable {
    case all([FQLFilter])
    case any([FQLFilter])
    case term(field: String, comparison: Comparison, values: [String])

    /// The operator of a term.
    enum Comparison: String, Sendable {
        case equal = ""
        case notEqual = "!"
        case greater = ">"
        case greaterOrEqual = ">="
        case less = "<"
        case lessOrEqual = "<="
        case contains = "~"
        case notContains = "!~"
    }

    static let fields: Set<String> = [
        "created_timestamp", "id", "cid", "status", "samples.sha256", "samples.verdict", "samples_count",
    ]
    /// Fields compared as times (RFC 3339 or relative values).
    static let timeFields: Set<String> = ["created_timestamp", "updated_timestamp", "yara_rules.created_at", "yara_rules.updated_at"]
    /// Fields compared as numbers.
    static let numberFields: Set<String> = ["samples_count", "file_size"]

    /// Parses a filter over `fields`; ``validate(now:)`` then checks its time and number values.
    static func parse(_ text: String, fields: Set<String> = FQLFilter.fields) throws(FQLError) -> FQLFilter {
        var parser = FQLParser(characters: Array(text), fields: fields)
        parser.skipBlanks()
        let filter = try parser.parseOr()
        parser.skipBlanks()
        if parser.index < parser.characters.count {
            throw FQLError(reason: "unexpected '\(parser.characters[parser.index])' at position \(parser.index + 1)")
        }
        return filter
    }

    /// Checks values that can be checked before evaluation (timestamps, numbers).
    func validate(now: Double) throws(FQLError) {
        switch self {
        case .all(let filters), .any(let filters):
            for filter in filters { try filter.validate(now: now) }
        case .term(let field, _, let values):
            for value in values {
                if Self.timeFields.contains(field), Timestamp.parse(value, now: now) == nil {
                    var reason = "\(field) value '\(value)' is not an RFC 3339 time or a relative time such as 'Last 7 days'"
                    if value.contains(" "), !value.lowercased().hasPrefix("last ") {
                        reason += " (a '+' in a time offset must be sent as %2B)"
                    }
                    throw FQLError(reason: reason, isSpaceForPlus: value.contains(" ") && !value.lowercased().hasPrefix("last "))
                }
                if Self.numberFields.contains(field), Int(value) == nil {
                    throw FQLError(reason: "\(field) value '\(value)' is not an integer")
                }
            }
        }
    }

    /// Whether `document` matches.
    func matches(_ document: some FQLDocument, now: Double) -> Bool {
        switch self {
        case .all(let filters): return filters.allSatisfy { $0.matches(document, now: now) }
        case .any(let filters): return filters.contains { $0.matches(document, now: now) }
        case .term(let field, let comparison, let values):
            // A negated list excludes every value; a plain list matches any of them.
            if comparison == .notEqual || comparison == .notContains {
                return values.allSatisfy { Self.matchTerm(field, comparison, $0, document, now: now) }
            }
            return values.contains { Self.matchTerm(field, comparison, $0, document, now: now) }
        }
    }

    private static func matchTerm(
        _ field: String, _ comparison: Comparison, _ value: String, _ document: some FQLDocument, now: Double
    ) -> Bool {
        if timeFields.contains(field) {
            guard let time = Timestamp.parse(value, now: now), let own = document.fqlTime(field) else { return false }
            return compare(own, comparison, time.rounded(.down))
        }
        if numberFields.contains(field) {
            guard let number = Int(value), let own = document.fqlNumber(field) else { return false }
            return compare(own, comparison, Double(number))
        }
        return matchStrings(document.fqlStrings(field), comparison, value)
    }

    private static func compare(_ left: Double, _ comparison: Comparison, _ right: Double) -> Bool {
        switch comparison {
        case .equal, .contains: return left == right
        case .notEqual, .notContains: return left != right
        case .greater: return left > right
        case .greaterOrEqual: return left >= right
        case .less: return left < right
        case .lessOrEqual: return left <= right
        }
    }

    /// Array fields match when any element matches (negations: when none matches).
    private static func matchStrings(_ values: [String], _ comparison: Comparison, _ pattern: String) -> Bool {
        switch comparison {
        case .notEqual: return !values.contains { matchString($0, .equal, pattern) }
        case .notContains: return !values.contains { matchString($0, .contains, pattern) }
        default: return values.contains { matchString($0, comparison, pattern) }
        }
    }

    /// String terms compare case-insensitively; `*` is a wildcard in `:` and `:!` terms.
    private static func matchString(_ value: String, _ comparison: Comparison, _ pattern: String) -> Bool {
        let value = value.lowercased()
        let pattern = pattern.lowercased()
        switch comparison {
        case .equal: return wildcard(value, pattern)
        case .notEqual: return !wildcard(value, pattern)
        case .contains: return value.contains(pattern)
        case .notContains: return !value.contains(pattern)
        case .greater: return value > pattern
        case .greaterOrEqual: return value >= pattern
        case .less: return value < pattern
        case .lessOrEqual: return value <= pattern
        }
    }

    private static func wildcard(_ value: String, _ pattern: String) -> Bool {
        guard pattern.contains("*") else { return value == pattern }
        let pieces = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        var rest = Substring(value)
        for (index, piece) in pieces.enumerated() {
            if piece.isEmpty { continue }
            if index == 0 {
                guard rest.hasPrefix(piece) else { return false }
                rest = rest.dropFirst(piece.count)
            } else if index == pieces.count - 1 {
                return rest.hasSuffix(piece)
            } else {
                guard let range = rest.range(of: piece) else { return false }
                rest = rest[range.upperBound...]
            }
        }
        return true
    }
}

/// Recursive-descent reader for ``FQLFilter``.
private struct FQLParser {
    let characters: [Character]
    let fields: Set<String>
    var index = 0

    mutating func skipBlanks() {
        while index < characters.count, characters[index] == " " || characters[index] == "\t" { index += 1 }
    }

    var current: Character? { index < characters.count ? characters[index] : nil }

    mutating func parseOr() throws(FQLError) -> FQLFilter {
        var parts = [try parseAnd()]
        while true {
            skipBlanks()
            guard current == "," else { break }
            index += 1
            skipBlanks()
            parts.append(try parseAnd())
        }
        return parts.count == 1 ? parts[0] : .any(parts)
    }

    mutating func parseAnd() throws(FQLError) -> FQLFilter {
        var parts = [try parseTerm()]
        while true {
            let beforeBlanks = index
            skipBlanks()
            if current == "+" {
                index += 1
                skipBlanks()
                parts.append(try parseTerm())
                continue
            }
            // A blank followed by another term: the '+' was lost to query-string decoding.
            if index > beforeBlanks, let next = current, next.isLetter || next == "(" || next == "_" {
                throw FQLError(
                    reason: "filter has a space at position \(beforeBlanks + 1) where FQL expects '+' (AND); "
                        + "an unencoded '+' in a query string decodes to a space, send it as %2B",
                    isSpaceForPlus: true
                )
            }
            break
        }
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    mutating func parseTerm() throws(FQLError) -> FQLFilter {
        if current == "(" {
            index += 1
            skipBlanks()
            let inner = try parseOr()
            skipBlanks()
            guard current == ")" else { throw FQLError(reason: "missing ')' at position \(index + 1)") }
            index += 1
            return inner
        }
        let fieldStart = index
        while let character = current, character.isLetter || character.isNumber || character == "_" || character == "." {
            index += 1
        }
        let field = String(characters[fieldStart..<index]).lowercased()
        guard !field.isEmpty else {
            throw FQLError(reason: "expected a field name at position \(index + 1)")
        }
        guard current == ":" else {
            throw FQLError(reason: "expected ':' after field '\(field)' at position \(index + 1)")
        }
        index += 1
        guard fields.contains(field) else {
            throw FQLError(
                reason: "unknown filter field '\(field)'; the emulator knows \(fields.sorted().joined(separator: ", "))",
                isUnknownField: true
            )
        }
        let comparison = readComparison()
        let values = try readValues()
        return .term(field: field, comparison: comparison, values: values)
    }

    mutating func readComparison() -> FQLFilter.Comparison {
        let candidates: [FQLFilter.Comparison] = [.greaterOrEqual, .lessOrEqual, .notContains, .greater, .less, .notEqual, .contains]
        for candidate in candidates {
            let symbol = Array(candidate.rawValue)
            if index + symbol.count <= characters.count, Array(characters[index..<index + symbol.count]) == symbol {
                index += symbol.count
                return candidate
            }
        }
        return .equal
    }

    mutating func readValues() throws(FQLError) -> [String] {
        if current == "[" {
            index += 1
            var values: [String] = []
            while true {
                skipBlanks()
                values.append(try readValue())
                skipBlanks()
                if current == "," {
                    index += 1
                    continue
                }
                guard current == "]" else { throw FQLError(reason: "expected ',' or ']' at position \(index + 1)") }
                index += 1
                return values
            }
        }
        return [try readValue()]
    }

    mutating func readValue() throws(FQLError) -> String {
        if let quote = current, quote == "'" || quote == "\"" {
            index += 1
            var value = ""
            while let character = current {
                index += 1
                if character == "\\", let next = current {
                    value.append(next)
                    index += 1
                    continue
                }
                if character == quote { return value }
                value.append(character)
            }
            throw FQLError(reason: "unterminated quoted value")
        }
        let start = index
        while let character = current, !"+,)] \t".contains(character) { index += 1 }
        guard index > start else { throw FQLError(reason: "expected a value at position \(index + 1)") }
        return String(characters[start..<index])
    }
}
