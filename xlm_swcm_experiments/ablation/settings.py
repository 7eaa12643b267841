"""What a study asks for (`StudySettings`) and the study's fixed choices."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import statistics as stats
from .variants import REFERENCE


STAGES = ("sweep", "steps", "time", "pretrain")
# The languages every recorded run used: the demo recipe later added Tibetan (with an extended vocabulary); the
# ablation keeps its material fixed so that its runs stay comparable. Later overrides on the command line still win.
LANGUAGE_OVERRIDES = ("data.train_languages=[ug,kk,mn,zh]", "data.eval_languages=[ug,kk,mn,zh]")
# 1.25e-4 joined once three of four variants had chosen 2.5e-4, the lowest rate of the first grid
DEFAULT_LEARNING_RATES = (1.25e-4, 2.5e-4, 5e-4, 1e-3)
# Equal wall-clock runs schedule their learning rate over 1.1 x the steps they are expected to reach in the budget,
# so that the clock (not the step count) ends them; the rate at the stop is then about 9% of its peak.
TIME_HORIZON_HEADROOM = 1.1
# The code a record of the study depends on, beside the run code: its commit says `-dirty` when these differ from HEAD.
STUDY_CODE = ("xlm_swcm_experiments/ablation", "scripts/ablation.py")


@dataclass
class StudySettings:
    variants: list[str]
    seeds: list[int]
    steps: int
    learning_rates: list[float] = field(default_factory=lambda: list(DEFAULT_LEARNING_RATES))
    finetune_learning_rates: list[float] | None = None  # the sweep after pretraining; default: learning_rates
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    sweep_seed: int | None = None  # default: the first seed (its sweep run at the chosen rate is reused)
    pretrain_steps: int | None = None  # default: steps
    pretrain_variants: list[str] | None = None  # default: reference, from_encoder default, best SWCM (validation)
    device: str = "cpu"
    bootstrap_resamples: int = stats.BOOTSTRAP_RESAMPLES
    command: str = ""
    # Runs that need no other run's result (a sweep round, a seeds round, the pretraining) go to this many processes
    # at once: for a GPU, whose one process leaves it mostly idle at this model size. Equal wall-clock runs always
    # run one at a time, since parallel runs would share the device their clock measures.
    jobs: int = 1

    def __post_init__(self):
        if REFERENCE not in self.variants:
            self.variants = [REFERENCE, *self.variants]
        if self.sweep_seed is None:
            self.sweep_seed = self.seeds[0]
        if self.pretrain_steps is None:
            self.pretrain_steps = self.steps
        if self.finetune_learning_rates is None:
            self.finetune_learning_rates = list(self.learning_rates)

    def grid(self, stage: str) -> list[float]:
        """The learning rates swept for runs from the encoder ("init") or from a pretrained folder ("pretrained")."""
        return self.finetune_learning_rates if stage == "pretrained" else self.learning_rates
