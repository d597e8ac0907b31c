import FalconEmulator
import Testing

@Suite(.timeLimit(.minutes(1)))
struct AggregatesTests {
    @Test func termsWithSubAggregates() async throws {
        try await withFalcon({ $0.scanPollsUntilDone = 0 }) { emulator, falcon in
            let token = try await falcon.token()
            let eicar = try await falcon.upload(Samples.eicar, token: token)
            let clean = try await falcon.upload(Samples.clean(), token: token)
            _ = try await falcon.scan([eicar, clean], token: token)
            _ = try await falcon.scan([clean], token: token)
            let response = try await falcon.aggregate("""
                {"name":"by_status","type":"terms","field":"status","size":10,
                 "sub_aggregates":[{"name":"verdicts","type":"terms","field":"samples.verdict"}]}
                """, token: token)
            #expect(response.status == 200, "\(response.text)")
            let body = try response.json()
            #expect(body["meta"]["quota"]["used"].int == 3)
            let result = body["resources"][0]
            #expect(result["name"].string == "by_status")
            #expect(result["sum_other_doc_count"].int == 0)
            #expect(result["doc_count_error_upper_bound"].int == 0)
            let bucket = result["buckets"][0]
            #expect(bucket["label"].string == "done")
            #expect(bucket["count"].int == 2)
            let verdicts = bucket["sub_aggregates"][0]
            #expect(verdicts["name"].string == "verdicts")
            #expect(verdicts["buckets"][0]["label"].string == "no specific threat")
            #expect(verdicts["buckets"][0]["count"].int == 2)
            #expect(verdicts["buckets"][1]["label"].string == "malware")
            #expect(verdicts["buckets"][1]["count"].int == 1)
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test func dateRangesAndNumberRanges() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            _ = try await falcon.scan([try await falcon.upload(Samples.clean(), token: token)], token: token)
            let response = try await falcon.aggregate("""
                {"name":"when","type":"date_range","field":"created_timestamp",
                 "date_ranges":[{"from":"2000-01-01T00:00:00Z","to":"2001-01-01T00:00:00Z"},{"from":"now-1d","to":"now+1d"}],
                 "sub_aggregates":[{"name":"sizes","type":"range","field":"samples_count","ranges":[{"From":0,"To":2},{"From":2}]}]}
                """, token: token)
            #expect(response.status == 200, "\(response.text)")
            let buckets = try response.json()["resources"][0]["buckets"].array
            #expect(buckets.count == 2)
            #expect(buckets[0]["count"].int == 0)
            #expect(buckets[0]["from"].double == 946_684_800_000)
            #expect(buckets[0]["key_as_string"].string == "2000-01-01T00:00:00.000Z-2001-01-01T00:00:00.000Z")
            #expect(buckets[1]["count"].int == 1)
            let sizes = buckets[1]["sub_aggregates"][0]["buckets"].array
            #expect(sizes.map { $0["count"].int } == [1, 0])
            #expect(sizes.map { $0["label"].string } == ["0-2", "2-*"])
            #expect(emulator.violations.isEmpty)
        }
    }

    @Test(arguments: [
        #"{"type":"range","field":"samples_count","ranges":[{"from":0,"to":5}]}"#,
        #"[{"type":"terms","field":"status"}]"#,
        #"{"type":"terms","field":"status","colour":"red"}"#,
        #"{"type":"date_range","field":"created_timestamp","date_ranges":[{"From":"now-1d"}]}"#,
        #"{"type":"terms","field":"status","size":"10"}"#,
        #"{"type":"terms","field":"status","sub_aggregates":[null]}"#,
    ])
    func wireDeviationsAreRejected(body: String) async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.aggregate(body, token: token)
            #expect(response.status == 400)
            #expect(try response.json()["errors"][0]["code"].int == 400)
            #expect(emulator.violations.count == 1)
        }
    }

    @Test func lowercaseRangeKeysAreNamed() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.aggregate(
                #"{"type":"range","field":"samples_count","ranges":[{"from":0,"to":5}]}"#, token: token
            )
            let message = try #require(try response.json()["errors"][0]["message"].string)
            #expect(message.contains("'From'"))
            #expect(emulator.violations.first?.contains("ranges[0]") == true)
        }
    }

    @Test func unsupportedTypeIsRefusedWithoutViolation() async throws {
        try await withFalcon { emulator, falcon in
            let token = try await falcon.token()
            let response = try await falcon.aggregate(#"{"type":"percentiles","field":"status"}"#, token: token)
            #expect(response.status == 400)
            #expect(emulator.violations.isEmpty)
        }
    }
}
