"""Training and evaluation: the typed recipe (`xlm_swcm_hf.recipe`) -> one builder -> Seq2SeqTrainer -> reports.

- `build.py`: recipe -> tokenizer, datasets, model, collator, trainer (the one wiring every entry point uses)
- `run.py`: `run_training` (resumable), the Hub-ready final folder
- `evaluation.py`: batched generation with the model's generation_config, per-language metrics
- `reporting.py`: Markdown tables and loss curves
"""

from ..recipe import DataRecipe, GenerationRecipe, ModelRecipe, Recipe, RecipeError
from .build import TrainingParts, build, build_model, build_tokenizer, build_trainer
from .evaluation import evaluate_model, generate_predictions, make_compute_metrics
from .reporting import markdown_table, metrics_markdown, plot_loss_curves
from .run import last_checkpoint, parameter_checksum, run_training


__all__ = [
    "Recipe",
    "ModelRecipe",
    "DataRecipe",
    "GenerationRecipe",
    "RecipeError",
    "TrainingParts",
    "build",
    "build_model",
    "build_tokenizer",
    "build_trainer",
    "evaluate_model",
    "generate_predictions",
    "make_compute_metrics",
    "markdown_table",
    "metrics_markdown",
    "plot_loss_curves",
    "last_checkpoint",
    "parameter_checksum",
    "run_training",
]
