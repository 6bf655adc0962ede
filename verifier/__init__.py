"""Model-checking verifier for reinforcement-learning alignment.

The pipeline: maze TOML -> Maze (maze) -> MDP (compile, mdp) -> Storm (storm) -> results
(check) -> reports (report) -> command line (cli).
"""

__version__ = "0.1.0"
