/// Computing an `msa.AggregationResult` over scan documents.
extension AggregateQuery {
    /// The result object: `{name, buckets, sum_other_doc_count, doc_count_error_upper_bound}`.
    func evaluate(_ documents: [ScanDocument], now: Double) -> JSONValue {
        let selected = filter.map { filter in documents.filter { filter.matches($0, now: now) } } ?? documents
        var buckets: [(label: JSONValue, extra: [JSONMember], documents: [ScanDocument])]
        var otherCount = 0
        switch type {
        case "terms":
            (buckets, otherCount) = termsBuckets(selected)
        case "date_range":
            buckets = dateRanges.map { range in
                let from = range.from.flatMap { Timestamp.parse($0, now: now) }
                let to = range.to.flatMap { Timestamp.parse($0, now: now) }
                let inside = selected.filter { document in
                    let time = Double(document.createdAt)
                    return (from.map { time >= $0.rounded(.down) } ?? true) && (to.map { time < $0.rounded(.down) } ?? true)
                }
                let fromText = from.map { Timestamp.formatMilliseconds(epochSeconds: $0.rounded(.down)) }
                let toText = to.map { Timestamp.formatMilliseconds(epochSeconds: $0.rounded(.down)) }
                let label = "\(fromText ?? "*")-\(toText ?? "*")"
                var extra: [JSONMember] = []
                if let from { extra.append(JSONMember(key: "from", value: .double(from.rounded(.down) * 1000))) }
                if let to { extra.append(JSONMember(key: "to", value: .double(to.rounded(.down) * 1000))) }
                extra.append(JSONMember(key: "key_as_string", value: .string(label)))
                if let fromText { extra.append(JSONMember(key: "string_from", value: .string(fromText))) }
                if let toText { extra.append(JSONMember(key: "string_to", value: .string(toText))) }
                return (.string(label), extra, inside)
            }
        default:  // "range"
            buckets = ranges.map { range in
                let inside = selected.filter { document in
                    let value = field == "samples_count" ? Double(document.sha256s.count) : Double(document.createdAt) * 1000
                    return (range.from.map { value >= $0 } ?? true) && (range.to.map { value < $0 } ?? true)
                }
                let label = "\(range.from.map(Self.formatNumber) ?? "*")-\(range.to.map(Self.formatNumber) ?? "*")"
                var extra: [JSONMember] = []
                if let from = range.from { extra.append(JSONMember(key: "from", value: .double(from))) }
                if let to = range.to { extra.append(JSONMember(key: "to", value: .double(to))) }
                return (.string(label), extra, inside)
            }
        }
        let bucketValues: [JSONValue] = buckets.map { bucket in
            var members = [JSONMember(key: "label", value: bucket.label), JSONMember(key: "count", value: .int(bucket.documents.count))]
            members.append(contentsOf: bucket.extra)
            if !subAggregates.isEmpty {
                members.append(JSONMember(
                    key: "sub_aggregates",
                    value: .array(subAggregates.map { $0.evaluate(bucket.documents, now: now) })
                ))
            }
            return .object(members)
        }
        return [
            "name": .string(name),
            "buckets": .array(bucketValues),
            "sum_other_doc_count": .int(otherCount),
            "doc_count_error_upper_bound": 0,
        ]
    }

    /// Terms buckets: a document counts once in each bucket of a value it holds (Elasticsearch
    /// semantics for array fields such as `samples.verdict`).
    private func termsBuckets(
        _ documents: [ScanDocument]
    ) -> ([(label: JSONValue, extra: [JSONMember], documents: [ScanDocument])], Int) {
        var order: [String] = []
        var groups: [String: (label: JSONValue, documents: [ScanDocument])] = [:]
        for document in documents {
            for (key, label) in values(of: document) {
                if groups[key] == nil {
                    order.append(key)
                    groups[key] = (label, [])
                }
                groups[key]!.documents.append(document)
            }
        }
        var entries = order.map { (key: $0, label: groups[$0]!.label, documents: groups[$0]!.documents) }
            .filter { $0.documents.count >= minDocCount }
        let (sortKey, ascending) = Self.sortOrder(sort)
        entries.sort { left, right in
            if sortKey == "label" {
                return ascending ? left.key < right.key : left.key > right.key
            }
            if left.documents.count != right.documents.count {
                return ascending ? left.documents.count < right.documents.count : left.documents.count > right.documents.count
            }
            return left.key < right.key
        }
        let kept = entries.prefix(size)
        let other = entries.dropFirst(size).reduce(0) { $0 + $1.documents.count }
        return (kept.map { ($0.label, [], $0.documents) }, other)
    }

    /// The distinct values of the terms field in `document`, as (sort key, label).
    private func values(of document: ScanDocument) -> [(String, JSONValue)] {
        func distinct(_ values: [String]) -> [(String, JSONValue)] {
            var seen = Set<String>()
            return values.filter { seen.insert($0).inserted }.map { ($0, .string($0)) }
        }
        switch field {
        case "status": return [(document.status, .string(document.status))]
        case "cid": return [(document.cid, .string(document.cid))]
        case "id": return [(document.id, .string(document.id))]
        case "samples.verdict": return distinct(document.verdicts)
        case "samples.sha256": return distinct(document.sha256s)
        case "samples_count":
            let count = document.sha256s.count
            return [(Self.paddedNumber(count), .int(count))]
        case "created_timestamp":
            let text = Timestamp.format(epochSeconds: document.createdAt)
            return [(text, .string(text))]
        default: return []
        }
    }

    /// `count|desc` (default), `count.asc`, `_count|asc`, `label|asc`, `_term.desc`, `key|asc`...
    private static func sortOrder(_ sort: String?) -> (String, Bool) {
        guard let sort, !sort.isEmpty else { return ("count", false) }
        let parts = sort.split(whereSeparator: { $0 == "|" || $0 == "." }).map { $0.lowercased() }
        let key = ["label", "_term", "key", "_key", "term"].contains(parts.first ?? "") ? "label" : "count"
        let ascending = parts.count > 1 ? parts[1] == "asc" : key == "label"
        return (key, ascending)
    }

    /// Zero-padded so numeric terms sort as numbers.
    private static func paddedNumber(_ value: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, 12 - text.count)) + text
    }

    private static func formatNumber(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
    }
}
