/// A GetScansAggregates body the emulator refuses; ``isViolation`` marks a wire-format
/// deviation from `msa.AggregateQueryRequest` (as opposed to an unsupported aggregation).
struct AggregateQueryError: Error, CustomStringConvertible {
    var reason: String
    var isViolation: Bool

    var description: String { reason }
}

/// One `msa.AggregateQueryRequest` (§5.4), validated key by key, with its sub-aggregations.
///
/// Supported types: `terms` (fields `status`, `cid`, `id`, `samples.verdict`, `samples.sha256`,
/// `samples_count`, `created_timestamp`), `date_range` on `created_timestamp` (`date_ranges`
/// with lower-case `from`/`to`: RFC 3339 or `now-7d`), and `range` on `samples_count` or on
/// `created_timestamp` in epoch milliseconds (`ranges` with capitalised `From`/`To`).
/// `sub_aggregates` are computed inside each bucket. `exclude`, `include`, `interval`,
/// `missing`, `q`, `time_zone`, `extended_bounds`, `filters_spec`, `from`, `max_doc_count` and
/// `percents` are checked for type and otherwise ignored.
struct AggregateQuery: Sendable {
    /// A `date_ranges` entry.
    struct DateRange: Sendable {
        var from: String?
        var to: String?
    }

    /// A `ranges` entry.
    struct NumberRange: Sendable {
        var from: Double?
        var to: Double?
    }

    var name: String
    var type: String
    var field: String?
    var filter: FQLFilter?
    var size: Int
    var minDocCount: Int
    var sort: String?
    var dateRanges: [DateRange]
    var ranges: [NumberRange]
    var subAggregates: [AggregateQuery]

    static let stringKeys: Set<String> = [
        "exclude", "field", "filter", "include", "interval", "missing", "name", "q", "sort", "time_zone", "type",
    ]
    static let integerKeys: Set<String> = ["from", "max_doc_count", "min_doc_count", "size"]
    static let allKeys: Set<String> = stringKeys.union(integerKeys).union([
        "date_ranges", "extended_bounds", "filters_spec", "percents", "ranges", "sub_aggregates",
    ])
    static let termsFields: Set<String> = [
        "status", "cid", "id", "samples.verdict", "samples.sha256", "samples_count", "created_timestamp",
    ]

