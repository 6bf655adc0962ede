"""What is asked of a model: the objective φ (objective), rewards (reward_file), hidden
performance rewards (performance) and candidate goals (goals)."""
