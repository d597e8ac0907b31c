import ArgumentParser
import Foundation
import Hashing

/// `quickscan hash PATH...`: sha256sum-compatible digests from the pipeline's hasher.
struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash", abstract: "Print SHA-256 digests in sha256sum format (the pipeline's hasher).",
        discussion: "Files are hashed on --threads threads (default: the number of cores); lines come in argument order. Exit codes: 0 success, 1 when a file could not be read (the others are still printed).")

    @Argument(help: "Files to hash.")
    var paths: [String]

    @Option(help: "Hashing threads (default: the number of cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    /// The same command parsed by hand for the common shapes (`hash [--threads N] [--] PATH...`);
    /// nil for anything else (help, bad flags), which then goes through the argument parser.
    static func fastParse(_ arguments: [String]) -> (paths: [String], threads: Int)? {
        var command = (paths: [String](), threads: ProcessInfo.processInfo.activeProcessorCount)
        command.paths.reserveCapacity(arguments.count)
        var index = 0
        var onlyPaths = false
        while index < arguments.count {
            let argument = arguments[index]
            if !onlyPaths && argument.hasPrefix("-") && argument != "-" {
                if argument == "--" {
                    onlyPaths = true
                } else if argument == "--threads", index + 1 < arguments.count, let n = Int(arguments[index + 1]), n >= 1 {
                    command.threads = n
                    index += 1
                } else {
                    return nil
                }
            } else {
                command.paths.append(argument)
            }
            index += 1
        }
        return command.paths.isEmpty ? nil : command
    }

    func run() throws {
        try Self.hashAndPrint(paths: paths, threads: threads)
    }

    /// Hashes `paths` and prints sha256sum lines in argument order; exit 1 if any failed.
    static func hashAndPrint(paths: [String], threads: Int) throws {
        let results = ParallelHasher.hash(paths: paths, threads: threads)
        var out = ""
        out.reserveCapacity(paths.count * 100)
        var failed = false
        for (path, result) in zip(paths, results) {
            switch result {
            case .success(let digest):
                // sha256sum escapes names holding a backslash or newline and marks the line with "\\".
                if path.contains("\\") || path.contains("\n") {
                    let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
                    out += "\\\(digest.sha256)  \(escaped)\n"
                } else {
                    out += "\(digest.sha256)  \(path)\n"
                }
            case .failure(let error):
                failed = true
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
                printError("\(error)")
            }
            if out.utf8.count > 1 << 16 {
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
        if failed { throw ExitCode(1) }
    }
}
