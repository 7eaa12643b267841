"""Which decoder initialisation makes the shared weights pay off? A paired comparison over seeds that can answer.

Every variant trains with the demo recipe (`configs/demo.yaml`: real e5-small encoder with a pruned vocabulary, real
en -> ug/kk/mn/zh pairs). The study has four stages, each resumable run by run (finished runs are appended to
`<output>/ablation_runs.jsonl` and skipped when the command runs again):

- `sweep`: each variant's learning rate, chosen from a small grid (one seed) by NLL per target token on the
  VALIDATION split;
- `steps`: every variant at its own learning rate for the same number of steps, several seeds;
- `time`: equal wall-clock: each variant trains until the random decoder's (`random_emb_head`) measured training
  time for the step budget of the same seed is spent (`WallClockBudget`, a TrainerCallback); the steps reached are
  recorded;
- `pretrain`: the paper's stage: a short pretraining phase, identical for every decoder (DAE text infilling on
  monolingual text + the MT pairs), then fine-tuning on translation (`model.init: pretrained`) with its own sweep.

Each run is measured the same way: teacher-forced NLL per target token on the test split (label smoothing off, float32,
per sentence: summed NLL and token count) is the primary figure; greedy chrF / ROUGE-L are secondary. Every variant is
compared with `random_emb_head` on the same seeds and data order: a seed-level t-interval and a paired bootstrap over
test sentences (`statistics.py`), and a verdict that says "no difference shown" whenever an interval contains 0.
`transformers.EncoderDecoderModel` (post-LN decoder copied from the encoder, cross-attention random, LM head tied to
the embeddings) stays in every table as the outside baseline.

The package, one job a module:
- `variants.py`: the initialisations compared and what each does to a built model or its training;
- `runs.py`: a variant's measured run, its speed probe and the pretraining run (on `xlm_swcm_experiments.runs`);
- `settings.py`: what a study asks for (`StudySettings`) and its fixed choices;
- `records.py`: the JSONL record store and the check that rewriting the results loses no reported run;
- `study.py`: the schedule: which runs are missing, run here or in processes at once;
- `comparison.py`: the numbers of each table (means, SDs, paired intervals, verdicts);
- `report.py`: the generated results, `<docs>/ablation.md` and `.json` (docs/results/ by default).
"""

from .comparison import comparison
from .records import RUNS_FILE, SCHEMA, check_docs, record_key, side_by_side, stored_records
from .report import render
from .runs import (
    SPEED_PROBE_STEPS,
    SPEED_PROBE_UNCOUNTED,
    measure_step_seconds,
    prepare_run,
    pretrain_once,
    pretraining_recipe,
    run_variant,
    variant_recipe,
)
from .settings import (
    DEFAULT_LEARNING_RATES,
    LANGUAGE_OVERRIDES,
    STAGES,
    TIME_HORIZON_HEADROOM,
    StudySettings,
)
from .study import Study, run_study
from .variants import (
    COPIED_LR_MULTIPLIER,
    FREEZE_FRACTION,
    REFERENCE,
    VARIANTS,
    FreezeParameters,
    MLMHeadTransform,
    Variant,
    encoder_mlm_head_state,
    skip_reason,
)


__all__ = [
    "COPIED_LR_MULTIPLIER",
    "DEFAULT_LEARNING_RATES",
    "FREEZE_FRACTION",
    "LANGUAGE_OVERRIDES",
    "REFERENCE",
    "RUNS_FILE",
    "SCHEMA",
    "SPEED_PROBE_STEPS",
    "SPEED_PROBE_UNCOUNTED",
    "STAGES",
    "TIME_HORIZON_HEADROOM",
    "VARIANTS",
    "FreezeParameters",
    "MLMHeadTransform",
    "Study",
    "StudySettings",
    "Variant",
    "check_docs",
    "comparison",
    "encoder_mlm_head_state",
    "measure_step_seconds",
    "prepare_run",
    "pretrain_once",
    "pretraining_recipe",
    "record_key",
    "render",
    "run_study",
    "run_variant",
    "side_by_side",
    "skip_reason",
    "stored_records",
    "variant_recipe",
]