    /// Reads and validates `json`; `path` names its place in the body for error messages.
    static func parse(_ json: JSONValue, path: String = "body", now: Double) throws(AggregateQueryError) -> AggregateQuery {
        func violation(_ reason: String) -> AggregateQueryError {
            AggregateQueryError(reason: reason, isViolation: true)
        }
        func unsupported(_ reason: String) -> AggregateQueryError {
            AggregateQueryError(reason: reason, isViolation: false)
        }
        guard case .object(let members) = json else {
            if case .array = json {
                throw violation("\(path) must be a single msa.AggregateQueryRequest object, not an array")
            }
            throw violation("\(path) must be an msa.AggregateQueryRequest object, got \(json.typeName)")
        }
        for member in members {
            guard allKeys.contains(member.key) else {
                throw violation("\(path) has unknown key '\(member.key)' (not in msa.AggregateQueryRequest)")
            }
            if stringKeys.contains(member.key), member.value.stringValue == nil {
                throw violation("\(path).\(member.key) must be a string, got \(member.value.typeName)")
            }
            if integerKeys.contains(member.key) {
                guard case .int = member.value else {
                    throw violation("\(path).\(member.key) must be an integer, got \(member.value.typeName)")
                }
            }
        }
        if let bounds = json["extended_bounds"] {
            guard case .object(let boundMembers) = bounds else {
                throw violation("\(path).extended_bounds must be an object {min, max}")
            }
            for member in boundMembers where member.key != "min" && member.key != "max" {
                throw violation("\(path).extended_bounds has unknown key '\(member.key)'; expected min and max")
            }
        }
        if let percents = json["percents"] {
            guard let values = percents.arrayValue, values.allSatisfy({ $0.doubleValue != nil }) else {
                throw violation("\(path).percents must be an array of numbers")
            }
        }
        if let spec = json["filters_spec"], !spec.isObject {
            throw violation("\(path).filters_spec must be an object")
        }

        var dateRanges: [DateRange] = []
        if let value = json["date_ranges"] {
            guard let entries = value.arrayValue else { throw violation("\(path).date_ranges must be an array") }
            for (index, entry) in entries.enumerated() {
                let place = "\(path).date_ranges[\(index)]"
                guard case .object(let rangeMembers) = entry else { throw violation("\(place) must be an object {from, to}") }
                for member in rangeMembers where member.key != "from" && member.key != "to" {
                    let hint = member.key.lowercased() == "from" || member.key.lowercased() == "to"
                        ? "; msa.DateRangeSpec keys are lower-case 'from' and 'to'" : "; expected from and to"
                    throw violation("\(place) has key '\(member.key)'\(hint)")
                }
                for member in rangeMembers where member.value.stringValue == nil {
                    throw violation("\(place).\(member.key) must be a string")
                }
                dateRanges.append(DateRange(from: entry["from"]?.stringValue, to: entry["to"]?.stringValue))
            }
        }

        var ranges: [NumberRange] = []
        if let value = json["ranges"] {
            guard let entries = value.arrayValue else { throw violation("\(path).ranges must be an array") }
            for (index, entry) in entries.enumerated() {
                let place = "\(path).ranges[\(index)]"
                guard case .object(let rangeMembers) = entry else { throw violation("\(place) must be an object {From, To}") }
                for member in rangeMembers where member.key != "From" && member.key != "To" {
                    let hint = member.key.lowercased() == "from" || member.key.lowercased() == "to"
                        ? "; msa.RangeSpec keys are capitalised 'From' and 'To'" : "; expected From and To"
                    throw violation("\(place) has key '\(member.key)'\(hint)")
                }
                for member in rangeMembers where member.value.doubleValue == nil {
                    throw violation("\(place).\(member.key) must be a number")
                }
                ranges.append(NumberRange(from: entry["From"]?.doubleValue, to: entry["To"]?.doubleValue))
            }
        }

        var subAggregates: [AggregateQuery] = []
        if let value = json["sub_aggregates"] {
            guard let entries = value.arrayValue else { throw violation("\(path).sub_aggregates must be an array") }
            for (index, entry) in entries.enumerated() {
                subAggregates.append(try parse(entry, path: "\(path).sub_aggregates[\(index)]", now: now))
            }
        }

        var filter: FQLFilter?
        if let text = json["filter"]?.stringValue, !text.trimmingSpaces.isEmpty {
            do {
                let parsed = try FQLFilter.parse(text)
                try parsed.validate(now: now)
                filter = parsed
            } catch {
                throw AggregateQueryError(
                    reason: "\(path).filter: \(error.reason)", isViolation: error.isSpaceForPlus || error.isUnknownField
                )
            }
        }

        guard let type = json["type"]?.stringValue, !type.isEmpty else {
            throw unsupported("\(path).type is required; the emulator supports terms, date_range and range")
        }
        let field = json["field"]?.stringValue
        switch type {
        case "terms":
            guard let field else { throw unsupported("\(path): a terms aggregation needs a field") }
            guard termsFields.contains(field) else {
                throw unsupported("\(path): the emulator cannot aggregate terms of '\(field)'; use one of \(termsFields.sorted().joined(separator: ", "))")
            }
        case "date_range":
            guard field == "created_timestamp" else {
                throw unsupported("\(path): date_range works on field created_timestamp")
            }
            guard !dateRanges.isEmpty else { throw unsupported("\(path): date_range needs date_ranges") }
            for (index, range) in dateRanges.enumerated() {
                for bound in [range.from, range.to].compactMap({ $0 }) where Timestamp.parse(bound, now: now) == nil {
                    throw unsupported("\(path).date_ranges[\(index)]: '\(bound)' is not an RFC 3339 time or now-N[smhdw]")
                }
            }
        case "range":
            guard field == "samples_count" || field == "created_timestamp" else {
                throw unsupported("\(path): range works on samples_count or created_timestamp (epoch milliseconds)")
            }
            guard !ranges.isEmpty else { throw unsupported("\(path): range needs ranges") }
        default:
            throw unsupported("\(path): aggregation type '\(type)' is not supported by the emulator; use terms, date_range or range")
        }

        let size = json["size"]?.intValue ?? 0
        return AggregateQuery(
            name: json["name"]?.stringValue ?? field ?? type,
            type: type,
            field: field,
            filter: filter,
            size: size > 0 ? size : 10,
            minDocCount: json["min_doc_count"]?.intValue ?? 1,
            sort: json["sort"]?.stringValue,
            dateRanges: dateRanges,
            ranges: ranges,
            subAggregates: subAggregates
        )
    }
}
