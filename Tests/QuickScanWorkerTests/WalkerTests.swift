import Foundation
import QuickScanWorker
import Testing
import TestSupport

@Suite struct WalkerTests {
    /// A tree of nested folders, walked on one thread and on several: the same entries in the
    /// same order, every file found once, ignored names and excluded folders left out.
    @Test func walkIsCompleteAndItsOrderDoesNotDependOnThreads() throws {
        let dir = try TemporaryDirectory(prefix: "quickscan-walker")
        var expected: Set<String> = []
        for a in 0..<6 {
            for b in 0..<4 {
                for c in 0..<3 {
                    expected.insert(try dir.write("inbox/a\(a)/b\(b)/f\(c).txt", "\(a)\(b)\(c)"))
                }
                expected.insert(try dir.write("inbox/a\(a)/g\(b).txt", "\(a)\(b)"))
            }
        }
        expected.insert(try dir.write("inbox/top.txt", "top"))
        try dir.write("inbox/.hidden", "h")
        try dir.write("inbox/a1/partial.part", "p")
        try dir.write("inbox/clean/filed.txt", "already filed")
        let inbox = InboxConfiguration(path: dir.path + "/inbox")
        let skip: Set<FileNode> = [try #require(FileStat.of(dir.path + "/inbox/clean")).node]

        let one = DirectoryWalker(threads: 1).walk(inbox, excludingDirectories: skip)
        let four = DirectoryWalker(threads: 4).walk(inbox, excludingDirectories: skip)
        #expect(one.errors.isEmpty && four.errors.isEmpty)
        #expect(one.entries.map(\.path) == four.entries.map(\.path))
        #expect(one.entries.count == expected.count)
        #expect(Set(four.entries.map(\.path)) == expected)
        #expect(four.entries.allSatisfy { $0.inbox == dir.path + "/inbox" && $0.stat.kind == .regular })
    }

    /// Each folder is handed over as its depth is read; an unreadable folder is reported, not fatal.
    @Test func visitsOneDepthAtATimeAndReportsAFolderItCannotRead() throws {
        let dir = try TemporaryDirectory(prefix: "quickscan-walker")
        try dir.write("inbox/one.txt", "1")
        try dir.write("inbox/x/two.txt", "2")
        try dir.write("inbox/x/y/three.txt", "3")
        let missing = dir.path + "/inbox/gone"
        var batches: [[String]] = []
        var hints: [Int] = []
        let errors = DirectoryWalker(threads: 2).walk(InboxConfiguration(path: dir.path + "/inbox")) { entries, remaining in
            batches.append(entries.map { String($0.path.dropFirst(dir.path.count + 7)) })
            hints.append(remaining)
        }
        #expect(batches == [["one.txt"], ["x/two.txt"], ["x/y/three.txt"]])
        #expect(hints == [1, 1, 1])
        #expect(errors.isEmpty)
        let lost = DirectoryWalker(threads: 2).walk(InboxConfiguration(path: missing))
        #expect(lost.entries.isEmpty)
        #expect(lost.errors == ["cannot read folder \(missing): No such file or directory"])
    }
}
