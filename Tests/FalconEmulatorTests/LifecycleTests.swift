import FalconEmulator
import Logging
import ServiceLifecycle
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(1)))
struct LifecycleTests {
    static var quietLogger: Logger {
        var logger = Logger(label: "falcon-emulator.test")
        logger.logLevel = .error
        return logger
    }

    @Test func startReportsTheEphemeralPortAndShutdownIsIdempotent() async throws {
        let emulator = FalconEmulator(configuration: EmulatorConfiguration(), logger: Self.quietLogger)
        #expect(emulator.port == 0)
        try await emulator.start()
        try await emulator.start()  // already listening: no-op
        #expect(emulator.port > 0)
        #expect(emulator.baseURL == "http://127.0.0.1:\(emulator.port)")
        await emulator.shutdown()
        await emulator.shutdown()
    }

    @Test func aTakenPortIsAnError() async throws {
        try await withEmulator { first in
            var configuration = EmulatorConfiguration()
            configuration.port = first.port
            let second = FalconEmulator(configuration: configuration, logger: Self.quietLogger)
            await #expect(throws: EmulatorError.self) { try await second.start() }
        }
    }

    @Test func runsAsAServiceUntilGracefulShutdown() async throws {
        let emulator = FalconEmulator(configuration: EmulatorConfiguration(), logger: Self.quietLogger)
        try await emulator.start()
        let group = ServiceGroup(configuration: .init(services: [emulator], logger: Self.quietLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(emulator.port > 0)
    }
}
