import ArgumentParser
import Foundation
import Hashing

/// `quickscan hash PATH...`: sha256sum-compatible digests from the pipeline's hasher.
struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash", abstract: "Print SHA-256 digests in sha256sum format (the pipeline's hasher).",
        discussion: "Exit 1 when a file could not be read (the others are still printed).")

    @Argument(help: "Files to hash.")
    var paths: [String]

    func run() throws {
        let hasher = FileHasher()
        var failed = false
        for path in paths {
            do {
                let digest = try hasher.hashFile(atPath: path, followSymlinks: true)
                // sha256sum escapes names holding a backslash or newline and marks the line with "\".
                if path.contains("\\") || path.contains("\n") {
                    let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
                    print("\\\(digest.sha256)  \(escaped)")
                } else {
                    print("\(digest.sha256)  \(path)")
                }
            } catch {
                failed = true
                printError("\(error)")
            }
        }
        if failed { throw ExitCode(1) }
    }
}
