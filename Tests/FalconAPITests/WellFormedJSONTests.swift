@testable import FalconAPI
import NIOHTTP1
import Testing

/// The check that decides whether a 2xx reply is read or retried as unreadable: every body
/// cut short or followed by something else fails it, every complete JSON value passes. (A
/// trailing comma passes: JSONDecoder, which reads the reply after this check, accepts it.)
struct WellFormedJSONTests {
    func reply(_ body: String, type: String? = "application/json") -> RawReply {
        RawReply(status: 200, headers: HTTPHeaders(type.map { [("Content-Type", $0)] } ?? []), body: Array(body.utf8))
    }

    static let complete = #"{"meta":{"trace_id":"t"},"resources":[{"id":"a_b","samples":[{"sha256":"x","verdict":"clean"}]}],"errors":[]}"#

    @Test func aCompleteDocumentIsWellFormed() {
        #expect(reply(Self.complete).isWellFormedJSON)
        #expect(reply("  \(Self.complete)\n").isWellFormedJSON)
        #expect(reply(#"["a", 1, null, true, {"k": [1.5e3, "\u00e9\n"]}]"#).isWellFormedJSON)
        #expect(reply("\"fragment\"").isWellFormedJSON)
        #expect(reply(Self.complete, type: nil).isWellFormedJSON, "no Content-Type, but the body starts like JSON")
    }

    @Test(arguments: Array(stride(from: 1, to: complete.utf8.count, by: 7)))
    func everyTruncationIsRefused(length: Int) {
        let cut = String(decoding: Array(Self.complete.utf8.prefix(length)), as: UTF8.self)
        #expect(!reply(cut).isWellFormedJSON, "\(cut)")
    }

    @Test func whatIsNotOneJSONValueIsRefused() {
        #expect(!reply("").isWellFormedJSON)
        #expect(!reply(Self.complete + "}").isWellFormedJSON, "trailing garbage")
        #expect(!reply(Self.complete + Self.complete).isWellFormedJSON, "two documents")
        #expect(!reply(#"{"a" 1}"#).isWellFormedJSON, "no colon")
        #expect(!reply(#"{"a": 1 "b": 2}"#).isWellFormedJSON, "no comma")
        #expect(!reply(#"{"a": "unterminated}"#).isWellFormedJSON)
        #expect(!reply(#"{"a": tru}"#).isWellFormedJSON)
        #expect(!reply("<html><title>Maintenance</title></html>", type: "text/html").isWellFormedJSON)
        #expect(!reply(Self.complete, type: "text/html").isWellFormedJSON, "an HTML reply is not read as JSON")
    }
}
