import ArgumentParser
import FalconAPI
import Foundation

/// `quickscan aggregates`: GetScansAggregates with every body field of the API.
struct AggregatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregates", abstract: "Aggregate scans (GetScansAggregates).",
        discussion: """
            Build the body from flags (--type and --field at least) or give it whole with \
            --body '{...}' or --body @file.json. Examples:
              quickscan aggregates --type terms --field status
              quickscan aggregates --type date_range --field created_timestamp --date-range 'now-7d,now'
              quickscan aggregates --type range --field samples_count --range ',10' --range '10,'
              quickscan aggregates --type terms --field status --sub-aggregate '{"type":"terms","field":"samples.verdict","name":"verdicts"}'

            """ + apiExitCodes)

    @Option(help: "Aggregation type, e.g. terms, date_range, range, date_histogram, cardinality.")
    var type: String?
    @Option(help: "Field to aggregate on.")
    var field: String?
    @Option(help: "Name of the aggregation in the reply.")
    var name: String?
    @Option(help: "FQL filter of the scans to aggregate.")
    var filter: String?
    @Option(help: "Free-text query (q).")
    var q: String?
    @Option(help: "Number of buckets.")
    var size: Int?
    @Option(help: "Sort of the buckets, e.g. count|desc.")
    var sort: String?
    @Option(help: "Interval of a date histogram, e.g. day.")
    var interval: String?
    @Option(help: "Smallest bucket count to return.")
    var minDocCount: Int?
    @Option(help: "Largest bucket count to return.")
    var maxDocCount: Int?
    @Option(help: "Value used for documents missing the field.")
    var missing: String?
    @Option(help: "Time zone, e.g. UTC.")
    var timeZone: String?
    @Option(help: "Offset of the first result (from).")
    var from: Int?
    @Option(help: "Include pattern for terms.")
    var include: String?
    @Option(help: "Exclude pattern for terms.")
    var exclude: String?
    @Option(help: "A date range FROM,TO (repeatable).")
    var dateRange: [String] = []
    @Option(help: "A numeric range FROM,TO; leave a side empty for open (repeatable). Sent with the API's From/To keys.")
    var range: [String] = []
    @Option(help: "A percentile (repeatable).")
    var percent: [Double] = []
    @Option(help: "extended_bounds as MIN,MAX.")
    var extendedBounds: String?
    @Option(help: "A sub-aggregation as a JSON object (repeatable; nesting up to 3 levels).")
    var subAggregate: [String] = []
    @Option(help: "The whole request body as JSON, or @FILE to read it from a file.")
    var body: String?

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        if body != nil {
            guard type == nil, field == nil else { throw ValidationError("give either --body or the body flags, not both") }
        } else {
            guard type != nil else { throw ValidationError("--type is required (or --body)") }
        }
        _ = try makeQuery()
    }

    /// The request body built from the flags.
    func makeQuery() throws -> AggregateQuery? {
        guard body == nil else { return nil }
        var query = AggregateQuery(type: type, field: field, name: name)
        query.filter = filter
        query.q = q
        query.size = size
        query.sort = sort
        query.interval = interval
        query.minDocCount = minDocCount
        query.maxDocCount = maxDocCount
        query.missing = missing
        query.timeZone = timeZone
        query.from = from
        query.include = include
        query.exclude = exclude
        if !dateRange.isEmpty {
            query.dateRanges = try dateRange.map { spec in
                let (a, b) = try Self.pair(spec, flag: "--date-range")
                guard let a, let b else { throw ValidationError("--date-range \(spec): give FROM,TO") }
                return AggregateQuery.DateRange(from: a, to: b)
            }
        }
        if !range.isEmpty {
            query.ranges = try range.map { spec in
                let (a, b) = try Self.pair(spec, flag: "--range")
                func number(_ s: String?) throws -> Double? {
                    guard let s else { return nil }
                    guard let d = Double(s) else { throw ValidationError("--range \(spec): \(s) is not a number") }
                    return d
                }
                return AggregateQuery.Range(from: try number(a), to: try number(b))
            }
        }
        if !percent.isEmpty { query.percents = percent }
        if let extendedBounds {
            let (a, b) = try Self.pair(extendedBounds, flag: "--extended-bounds")
            query.extendedBounds = .init(min: a, max: b)
        }
        if !subAggregate.isEmpty {
            query.subAggregates = try subAggregate.map { text in
                do {
                    return try JSONDecoder().decode(AggregateQuery.self, from: Data(text.utf8))
                } catch {
                    throw ValidationError("--sub-aggregate \(text) is not an aggregation object: \(error)")
                }
            }
        }
        guard query.depth <= 4 else { throw ValidationError("sub-aggregations nest at most 3 levels deep") }
        return query
    }

    static func pair(_ spec: String, flag: String) throws -> (String?, String?) {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2 else { throw ValidationError("\(flag) \(spec): give two values separated by a comma") }
        return (parts[0].isEmpty ? nil : parts[0], parts[1].isEmpty ? nil : parts[1])
    }

    func run() async throws {
        let query = try makeQuery()
        var rawBody: Data?
        if let body {
            if body.hasPrefix("@") {
                let path = String(body.dropFirst())
                guard let data = FileManager.default.contents(atPath: path) else {
                    printError("cannot read --body file \(path)")
                    throw ExitCode(1)
                }
                rawBody = data
            } else {
                rawBody = Data(body.utf8)
            }
            guard (try? JSONSerialization.jsonObject(with: rawBody!)) is [String: Any] else {
                printError("--body must be one JSON object (msa.AggregateQueryRequest)")
                throw ExitCode(1)
            }
        }
        try await falcon.withClient { client in
            let response: FalconResponse<AggregationResult>
            if let rawBody { response = try await client.getScansAggregates(body: rawBody) } else { response = try await client.getScansAggregates(query!) }
            if falcon.json { return printRawJSON(response.rawBody) }
            var table = TextTable("AGGREGATION", "BUCKET", "COUNT")
            func add(_ results: [AggregationResult], indent: String) {
                for result in results {
                    for bucket in result.buckets {
                        let label = bucket.keyAsString ?? bucket.label?.description ?? rangeLabel(bucket)
                        table.add(indent + result.name, label, "\(bucket.count)")
                        add(bucket.subAggregates, indent: indent + "  ")
                    }
                    if result.buckets.isEmpty { table.add(indent + result.name, "(no buckets)", "0") }
                }
            }
            add(response.resources, indent: "")
            print(table.render())
        }
    }

    func rangeLabel(_ bucket: AggregationBucket) -> String {
        let a = bucket.stringFrom ?? bucket.from.map { "\($0)" } ?? ""
        let b = bucket.stringTo ?? bucket.to.map { "\($0)" } ?? ""
        return "\(a)..\(b)"
    }
}
