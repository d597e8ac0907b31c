import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

/// Runs the built `quickscan` binary against the emulator, as a user would.
@Suite(.timeLimit(.minutes(3)))
struct CommandLineTests {
    func env(_ emulator: FalconEmulator) -> [String: String] {
        ["FALCON_CLIENT_ID": testCredentials.clientID, "FALCON_CLIENT_SECRET": testCredentials.clientSecret, "FALCON_BASE_URL": emulator.baseURL]
    }

    func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [String: Any])
    }

    @Test func everyAPICommandAgainstTheEmulator() async throws {
        let bin = quickscanExecutable()
        let dir = try TemporaryDirectory()
        let eicar = try dir.write("eicar.com", SampleContent.eicar)
        let clean = try dir.write("notes with space.ps1", "just notes")
        try await withEmulator({ $0.quotaTotal = 77; $0.scanPollsUntilDone = 0 }) { emulator in
            let env = env(emulator)
            let quota = try await runProcess(bin, ["quota"], environment: env)
            #expect(quota.status == 0, "\(quota.stderr)")
            #expect(quota.stdout.contains("77"))

            let upload = try await runProcess(bin, ["upload", eicar, clean], environment: env)
            #expect(upload.status == 0, "\(upload.stderr)")
            let shas = upload.stdout.split(separator: "\n").dropFirst().map { String($0.prefix(64)) }
            #expect(shas.count == 2)

            let scan = try await runProcess(bin, ["scan-samples"] + shas, environment: env)
            #expect(scan.status == 0, "\(scan.stderr)")
            let scanID = scan.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(scanID.contains("_"))

            let scans = try await runProcess(bin, ["scans", scanID], environment: env)
            #expect(scans.status == 0)
            #expect(scans.stdout.contains("malware"))
            #expect(scans.stdout.contains("no specific threat"))

            let scansJSON = try await runProcess(bin, ["scans", scanID, "--json"], environment: env)
            let reply = try json(scansJSON.stdout)
            #expect((reply["resources"] as? [Any])?.count == 1)

            let subs = try await runProcess(bin, ["submissions", "--filter", "created_timestamp:>'2000-01-01T00:00:00Z'+status:'done'", "--limit", "10", "--sort", "desc"], environment: env)
            #expect(subs.status == 0, "\(subs.stderr)")
            #expect(subs.stdout.contains(scanID))

            let terms = try await runProcess(bin, ["aggregates", "--type", "terms", "--field", "status", "--name", "s"], environment: env)
            #expect(terms.status == 0, "\(terms.stderr)")
            #expect(terms.stdout.contains("done"))

            let body = try await runProcess(bin, ["aggregates", "--json", "--body", #"{"type":"date_range","field":"created_timestamp","name":"d","date_ranges":[{"from":"2000-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}]}"#], environment: env)
            #expect(body.status == 0, "\(body.stderr)")
            #expect(try json(body.stdout)["resources"] != nil)

            let nested = try await runProcess(bin, ["aggregates", "--type", "terms", "--field", "status", "--sub-aggregate", #"{"type":"terms","field":"samples.verdict","name":"v"}"#], environment: env)
            #expect(nested.status == 0, "\(nested.stderr)")
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
            #expect(emulator.stats.revokes >= 8, "each command revokes its token")
        }
    }

    @Test func everyQuickScanProCommandAgainstTheEmulator() async throws {
        let bin = quickscanExecutable()
        let dir = try TemporaryDirectory()
        let eicar = try dir.write("eicar.com", SampleContent.eicar)
        let clean = try dir.write("notes with space.txt", "just notes")
        try await withEmulator({ $0.scanPollsUntilDone = 0 }) { emulator in
            let env = env(emulator)
            let upload = try await runProcess(bin, ["pro", "upload", eicar, clean], environment: env)
            #expect(upload.status == 0, "\(upload.stderr)")
            let shas = upload.stdout.split(separator: "\n").dropFirst().map { String($0.prefix(64)) }
            #expect(shas.count == 2)

            let launch = try await runProcess(bin, ["pro", "launch"] + shas, environment: env)
            #expect(launch.status == 0, "\(launch.stderr)")
            let ids = launch.stdout.split(separator: "\n").dropFirst().map { String($0.prefix(32)) }
            #expect(ids.count == 2)

            let scanned = try await runProcess(bin, ["pro", "upload", "--scan", "--json", eicar], environment: env)
            #expect(scanned.status == 0, "\(scanned.stderr)")
            let uploadReply = try json(scanned.stdout)
            #expect(((uploadReply["resources"] as? [[String: Any]])?.first?["scan_id"] as? String)?.count == 32)

            let results = try await runProcess(bin, ["pro", "results"] + ids, environment: env)
            #expect(results.status == 0, "\(results.stderr)")
            #expect(results.stdout.contains("malicious"))
            #expect(results.stdout.contains("clean"))
            let resultsJSON = try await runProcess(bin, ["pro", "results", "--json"] + ids, environment: env)
            #expect((try json(resultsJSON.stdout)["resources"] as? [Any])?.count == 2)

            let query = try await runProcess(bin, ["pro", "query", "--sha256", shas[0], "--sort", "asc", "--limit", "10"], environment: env)
            #expect(query.status == 0, "\(query.stderr)")
            #expect(query.stdout.split(separator: "\n").count == 2, "two scans of the EICAR file")
            #expect(query.stdout.contains(ids[0]))

            let deleteScan = try await runProcess(bin, ["pro", "delete-scan", ids[1]], environment: env)
            #expect(deleteScan.status == 0, "\(deleteScan.stderr)")
            #expect(deleteScan.stdout.contains(ids[1]))
            let deleteFile = try await runProcess(bin, ["pro", "delete-file", "--json"] + shas, environment: env)
            #expect(deleteFile.status == 0, "\(deleteFile.stderr)")
            #expect((try json(deleteFile.stdout)["resources"] as? [String]) == shas)
            #expect(emulator.violations.isEmpty, "\(emulator.violations)")
        }
    }

    @Test func missingCredentialIsOneLineAndExit3() async throws {
        let result = try await runProcess(quickscanExecutable(), ["quota"], environment: ["FALCON_CLIENT_SECRET": "x"])
        #expect(result.status == 3)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("FALCON_CLIENT_ID"))
    }

    @Test func unreachableHostIsOneLineAndExit3() async throws {
        let result = try await runProcess(quickscanExecutable(), ["quota", "--base-url", "http://127.0.0.1:9"], environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b"])
        #expect(result.status == 3)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:9"))
    }

    @Test func refusedCredentialsExit3WithoutTheSecret() async throws {
        try await withEmulator({ $0.credentials = ["someone": "else"] }) { emulator in
            let result = try await runProcess(quickscanExecutable(), ["quota"], environment: env(emulator))
            #expect(result.status == 3)
            #expect(result.stderr.contains("access denied"))
            #expect(!result.stderr.contains(testCredentials.clientSecret))
        }
    }

    @Test func hashMatchesSha256sum() async throws {
        let dir = try TemporaryDirectory()
        let a = try dir.write("a b.txt", "alpha")
        let b = try dir.write("b.bin", [0, 1, 2, 255])
        let ours = try await runProcess(quickscanExecutable(), ["hash", a, b])
        let theirs = try await runProcess("/usr/bin/sha256sum", [a, b])
        #expect(ours.status == 0)
        #expect(ours.stdout == theirs.stdout)
    }

    @Test func emulatorPrintsItsAddressFirst() async throws {
        let box = ProcessBox()
        let first = try await onDedicatedThread { () throws -> String in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: quickscanExecutable())
            process.arguments = ["emulator", "--port", "0"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            box.process = process
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            return String(decoding: line, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        }
        #expect(first.wholeMatch(of: /listening on http:\/\/127\.0\.0\.1:[0-9]+/) != nil, "\(first)")
        let url = String(first.dropFirst("listening on ".count))
        let result = try await runProcess(quickscanExecutable(), ["quota", "--json"], environment: ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b", "FALCON_BASE_URL": url])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try json(result.stdout)["meta"] != nil)
        // SIGTERM stops it gracefully with exit 0.
        let status = try await onDedicatedThread { () -> Int32 in
            guard let process = box.process else { return -1 }
            process.terminate()
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 0)
    }
}

/// Hands a child process between threads (tests only).
final class ProcessBox: @unchecked Sendable {
    var process: Process?
}
