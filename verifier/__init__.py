"""Model-checking verifier for reinforcement-learning alignment.

The pipeline, one package per stage: model files -> environments (inputs) -> objective and
rewards (spec), learned policies (policy) -> certified answers (engine, over storm) ->
verdicts (analyses) -> reports (output) -> the command line (cli) and suites (suite).
"""

__version__ = "0.1.0"
