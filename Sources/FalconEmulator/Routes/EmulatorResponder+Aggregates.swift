/// GetScansAggregates (fact sheet §5.4).
extension EmulatorResponder {
    /// GetScansAggregates: one `msa.AggregateQueryRequest` → one `msa.AggregationResult` (§5.4).
    func getScansAggregates(_ exchange: inout Exchange) async throws -> Reply {
        state.withLock { $0.stats.aggregatesCalls += 1 }
        try exchange.requireQuery(within: [])
        let body = try await exchange.jsonBody()
        let query: AggregateQuery
        do {
            query = try AggregateQuery.parse(body, now: exchange.now)
        } catch {
            throw RequestRejection(status: 400, message: error.reason, isViolation: error.isViolation)
        }
        let result = state.withLock { state in
            query.evaluate(state.documents(now: exchange.now), now: exchange.now)
        }
        return Reply.resources([result], poweredBy: PoweredBy.scanner, quota: true)
    }
}
