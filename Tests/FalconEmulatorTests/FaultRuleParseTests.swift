import FalconEmulator
import Testing

struct FaultRuleParseTests {
    @Test(arguments: [
        "429:retry-after=2,count=3,op=ScanSamples",
        "5xx:status=503,every=4",
        "html502:count=2",
        "drop:probability=0.1,seed=7",
        "lost-response:op=ScanSamples,count=1",
        "latency:ms=50",
        "expire-tokens:op=GetScans,skip=2,count=1",
        "5xx:status=500,path=/scanner/,method=GET",
    ])
    func roundTrips(spec: String) throws {
        let rule = try FaultRule.parse(spec)
        #expect(try FaultRule.parse(rule.description) == rule)
        #expect(try FaultRule.parse(rule.description).description == rule.description)
        // Canonical order: kind parameter, op, path, method, skip, count, every, probability, seed.
        #expect(Set(rule.description.split(separator: ",")) == Set(spec.split(separator: ",")))
    }

    @Test func readsTheFields() throws {
        let rule = try FaultRule.parse("429:retry-after=2,count=3,op=scansamples")
        #expect(rule.kind == .rateLimit(retryAfterSeconds: 2))
        #expect(rule.count == 3)
        #expect(rule.operation == .scanSamples)
        #expect(try FaultRule.parse("502").kind == .serverError(status: 502))
        #expect(try FaultRule.parse("drop").kind == .dropConnection)
        #expect(try FaultRule.parse("429").kind == .rateLimit(retryAfterSeconds: 1))
        #expect(try FaultRule.parse("drop:p=0.25").probability == 0.25)
    }

    @Test(arguments: [
        ("teapot:count=1", "teapot"),
        ("429:retry-after=soon", "retry-after=soon"),
        ("5xx:status=404", "status=404"),
        ("drop:op=Nope", "op=Nope"),
        ("latency", "latency"),
        ("drop:probability=2", "probability=2"),
        ("drop:count", "count"),
        ("html502:ms=5", "ms=5"),
        ("drop:every=0", "every=0"),
        ("drop:count=1,count=2", "count=2"),
        ("", ""),
    ])
    func rejectsBadSpecsNamingThePart(spec: String, part: String) {
        #expect {
            try FaultRule.parse(spec)
        } throws: { error in
            guard let error = error as? FaultSpecError else { return false }
            return error.part == part && error.description.contains("\"\(part)\"")
        }
    }
}
