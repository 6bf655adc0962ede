"""The verdicts: properties (check), rewards (reward_verdict, near_optimal, repair), learned
policies (policy_verdict) and training distributions (audit)."""
