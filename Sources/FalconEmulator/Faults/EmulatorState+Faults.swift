/// Which faults a request gets.
struct FaultDecision: Sendable {
    /// Total delay from `latency` rules that fired.
    var latencyMilliseconds = 0
    /// The first other fault that fired.
    var fault: FaultRule.Kind?
    /// Names of everything applied, for the record.
    var applied: [String] = []
}

extension FaultRule.Kind {
    /// Latency and token expiry combine with any other fault on the same request.
    var isCombinable: Bool {
        switch self {
        case .latency, .expireTokens: return true
        default: return false
        }
    }
}

extension EmulatorState {
    /// Runs the fault rules in order for one request and applies `expire-tokens` at once.
    mutating func decideFaults(operation: FalconOperation?, path: String, method: String) -> FaultDecision {
        var decision = FaultDecision()
        for (index, rule) in configuration.faults.enumerated() where index < faultProgress.count {
            // Decided by the handler, which knows the samples (``refusedSample(among:operation:)``).
            if case .refuseSample = rule.kind { continue }
            guard rule.matches(operation: operation, path: path, method: method) else { continue }
            let eligible = rule.kind.isCombinable || decision.fault == nil
            guard faultProgress[index].fires(for: rule, eligible: eligible) else { continue }
            stats.faultsInjected[rule.kind.name, default: 0] += 1
            decision.applied.append(rule.kind.name)
            switch rule.kind {
            case .latency(let milliseconds):
                decision.latencyMilliseconds += milliseconds
            case .expireTokens:
                // Takes effect here; the request goes on and meets the 401 like any later one.
                tokens.removeAll()
            default:
                decision.fault = rule.kind
            }
        }
        return decision
    }
}

extension EmulatorState {
    /// The first of `sha256s` a `refuse-sample` rule for `operation` refuses now, if any.
    mutating func refusedSample(among sha256s: [String], operation: FalconOperation) -> String? {
        for (index, rule) in configuration.faults.enumerated() where index < faultProgress.count {
            guard case .refuseSample(let sha256) = rule.kind, rule.operation == operation, sha256s.contains(sha256) else { continue }
            guard faultProgress[index].fires(for: rule) else { continue }
            stats.faultsInjected[rule.kind.name, default: 0] += 1
            return sha256
        }
        return nil
    }
}
