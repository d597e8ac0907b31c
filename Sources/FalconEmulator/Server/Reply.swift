/// What a handler answers.
struct Reply: Sendable {
    /// The reply body and how it is encoded.
    enum Body: Sendable {
        case envelope(Envelope)
        /// A bare JSON document (the token response is not an envelope).
        case json(JSONValue)
        case bytes([UInt8], contentType: String)
        /// A non-JSON error page, sent without the Falcon headers.
        case html(String)
    }

    var status: Int
    var body: Body
    var headers: [(name: String, value: String)] = []

    /// `msa.ReplyMetaOnly` with one error.
    static func metaOnly(_ status: Int, _ message: String, poweredBy: String, quota: Bool = false) -> Reply {
        Reply(status: status, body: .envelope(Envelope(
            poweredBy: poweredBy, errors: [APIError(code: status, message: message)], includesQuota: quota
        )))
    }

    /// A 200 envelope with `resources`.
    static func resources(_ resources: [JSONValue], poweredBy: String, quota: Bool = false, pagination: JSONValue? = nil) -> Reply {
        Reply(status: 200, body: .envelope(Envelope(
            poweredBy: poweredBy, resources: resources, includesQuota: quota, pagination: pagination
        )))
    }
}
