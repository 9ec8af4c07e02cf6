"""A/B experiments between models or prompt-analysis policies, beside the router that applies them.

    manager = ExperimentManager(StateStore(default_db_path()))
    assignment = manager.assign("auto", None, user="alice")
"""

from pointsman.ops.experiments.assignment import Assignment, pick_arm, user_bucket
from pointsman.ops.experiments.definition import (
                                                   EXPERIMENT_MODES,
                                                   METRICS,
                                                   POLICIES,
                                                   ExperimentDef,
                                                   ExperimentFileError,
                                                   load_experiments_file,
                                                   parse_experiment,
)
from pointsman.ops.experiments.manager import ACTIONS, ExperimentManager
from pointsman.ops.experiments.report import build_report

__all__ = ["ACTIONS", "Assignment", "EXPERIMENT_MODES", "ExperimentDef", "ExperimentFileError", "ExperimentManager",
           "METRICS", "POLICIES", "build_report", "load_experiments_file", "parse_experiment", "pick_arm",
           "user_bucket"]
