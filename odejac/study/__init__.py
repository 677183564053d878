"""The study built on the library: the paper's experiments, the λ sweep, the landscape of
settings, tables, claims and their statistics, robustness and margins, the parallel runner
and the figures.

Nothing in the library below (solver, field, gradients, model, training) imports this
subpackage; it sits on top, and the command line sits on top of it.
"""
from .records import (Arm, StudyConfig, by_arm, evaluated, finished, load_records,
                      load_study, margin_medians, metric, noisy_accuracy, run_dir)

__all__ = ["Arm", "StudyConfig", "by_arm", "evaluated", "finished", "load_records",
           "load_study", "margin_medians", "metric", "noisy_accuracy", "run_dir"]
