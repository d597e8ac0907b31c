import Foundation
import Testing
@testable import Hashing

@Suite struct HashingTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ])
    func knownVectors(input: String, expected: String) {
        #expect(SHA256Hasher.hash(Array(input.utf8)) == expected)
    }

    @Test func incrementalMatchesOneShot() {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let hasher = SHA256Hasher()
        hasher.update(data[0..<777])
        hasher.update(data[777...])
        #expect(hasher.finalize() == SHA256Hasher.hash(data))
        // reusable after finalize
        hasher.update(Array("abc".utf8))
        #expect(hasher.finalize() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func fileHashMatchesAcrossChunkBoundaries() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = (0..<(3 * 4096 + 5)).map { UInt8(truncatingIfNeeded: $0) }
        let url = dir.appendingPathComponent("f.bin")
        try Data(data).write(to: url)
        let digest = try FileHasher(chunkSize: 4096).hashFile(atPath: url.path)
        #expect(digest == FileDigest(sha256: SHA256Hasher.hash(data), size: Int64(data.count)))
    }

    @Test func missingFileNamesThePath() {
        #expect {
            _ = try FileHasher().hashFile(atPath: "/nonexistent/quickscan-test")
        } throws: { error in
            "\(error)".contains("/nonexistent/quickscan-test")
        }
    }
}
