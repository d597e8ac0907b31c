import FalconAPI
import Foundation
import Testing

@Suite struct UnitTests {
    @Test(arguments: [
        ("us-1", FalconCloud.us1), ("US1", .us1), ("us_2", .us2), ("EU-1", .eu1), ("us-gov-1", .usGov1),
        ("usgov2", .usGov2), ("auto", .auto),
    ])
    func cloudNames(name: String, cloud: FalconCloud) {
        #expect(FalconCloud(name: name) == cloud)
    }

    @Test func unknownCloudIsRejected() {
        #expect(FalconCloud(name: "mars-1") == nil)
        #expect(FalconCloud(regionHeader: "local-1") == nil)
        #expect(FalconCloud(regionHeader: "us-2") == .us2)
    }

    @Test func retryAfterSecondsAndMilliseconds() {
        #expect(parseRetryAfter("1764255600") == 1_764_255_600)
        #expect(parseRetryAfter("1764255600500") == 1_764_255_600.5)
        #expect(parseRetryAfter("soon") == nil)
        #expect(parseRetryAfter("-3") == nil)
    }

    @Test func backoffGrowsAndIsCapped() {
        let policy = RetryPolicy(baseDelay: 1, maxDelay: 8)
        #expect(policy.backoff(afterAttempt: 1, random: 1) == 1)
        #expect(policy.backoff(afterAttempt: 3, random: 1) == 4)
        #expect(policy.backoff(afterAttempt: 10, random: 1) == 8)
        #expect(policy.backoff(afterAttempt: 3, random: 0) == 2)
    }

    @Test func credentialsNeverPrintTheSecret() throws {
        let creds = FalconCredentials(clientID: "id", clientSecret: "very-secret-value")
        #expect(!"\(creds)".contains("very-secret-value"))
        #expect(!String(reflecting: creds).contains("very-secret-value"))
        #expect(throws: FalconError.self) { try FalconCredentials.fromEnvironment(["FALCON_CLIENT_ID": "x"]) }
        do {
            _ = try FalconCredentials.fromEnvironment([:])
        } catch {
            #expect(error.kind == .configuration)
            #expect(error.message.contains("FALCON_CLIENT_ID"))
        }
    }

    @Test func aggregateRangesUseCapitalisedKeys() throws {
        var query = AggregateQuery(type: "range", field: "x")
        query.ranges = [.init(from: 1, to: nil)]
        query.dateRanges = [.init(from: "a", to: "b")]
        query.subAggregates = [AggregateQuery(type: "terms", field: "y")]
        let json = String(decoding: try JSONEncoder().encode(query), as: UTF8.self)
        #expect(json.contains("\"From\":1"))
        #expect(!json.contains("\"To\""))
        #expect(json.contains("\"date_ranges\":[{\"from\":\"a\",\"to\":\"b\"}]") || json.contains("\"date_ranges\":[{\"to\":\"b\",\"from\":\"a\"}]"))
        #expect(json.contains("sub_aggregates"))
        #expect(!json.contains("null"))
    }

    @Test func lenientDecodingOfScans() throws {
        let body = #"{"meta":{"query_time":0.1,"quota":{"total":"10","used":2}},"resources":[{"id":"a_b","status":"RUNNING"},{"id":"c_d","status":"done","samples":[{"sha256":"ABC","verdict":"malware","extra":1}]}]}"#
        let decoded = try JSONDecoder().decode(TestEnvelope.self, from: Data(body.utf8))
        #expect(decoded.resources.count == 2)
        #expect(decoded.resources[0].isDone == false)
        #expect(decoded.resources[1].samples.first?.sha256 == "abc")
        #expect(decoded.meta.quota == QuickScanQuota(total: 10, used: 2, inProgress: 0))
    }

    struct TestEnvelope: Decodable {
        var meta: FalconMeta
        var resources: [ScanResult]
    }
}
