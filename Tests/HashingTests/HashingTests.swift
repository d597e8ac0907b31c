import Foundation
import Synchronization
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

    /// Every result handed back is released with the array: `ParallelMap` once deallocated its
    /// slots without deinitializing them, which leaked each digest's hex string (heaptrack:
    /// 11.6 MB over 100,000 files).
    @Test func parallelMapReleasesEveryResult() {
        let live = LiveCount()
        do {
            let results = ParallelMap.map(count: 1000, threads: 4, makeWorker: { () }) { _, index in Tracked(live, index) }
            #expect(results.map(\.index) == Array(0..<1000))
            #expect(live.value == 1000)
        }
        #expect(live.value == 0)
    }

    @Test func parallelHashKeepsInputOrderAndReportsEachFailure() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quickscan-parallel-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var paths: [String] = []
        for i in 0..<300 {
            let path = "\(dir)/f\(i)"
            if i % 50 != 7 { FileManager.default.createFile(atPath: path, contents: Data("file \(i)".utf8)) }
            paths.append(path)
        }
        let results = ParallelHasher.hash(paths: paths, threads: 3)
        #expect(results.count == 300)
        for (i, result) in results.enumerated() {
            switch result {
            case .success(let digest): #expect(i % 50 != 7 && digest.sha256 == SHA256Hasher.hash(Array("file \(i)".utf8)))
            case .failure(let error): #expect(i % 50 == 7 && error.errno == ENOENT)
            }
        }
    }
}

private final class LiveCount: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add(_ delta: Int) { count.withLock { $0 += delta } }
}

private final class Tracked: Sendable {
    let live: LiveCount
    let index: Int
    init(_ live: LiveCount, _ index: Int) {
        self.live = live
        self.index = index
        live.add(1)
    }
    deinit { live.add(-1) }
}
