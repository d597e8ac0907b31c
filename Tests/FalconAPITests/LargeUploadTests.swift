import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

/// Peak resident memory of this process in bytes (VmHWM), after resetting it when possible.
func peakRSS() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first
        return kb.map { $0 * 1024 }
    }
    return nil
}

func currentRSS() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
    }
    return nil
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs).
func resetPeakRSS() -> Bool {
    FileManager.default.createFile(atPath: "/proc/self/clear_refs", contents: Data("5".utf8))
}

@Suite(.serialized, .timeLimit(.minutes(5)))
struct LargeUploadTests {
    static let limit = 256 * 1024 * 1024

    @Test func a256MiBUploadStreamsWithBoundedMemory() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.url.appendingPathComponent("big.bin").path
        // Non-zero, non-repeating-at-boundaries content: a 1 MiB pattern written 256 times.
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for i in block.indices { block[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for i in 0..<256 {
            block[0] = UInt8(i)
            try handle.write(contentsOf: block)
        }
        try handle.close()
        let expected = try await runProcess("/usr/bin/sha256sum", [path]).stdout.prefix(64)

        try await withClient { client, emulator in
            _ = try await client.quota()
            let canMeasure = resetPeakRSS()
            let baseline = currentRSS() ?? 0
            let result = try await client.uploadSample(path: path, expectedSHA256: String(expected))
            #expect(result.sha256 == String(expected))
            #expect(result.size == Int64(Self.limit))
            if canMeasure, let peak = peakRSS() {
                // Client and emulator share this process; neither may hold the file.
                let growth = peak - baseline
                #expect(growth < 64 * 1024 * 1024, "peak RSS grew by \(growth / 1_048_576) MiB")
            }
            #expect(emulator.stats.uploads == 1)
        }
    }

    @Test func overTheLimitIsRefusedBeforeSending() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.url.appendingPathComponent("huge.bin").path
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(Self.limit + 1))  // sparse
        try handle.close()
        try await withClient { client, emulator in
            do {
                _ = try await client.uploadSample(path: path)
                Issue.record("expected refusal")
            } catch let thrown {
                let error = try #require((thrown as Any) as? FalconError)
                #expect(error.kind == .localFile)
                #expect(error.message.contains("huge.bin"))
                #expect(error.message.contains("\(Self.limit)"))
            }
            #expect(!emulator.recorded.contains { $0.path.hasPrefix("/samples") })
        }
    }
}
