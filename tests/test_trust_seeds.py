"""One documented default seed: every command and every analysis function uses DEFAULT_SEED."""

import inspect

from sibsim import cli, compare, evaluation, sensitivity
from sibsim.simulation import DEFAULT_SEED


def test_every_analysis_function_defaults_to_the_documented_seed():
    functions = (compare.compare, evaluation.evaluation_noise, sensitivity.tornado, sensitivity.sobol,
                 sensitivity.break_even)
    assert {f.__name__: inspect.signature(f).parameters["seed"].default for f in functions} == \
        {f.__name__: DEFAULT_SEED for f in functions}
    assert cli.DEFAULT_SEED == DEFAULT_SEED == 2015
