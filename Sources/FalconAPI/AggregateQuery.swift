/// The body of GetScansAggregates: one `msa.AggregateQueryRequest` object (reference §5.4).
///
/// Every field of the swagger is here; nil fields are not sent. `ranges` use the capitalised
/// `From`/`To` keys the swagger defines.
public struct AggregateQuery: Codable, Sendable, Equatable {
    /// One `{from, to}` date range (`msa.DateRangeSpec`).
    public struct DateRange: Codable, Sendable, Equatable {
        public var from: String
        public var to: String
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
    }

    /// One numeric range; the wire keys are `From` and `To` (`msa.RangeSpec`).
    public struct Range: Codable, Sendable, Equatable {
        public var from: Double?
        public var to: Double?
        public init(from: Double?, to: Double?) {
            self.from = from
            self.to = to
        }
        enum CodingKeys: String, CodingKey {
            case from = "From"
            case to = "To"
        }
    }

    /// `extended_bounds` (`msa.ExtendedBoundsSpec`).
    public struct ExtendedBounds: Codable, Sendable, Equatable {
        public var min: String?
        public var max: String?
        public init(min: String?, max: String?) {
            self.min = min
            self.max = max
        }
    }

    public var dateRanges: [DateRange]?
    public var exclude: String?
    public var extendedBounds: ExtendedBounds?
    public var field: String?
    public var filter: String?
    public var filtersSpec: JSONValue?
    public var from: Int?
    public var include: String?
    public var interval: String?
    public var maxDocCount: Int?
    public var minDocCount: Int?
    public var missing: String?
    public var name: String?
    public var percents: [Double]?
    public var q: String?
    public var ranges: [Range]?
    public var size: Int?
    public var sort: String?
    public var subAggregates: [AggregateQuery]?
    public var timeZone: String?
    public var type: String?

    public init(type: String? = nil, field: String? = nil, name: String? = nil) {
        self.type = type
        self.field = field
        self.name = name
    }

    enum CodingKeys: String, CodingKey {
        case dateRanges = "date_ranges"
        case exclude
        case extendedBounds = "extended_bounds"
        case field, filter
        case filtersSpec = "filters_spec"
        case from, include, interval
        case maxDocCount = "max_doc_count"
        case minDocCount = "min_doc_count"
        case missing, name, percents, q, ranges, size, sort
        case subAggregates = "sub_aggregates"
        case timeZone = "time_zone"
        case type
    }

    /// Depth of nested `sub_aggregates` (1 = none).
    public var depth: Int { 1 + (subAggregates?.map(\.depth).max() ?? 0) }
}

/// One aggregation of a GetScansAggregates reply (`msa.AggregationResult`, lenient).
public struct AggregationResult: Codable, Sendable, Equatable {
    public var name: String
    public var buckets: [AggregationBucket]
    public var docCountErrorUpperBound: Int?
    public var sumOtherDocCount: Int?

    enum CodingKeys: String, CodingKey {
        case name, buckets
        case docCountErrorUpperBound = "doc_count_error_upper_bound"
        case sumOtherDocCount = "sum_other_doc_count"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = ((try? c.decodeIfPresent(String.self, forKey: .name)) ?? nil) ?? ""
        buckets = ((try? c.decodeIfPresent([AggregationBucket].self, forKey: .buckets)) ?? nil) ?? []
        docCountErrorUpperBound = c.lenientInt(.docCountErrorUpperBound)
        sumOtherDocCount = c.lenientInt(.sumOtherDocCount)
    }
}

/// One bucket (`msa.AggregationResultItem`): a label, a count, optional bounds and sub-aggregations.
public struct AggregationBucket: Codable, Sendable, Equatable {
    public var label: JSONValue?
    public var count: Int
    public var from: Double?
    public var to: Double?
    public var keyAsString: String?
    public var stringFrom: String?
    public var stringTo: String?
    public var value: Double?
    public var subAggregates: [AggregationResult]

    enum CodingKeys: String, CodingKey {
        case label, count, from, to, value
        case keyAsString = "key_as_string"
        case stringFrom = "string_from"
        case stringTo = "string_to"
        case subAggregates = "sub_aggregates"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        label = (try? c.decodeIfPresent(JSONValue.self, forKey: .label)) ?? nil
        count = c.lenientInt(.count) ?? 0
        from = (try? c.decodeIfPresent(Double.self, forKey: .from)) ?? nil
        to = (try? c.decodeIfPresent(Double.self, forKey: .to)) ?? nil
        keyAsString = (try? c.decodeIfPresent(String.self, forKey: .keyAsString)) ?? nil
        stringFrom = (try? c.decodeIfPresent(String.self, forKey: .stringFrom)) ?? nil
        stringTo = (try? c.decodeIfPresent(String.self, forKey: .stringTo)) ?? nil
        value = (try? c.decodeIfPresent(Double.self, forKey: .value)) ?? nil
        subAggregates = ((try? c.decodeIfPresent([AggregationResult].self, forKey: .subAggregates)) ?? nil) ?? []
    }
}
