"""The one door to Storm (stormpy 2.x): nothing else in the verifier imports stormpy.

    core            template instances, bit vectors, labels, running a check
    convert         our MDP to and from Storm's sparse models (UMB arrays, a bulk copy)
    prism           PRISM programs: parse, define constants, build with Storm's checks
    properties      PRISM properties, parsed once into the verifier's `Property`
    expressions     expressions over a PRISM model's variables, evaluated with numpy
    model_checking  properties, values, schedulers, path formulas (LTL), reward optima

The analyses ask through `verifier.engine.query.Model`, which calls these.
"""

from verifier.storm.convert import from_storm, to_storm, with_rewards
from verifier.storm.core import add_labels, initial_states
from verifier.storm.model_checking import (
    SCHEDULER_SWEEPS,
    SOUND_METHOD,
    PathQuery,
    PropertyResult,
    check,
    discounted_values,
    exact_total_reward,
    model_values,
    optimize,
    optimize_model,
    path_query,
    path_values,
    satisfying_states,
    total_values,
    until,
)
from verifier.storm.prism import PrismProgram, build_prism, load_prism
from verifier.storm.properties import (
    DISCOUNTED,
    GLOBALLY,
    PATH,
    REACH,
    SUPPORTED,
    TOTAL,
    UNTIL,
    Property,
    StateFormula,
    parse_properties,
    unsupported,
)

__all__ = [
    "DISCOUNTED",
    "GLOBALLY",
    "PATH",
    "REACH",
    "SUPPORTED",
    "SCHEDULER_SWEEPS",
    "SOUND_METHOD",
    "TOTAL",
    "UNTIL",
    "PathQuery",
    "PrismProgram",
    "Property",
    "PropertyResult",
    "StateFormula",
    "add_labels",
    "build_prism",
    "check",
    "discounted_values",
    "exact_total_reward",
    "from_storm",
    "initial_states",
    "load_prism",
    "model_values",
    "optimize",
    "optimize_model",
    "parse_properties",
    "path_query",
    "path_values",
    "satisfying_states",
    "to_storm",
    "total_values",
    "unsupported",
    "until",
    "with_rewards",
]
