#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Line output for `quickscan emulator`: flushed at once, so a parent process reading a pipe
/// sees the `listening on` line before the server has served anything.
public enum StandardOutput {
    /// Prints `line` and a newline to stdout and flushes it.
    public static func writeLine(_ line: String) {
        print(line)
        // fflush(NULL) flushes every stream; naming `stdout` is not concurrency-safe in Swift 6.
        fflush(nil)
    }
}
