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
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from xlm_swcm_hf.checks import InputError, read_json_file
from xlm_swcm_hf.files import atomic_write_json, atomic_write_text
from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training import build, evaluate_model, markdown_table

from . import statistics as stats


SCHEMA = 2  # records of the earlier single-lr ablation (no "schema" field) are ignored
REFERENCE = "random_emb_head"  # every variant is compared with this one
STAGES = ("sweep", "steps", "time", "pretrain")
# The languages every recorded run used: the demo recipe later added Tibetan (with an extended vocabulary); the
# ablation keeps its material fixed so that its runs stay comparable. Later overrides on the command line still win.
LANGUAGE_OVERRIDES = ("data.train_languages=[ug,kk,mn,zh]", "data.eval_languages=[ug,kk,mn,zh]")
# 1.25e-4 joined once three of four variants had chosen 2.5e-4, the lowest rate of the first grid
DEFAULT_LEARNING_RATES = (1.25e-4, 2.5e-4, 5e-4, 1e-3)
COPIED_LR_MULTIPLIER = 0.2  # per-group learning rates: copied decoder tensors learn at 0.2 x the variant's rate
FREEZE_FRACTION = 0.2  # freezing: the copied decoder sublayers stay fixed for the first 20% of the step budget
# Equal wall-clock runs schedule their learning rate over 1.1 x the steps they are expected to reach in the budget,
# so that the clock (not the step count) ends them; the rate at the stop is then about 9% of its peak.
TIME_HORIZON_HEADROOM = 1.1
# Where no run of a variant was timed beside the reference's run, its speed comes from a short run of these many steps
# here; the first steps (allocation, warm caches) are not counted.
SPEED_PROBE_STEPS, SPEED_PROBE_UNCOUNTED = 25, 5
MEASURE_BATCH_SIZE = 32
DATA_ORDER_BATCHES = 20

PRE = {"decoder_layer_norm_position": "pre"}
POST = {"decoder_layer_norm_position": "post"}


@dataclass(frozen=True)
class Variant:
    """An initialisation: the recipe's model-section changes plus what is done to the built model or its training.

    `model=None` is transformers' `EncoderDecoderModel` warm start. The other fields are applied after `build`:
    `reinit_cross_attention` draws every custom layer's cross-attention afresh; `mlm_head` replaces the LM head with
    the encoder checkpoint's masked-LM transform (dense, GELU, LayerNorm, decoder tied in value to the embeddings);
    `copied_lr_multiplier` gives the decoder tensors copied from the encoder their own learning rate;
    `freeze_copied_fraction` keeps them fixed for that share of the step budget.
    """

    description: str
    model: dict | None = None
    reinit_cross_attention: bool = False
    mlm_head: bool = False
    copied_lr_multiplier: float | None = None
    freeze_copied_fraction: float | None = None

    @property
    def is_swcm(self) -> bool:
        return self.model is not None and self.model.get("init") == "from_encoder"

    def cross_attention_copied(self) -> bool:
        return self.is_swcm and not self.reinit_cross_attention and self.model.get("init_scheme") != "scaled"


SCALED = {"init": "from_encoder", "lm_head_init": "embeddings", "init_scheme": "scaled", "config": PRE}
VARIANTS = {
    "swcm_pre_random_head": Variant(
        "SWCM as published: pre-LN, fresh LayerNorms, random LM head",
        {"init": "from_encoder", "lm_head_init": "random", "config": PRE},
    ),
    "swcm_pre_emb_head": Variant(
        "SWCM pre-LN, LM head from the word embeddings (the current from_encoder default)",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": PRE},
    ),
    "swcm_pre_scaled_emb_head": Variant(
        "SWCM pre-LN, init_scheme='scaled' (cross-attention random, copied outputs scaled by 1/sqrt(2L), normal "
        "layers start as identity), embedding head",
        SCALED,
    ),
    "swcm_post_emb_head": Variant(
        "SWCM post-LN mirror of the encoder layers (LayerNorms copied), embedding head",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": POST},
    ),
    "swcm_post_random_xattn_emb_head": Variant(
        "SWCM post-LN mirror (LayerNorms copied) with the cross-attention re-initialised at random, embedding head",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": POST},
        reinit_cross_attention=True,
    ),
    "swcm_pre_scaled_group_lr": Variant(
        f"swcm_pre_scaled_emb_head with per-group learning rates: the copied decoder tensors at "
        f"{COPIED_LR_MULTIPLIER} x the rate of the new ones (and of the encoder)",
        SCALED,
        copied_lr_multiplier=COPIED_LR_MULTIPLIER,
    ),
    "swcm_pre_scaled_freeze": Variant(
        f"swcm_pre_scaled_emb_head with the copied decoder sublayers frozen for the first {FREEZE_FRACTION:.0%} of "
        "the step budget",
        SCALED,
        freeze_copied_fraction=FREEZE_FRACTION,
    ),
    "swcm_pre_scaled_mlm_head": Variant(
        "swcm_pre_scaled_emb_head with the encoder's masked-LM head transform (dense, GELU, LayerNorm) before the "
        "embedding-initialised output layer",
        SCALED,
        mlm_head=True,
    ),
    "random_random_head": Variant(
        "random decoder (pre-LN), random LM head: the paper's 'without weight sharing'",
        {"init": "random_decoder", "lm_head_init": "random", "config": PRE},
    ),
    REFERENCE: Variant(
        "random decoder (pre-LN), LM head from the word embeddings: the reference of every comparison",
        {"init": "random_decoder", "lm_head_init": "embeddings", "config": PRE},
    ),
    "encoder_decoder_model": Variant(
        "transformers EncoderDecoderModel warm start (decoder = encoder copy + random cross-attention, tied head): "
        "the outside baseline",
        None,
    ),
}

# Every ablation table decodes greedily, without n-gram blocking: the recipe's beam settings are for the demo.
ABLATION_DECODING = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": None}


# ------------------------------------------------------------------------------------------------ building a variant


def build_encoder_decoder_baseline(encoder_dir: str):
    from transformers import AutoConfig, EncoderDecoderModel

    ids = AutoConfig.from_pretrained(encoder_dir)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_dir, encoder_dir)
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = ids.bos_token_id
        config.pad_token_id = ids.pad_token_id
        config.eos_token_id = ids.eos_token_id
    model.config.tie_word_embeddings = True
    model.tie_weights()
    return model


def encoder_mlm_head_state(encoder_dir) -> dict | None:
    """The masked-LM head tensors of an encoder folder (`lm_head.dense/layer_norm/bias`), or None if it has none."""
    folder = Path(encoder_dir)
    state = {}
    for path in sorted(folder.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if "lm_head." in key:
                    state[key.split("lm_head.", 1)[1]] = handle.get_tensor(key)
    if not state:
        for path in sorted(folder.glob("pytorch_model*.bin")):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            state.update({k.split("lm_head.", 1)[1]: v for k, v in loaded.items() if "lm_head." in k})
    needed = ("dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias")
    if not all(name in state for name in needed) or not ("bias" in state or "decoder.bias" in state):
        return None
    return state


def skip_reason(variant: str, recipe: Recipe) -> str | None:
    """Why a variant cannot run with this recipe (None when it can)."""
    spec = VARIANTS[variant]
    if spec.mlm_head and encoder_mlm_head_state(recipe.model.encoder) is None:
        return (
            f"the encoder folder {recipe.model.encoder} has no masked-LM head (lm_head.dense / lm_head.layer_norm): "
            "an embedding model such as multilingual-e5-small ships without one, so there is nothing to copy"
        )
    return None


class MLMHeadTransform(torch.nn.Module):
    """XLM-R's masked-LM head as the decoder's output layer: decoder(LayerNorm(GELU(dense(h))))."""

    def __init__(self, hidden_size: int, vocab_size: int, eps: float):
        super().__init__()
        self.dense = torch.nn.Linear(hidden_size, hidden_size)
        self.layer_norm = torch.nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = torch.nn.Linear(hidden_size, vocab_size)

    @property
    def weight(self):  # the model reads lm_head.weight to pick its inference path
        return self.decoder.weight

    def forward(self, hidden_states):
        return self.decoder(self.layer_norm(torch.nn.functional.gelu(self.dense(hidden_states))))


@torch.no_grad()
def install_mlm_head(model, state: dict) -> None:
    """Replace the LM head with the checkpoint's MLM transform; its output layer starts as the word embeddings."""
    config = model.config
    head = MLMHeadTransform(config.hidden_size, config.vocab_size, config.layer_norm_eps)
    head.dense.weight.copy_(state["dense.weight"])
    head.dense.bias.copy_(state["dense.bias"])
    head.layer_norm.weight.copy_(state["layer_norm.weight"])
    head.layer_norm.bias.copy_(state["layer_norm.bias"])
    head.decoder.weight.copy_(model.model.get_input_embeddings().weight)
    head.decoder.bias.copy_(state.get("bias", state.get("decoder.bias")))
    model.lm_head = head.to(model.lm_head.weight.device)


@torch.no_grad()
def reinitialise_cross_attention(model, seed: int) -> None:
    """Draw every custom layer's cross-attention projections afresh (N(0, initializer_range), bias 0).

    A generator of its own keeps the global random stream (dropout, data order) the same as in other variants.
    """
    from xlm_swcm_hf.modeling_xlm_swcm import XLMSWCMCustomDecoderLayer

    generator = torch.Generator().manual_seed(seed)
    std = model.config.initializer_range
    for layer in model.model.decoder.layers:
        if isinstance(layer, XLMSWCMCustomDecoderLayer):
            attention = layer.encoder_attn
            for projection in (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj):
                weight = torch.randn(projection.weight.shape, generator=generator) * std
                projection.weight.copy_(weight.to(projection.weight.device))
                projection.bias.zero_()


def copied_parameter_names(model, spec: Variant) -> list[str]:
    """Names (in `model.named_parameters()`) of the decoder tensors that start as copies of encoder tensors."""
    from xlm_swcm_hf.modeling_xlm_swcm import shared_weight_mapping

    names = [f"model.{name}" for name in shared_weight_mapping(model.config)]
    if not spec.cross_attention_copied():
        names = [name for name in names if ".encoder_attn." not in name]
    return names


def grouped_optimizer(trainer, model, copied: set[str], multiplier: float):
    """The trainer's own optimizer class and settings, with copied tensors at `multiplier` x the learning rate."""
    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    kwargs = dict(kwargs)
    learning_rate = kwargs.pop("lr", trainer.args.learning_rate)
    decay = set(trainer.get_decay_parameter_names(model))
    groups = []
    for is_copied in (True, False):
        for has_decay in (True, False):
            parameters = [
                parameter
                for name, parameter in model.named_parameters()
                if parameter.requires_grad and (name in copied) == is_copied and (name in decay) == has_decay
            ]
            if parameters:
                groups.append(
                    {
                        "params": parameters,
                        "weight_decay": trainer.args.weight_decay if has_decay else 0.0,
                        "lr": learning_rate * (multiplier if is_copied else 1.0),
                        "name": f"{'copied' if is_copied else 'new'}{'' if has_decay else ' (no decay)'}",
                    }
                )
    return optimizer_cls(groups, lr=learning_rate, **kwargs)


class FreezeParameters(TrainerCallback):
    """Keeps `parameters` fixed (requires_grad off, so the optimizer skips them) until `until_step` steps are done.

    The optimizer is created before `on_train_begin`, so it holds the parameters and updates them once unfrozen.
    """

    def __init__(self, parameters: list, until_step: int):
        self.parameters = list(parameters)
        self.until_step = until_step
        self.frozen = False
        self.unfrozen_at = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.until_step > state.global_step:
            for parameter in self.parameters:
                parameter.requires_grad_(False)
            self.frozen = True

    def on_step_begin(self, args, state, control, **kwargs):
        if self.frozen and state.global_step >= self.until_step:
            for parameter in self.parameters:
                parameter.requires_grad_(True)
            self.frozen = False
            self.unfrozen_at = state.global_step


class WallClockBudget(TrainerCallback):
    """Measures training time from `on_train_begin` to each step's end; with `seconds`, stops training once spent.

    On CUDA it synchronises before reading the clock, so queued kernels count. `clock` is replaceable for tests.
    """

    def __init__(self, seconds: float | None = None, clock=time.perf_counter):
        self.seconds = seconds
        self.clock = clock
        self.started = None
        self.elapsed = 0.0
        self.steps = 0
        self.stopped_by_clock = False

    def _now(self, args) -> float:
        if args.device.type == "cuda":
            torch.cuda.synchronize(args.device)
        return self.clock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self._now(args)
        self.step_ends = []

    def on_step_end(self, args, state, control, **kwargs):
        self.elapsed = self._now(args) - self.started
        self.steps = state.global_step
        self.step_ends.append(self.elapsed)
        if self.seconds is not None and self.elapsed >= self.seconds and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_by_clock = True


class DataOrderDigest:
    """Wraps the training collator and keeps a short digest of each of the first batches' labels, which shows that
    two runs saw the same data order (compare the batches both trained on: `same_data_order`)."""

    def __init__(self, collator, batches: int = DATA_ORDER_BATCHES):
        self.collator = collator
        self.batches = batches
        self.digests: list[str] = []

    def __call__(self, features):
        batch = self.collator(features)
        if len(self.digests) < self.batches:
            self.digests.append(hashlib.sha256(batch["labels"].cpu().numpy().tobytes()).hexdigest()[:8])
        return batch


def same_data_order(run: dict, other: dict) -> bool:
    """The batches both runs trained on (up to the first DATA_ORDER_BATCHES) were the same."""
    common = min(len(run["data_order"]), len(other["data_order"]), run["steps_reached"], other["steps_reached"])
    return run["data_order"][:common] == other["data_order"][:common]


# ------------------------------------------------------------------------------------------------ measurement


@torch.no_grad()
def sentence_nll(model, dataset, collator, batch_size: int = MEASURE_BATCH_SIZE) -> tuple[list[float], list[int]]:
    """Teacher-forced summed NLL (nats, float32, no label smoothing) and target-token count of every row, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns = [name for name in ("input_ids", "attention_mask", "labels") if name in dataset.column_names]
    rows = dataset.select_columns(columns)
    totals, counts = [], []
    for start in range(0, len(rows), batch_size):
        batch = collator([rows[index] for index in range(start, min(start + batch_size, len(rows)))])
        labels = batch.pop("labels").to(device)
        logits = model(**{key: value.to(device) for key, value in batch.items()}).logits.float()
        mask = labels != -100
        log_probs = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        totals += (-(log_probs * mask).sum(-1)).tolist()
        counts += mask.sum(-1).tolist()
    model.train(was_training)
    return totals, counts


def per_token(totals: list[float], counts: list[int]) -> float:
    return sum(totals) / sum(counts)


# ------------------------------------------------------------------------------------------------ one run


def git_commit() -> str:
    """HEAD's short hash, with `-dirty` when the code a run uses differs from HEAD."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=root
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "diff",
                "--quiet",
                "HEAD",
                "--",
                "xlm_swcm_hf",
                "xlm_swcm_experiments/ablation.py",
                "xlm_swcm_experiments/statistics.py",
                "scripts/ablation.py",
            ],
            cwd=root,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changed else "")


def device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def variant_recipe(recipe: Recipe, variant: str, seed: int, learning_rate: float, output_dir: Path) -> Recipe:
    """The recipe with the variant's model section (unless it starts from a pretrained folder), the seed, the
    learning rate, its own output folder and greedy decoding."""
    recipe = recipe.copy()
    spec = VARIANTS[variant]
    if spec.model is not None and recipe.model.init != "pretrained":
        recipe.model = dataclasses.replace(recipe.model, **copy.deepcopy(spec.model))
    recipe.generation = dataclasses.replace(recipe.generation, **ABLATION_DECODING)
    recipe.early_stopping_patience = None
    recipe.training.update(output_dir=str(output_dir), seed=seed, data_seed=seed, learning_rate=learning_rate)
    return recipe


def run_arguments(max_steps: int, device: str) -> dict:
    return dict(
        max_steps=max_steps,
        save_strategy="no",
        eval_strategy="no",
        predict_with_generate=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        logging_steps=max(1, min(25, max_steps // 4)),
    )


@dataclass
class PreparedRun:
    parts: object
    callbacks: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def train(self, seconds: float | None = None) -> WallClockBudget:
        """Train with the run's callbacks and a clock (which stops training once `seconds` are spent); the clock."""
        clock = WallClockBudget(seconds)
        for callback in (*self.callbacks, clock):
            self.parts.trainer.add_callback(callback)
        self.parts.trainer.train()
        return clock


def prepare_run(
    recipe: Recipe, variant: str, seed: int, max_steps: int, step_budget: int, device: str, apply_init: bool = True
) -> PreparedRun:
    """Build the trainer for one run; apply the variant's model changes and training treatment (`apply_init`)."""
    from transformers import set_seed

    spec = VARIANTS[variant]
    set_seed(seed)
    baseline = None
    if spec.model is None and recipe.model.init != "pretrained":
        baseline = build_encoder_decoder_baseline(recipe.model.encoder)
    parts = build(recipe, model=baseline, **run_arguments(max_steps, device))
    model, trainer = parts.trainer.model, parts.trainer
    prepared = PreparedRun(parts)
    if not apply_init:
        return prepared
    if spec.reinit_cross_attention:
        reinitialise_cross_attention(model, seed)
    if spec.mlm_head:
        state = encoder_mlm_head_state(recipe.model.encoder)
        if state is None:
            raise ValueError(skip_reason(variant, recipe))
        install_mlm_head(model, state)
    if spec.copied_lr_multiplier is not None or spec.freeze_copied_fraction is not None:
        copied = set(copied_parameter_names(model, spec))
        prepared.notes["copied_tensors"] = len(copied)
        if spec.copied_lr_multiplier is not None:
            trainer.optimizer = grouped_optimizer(trainer, model, copied, spec.copied_lr_multiplier)
        if spec.freeze_copied_fraction is not None:
            until = max(1, round(spec.freeze_copied_fraction * step_budget))
            parameters = [parameter for name, parameter in model.named_parameters() if name in copied]
            prepared.callbacks.append(FreezeParameters(parameters, until))
            prepared.notes["frozen_until_step"] = until
    return prepared


def run_once(
    recipe: Recipe,
    variant: str,
    seed: int,
    learning_rate: float,
    steps: int,
    output_dir: Path,
    device: str,
    time_budget: float | None = None,
    horizon: int | None = None,
    apply_init: bool = True,
) -> dict:
    """Train one variant; validation and test NLL per sentence, greedy test chrF/ROUGE-L, training time and steps."""
    recipe = variant_recipe(recipe, variant, seed, learning_rate, output_dir)
    prepared = prepare_run(recipe, variant, seed, horizon or steps, steps, device, apply_init)
    trainer = prepared.parts.trainer
    order = DataOrderDigest(trainer.data_collator)
    trainer.data_collator = order
    clock = prepared.train(time_budget)
    trainer.data_collator = order.collator
    model, datasets = trainer.model, prepared.parts.datasets
    record = {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "step_seconds": round(clock.elapsed / max(1, clock.steps), 4),
        "stopped_by": "clock" if clock.stopped_by_clock else "steps",
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "data_order": order.digests,
        **prepared.notes,
    }
    if "validation" in datasets:
        totals, counts = sentence_nll(model, datasets["validation"], order.collator)
        record["valid_nll"] = round(per_token(totals, counts), 5)
    totals, counts = sentence_nll(model, datasets["test"], order.collator)
    metrics = evaluate_model(
        model,
        prepared.parts.tokenizer,
        prepared.parts.formatted["test"],
        output_dir / "test",
        batch_size=MEASURE_BATCH_SIZE,
        max_source_length=recipe.data.max_source_length,
    )
    record.update(
        test_nll=round(per_token(totals, counts), 5),
        test_tokens=sum(counts),
        chrf=metrics["all"]["chrf"],
        rougeL=metrics["all"]["rougeL"],
        per_language_chrf={key: value["chrf"] for key, value in metrics.items() if key != "all"},
        sentence_nll=[round(value, 4) for value in totals],
        sentence_tokens=counts,
    )
    return record


def measure_step_seconds(
    recipe: Recipe, variant: str, seed: int, learning_rate: float, steps: int, output_dir: Path, device: str
) -> dict:
    """Seconds per training step of one variant on this device: `SPEED_PROBE_STEPS` steps (the variant's treatment
    as in a run of `steps`), the first `SPEED_PROBE_UNCOUNTED` not counted; nothing is evaluated."""
    recipe = variant_recipe(recipe, variant, seed, learning_rate, output_dir)
    clock = prepare_run(recipe, variant, seed, SPEED_PROBE_STEPS, steps, device).train()
    counted = clock.step_ends[SPEED_PROBE_UNCOUNTED - 1 :]
    return {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "step_seconds": round((counted[-1] - counted[0]) / (len(counted) - 1), 4),
    }


# ------------------------------------------------------------------------------------------------ pretraining


def pretraining_recipe(recipe: Recipe, output_dir: Path) -> Recipe:
    """The paper's objectives on the demo material: DAE (text infilling) on monolingual text of every language (the
    data folder's `monolingual_<lang>.jsonl` where there is one, plus the target sides of the train split) mixed with
    the MT pairs of the train split; the MT validation pairs for the validation loss."""
    data = recipe.data
    languages = data.train_languages or []
    data_dir = Path(data.train_file).parent
    folder = output_dir / "pretraining-data"
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        split: [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for split, path in (("train", data.train_file), ("validation", data.validation_file))
        if path
    }
    if languages:
        rows = {split: [row for row in values if row.get("lang") in languages] for split, values in rows.items()}
    languages = languages or sorted({row["lang"] for row in rows["train"]})
    target_column = (data.columns or {}).get("target", "target")
    monolingual = {}
    for language in languages:
        path = folder / f"targets_{language}.jsonl"
        texts = [row[target_column] for row in rows["train"] if row.get("lang") == language]
        path.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts))
        extra = data_dir / f"monolingual_{language}.jsonl"
        monolingual[language] = [str(extra), str(path)] if extra.exists() else [str(path)]
    translation = {}
    for split, values in rows.items():
        path = folder / f"mt_{split}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in values))
        translation[split] = [str(path)]
    recipe = recipe.copy()
    recipe.data = dataclasses.replace(
        recipe.data,
        task="denoising",
        train_file=None,
        validation_file=None,
        test_file=None,
        monolingual_files=monolingual,
        translation_files=translation,
    )
    return recipe


def pretrain_once(recipe: Recipe, variant: str, seed: int, steps: int, output_dir: Path, device: str) -> dict:
    """Pretrain one initialisation (the variant's model and treatment) for `steps`; save `<output_dir>/final`."""
    recipe = variant_recipe(recipe, variant, seed, recipe.training["learning_rate"], output_dir)
    prepared = prepare_run(recipe, variant, seed, steps, steps, device)
    trainer = prepared.parts.trainer
    clock = prepared.train()
    validation_loss = trainer.evaluate()["eval_loss"] if "validation" in prepared.parts.datasets else None
    if isinstance(trainer.model.lm_head, MLMHeadTransform):
        raise ValueError(f"{variant}: a model with an MLM head transform cannot be saved as XLM-SWCM")
    trainer.save_model(str(output_dir / "final"))
    return {
        "steps_reached": clock.steps,
        "train_seconds": round(clock.elapsed, 2),
        "valid_loss": round(validation_loss, 5) if validation_loss is not None else None,
        "path": str(output_dir / "final"),
        **prepared.notes,
    }


def _call_with_threads(function, threads: int, device: str, arguments: dict) -> dict:
    torch.set_num_threads(threads)
    # The device as this process ran it: on the CPU its share of the cores, not the parent's count.
    return {"device": device_name(device), **function(**arguments)}


def in_processes(function, jobs_and_arguments: list[tuple[dict, dict]], jobs: int, device: str):
    """Yield `(fields, function(**arguments))` for each pair as it finishes, computed in up to `jobs` fresh processes
    at once (spawned: CUDA cannot be forked); on the CPU the cores are shared out between them. A failed run does not
    stop the others: the first failure is raised once every run has ended (the finished ones have been yielded)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs) if device == "cpu" else 1
    failures = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            pool.submit(_call_with_threads, function, threads, device, arguments): fields
            for fields, arguments in jobs_and_arguments
        }
        for future in as_completed(futures):
            if future.exception() is not None:
                failures.append(future.exception())
                continue
            yield futures[future], future.result()
    if failures:
        raise failures[0]


# ------------------------------------------------------------------------------------------------ the study


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


def side_by_side(record: dict, other: dict) -> bool:
    """Whether two runs' speeds compare: same device, and a known, equal number of runs sharing it."""
    return (
        record.get("device") == other.get("device")
        and record.get("concurrent_runs") is not None
        and record.get("concurrent_runs") == other.get("concurrent_runs")
    )


def record_key(record: dict) -> tuple:
    return (
        record["stage"],
        record.get("budget"),
        record["variant"],
        record["seed"],
        record.get("learning_rate"),
        record["steps"],
        record.get("pretrain_steps"),
    )


def stored_records(results_file: Path) -> dict[tuple, dict]:
    """The finished runs kept in `results_file` (of this schema), by `record_key`."""
    records = {}
    if Path(results_file).exists():
        for line in Path(results_file).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted write: that run is simply run again
            if record.get("schema") == SCHEMA:
                records[record_key(record)] = record
    return records


def check_docs(output_dir: Path, docs_dir: Path, render_only: bool, replace_docs: bool) -> None:
    """Before any work: `--render-only` needs finished runs, and the docs are rewritten only from a runs file that
    holds every run they already report (or with `--replace-docs`), so committed results are never lost."""
    results_file = Path(output_dir) / "ablation_runs.jsonl"
    stored = stored_records(results_file)
    if render_only and not stored:
        raise InputError(
            f"--render-only: {results_file} holds no finished runs, so there is nothing to render; run the study "
            "first (without --render-only), or point --output at the folder that holds its runs."
        )
    docs_json = Path(docs_dir) / "ablation.json"
    if replace_docs or not docs_json.exists():
        return
    reported = read_json_file(docs_json, "the ablation docs")
    runs = reported.get("runs") if isinstance(reported, dict) else None
    try:
        keys = {record_key(run) for run in runs or []}
    except (KeyError, TypeError):
        raise InputError(f"{docs_json} is not an ablation report; pass --replace-docs or another --docs.") from None
    missing = keys - set(stored)
    if missing:
        raise InputError(
            f"{docs_json} reports {len(missing)} finished runs that {results_file} does not hold ({len(stored)} "
            "runs); rewriting the docs would lose them. Restore that runs file, write the docs elsewhere with "
            "--docs DIR, or pass --replace-docs."
        )


class Study:
    """Runs what is missing, in an order that gives paired results early, and rewrites the docs after every run."""

    def __init__(self, recipe: Recipe, settings: StudySettings, output_dir: Path, docs_dir: Path):
        self.recipe, self.settings = recipe, settings
        self.output_dir, self.docs_dir = Path(output_dir), Path(docs_dir)
        self.results_file = self.output_dir / "ablation_runs.jsonl"
        self.records: dict[tuple, dict] = stored_records(self.results_file)
        self.commit = git_commit()  # the code this process loaded (later commits by others do not change it)
        self.skipped = {name: reason for name in settings.variants if (reason := skip_reason(name, recipe))}
        self.variants = [name for name in settings.variants if name not in self.skipped]

    # -- bookkeeping

    def find(self, **fields) -> dict | None:
        record = {"steps": self.settings.steps, "pretrain_steps": None, "budget": "steps", **fields}
        return self.records.get(record_key(record))

    def _store(self, record: dict) -> dict:
        record = {"schema": SCHEMA, "commit": self.commit, "device": device_name(self.settings.device), **record}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with self.results_file.open("a+b") as handle:
            handle.seek(0, 2)
            if handle.tell():  # a line cut short by an interrupted run must not swallow this one
                handle.seek(-1, 2)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write((json.dumps(record) + "\n").encode())
        self.records[record_key(record)] = record
        summary = {k: v for k, v in record.items() if k not in ("sentence_nll", "sentence_tokens")}
        print(json.dumps(summary), flush=True)
        self.write_docs()
        return record

    def _plan(self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, **extra):
        """(record fields, `run_once`'s arguments, a label); (the found record, None, "") if it already ran."""
        steps = self.settings.steps
        pretrain_steps = self.settings.pretrain_steps if stage == "pretrained" else None
        fields = dict(stage=stage, budget=budget, variant=variant, seed=seed, learning_rate=learning_rate)
        found = self.find(**fields, pretrain_steps=pretrain_steps)
        if found:
            return found, None, ""
        recipe = self.recipe
        if stage == "pretrained":
            recipe = recipe.copy()
            recipe.model = dataclasses.replace(recipe.model, init="pretrained", path=self.pretrained(variant, seed))
        arguments = dict(
            recipe=recipe,
            variant=variant,
            seed=seed,
            learning_rate=learning_rate,
            steps=steps,
            output_dir=self.output_dir / stage / budget / f"{variant}-seed{seed}-lr{learning_rate:g}",
            device=self.settings.device,
            apply_init=stage != "pretrained",
            **extra,
        )
        label = f"{stage} {budget} {variant} seed {seed} lr {learning_rate:g} {extra or ''}"
        return {**fields, "steps": steps, "pretrain_steps": pretrain_steps, **extra}, arguments, label

    def _execute(self, function, planned: list[tuple[dict, dict, str]]) -> list[dict]:
        """Run `function(**arguments)` for each planned `(fields, arguments, label)`: here, one after another, or in
        `settings.jobs` processes at once; each record is stored as its run ends. Returns the stored records."""
        if self.settings.jobs <= 1 or len(planned) <= 1:
            stored = []
            for fields, arguments, label in planned:
                print(f"--- {label}", flush=True)
                stored.append(self._store({**fields, **function(**arguments), "concurrent_runs": 1}))
            return stored
        for _, _, label in planned:
            print(f"--- {label} (in a process of its own)", flush=True)
        concurrent = min(self.settings.jobs, len(planned))
        jobs_and_arguments = [(fields, arguments) for fields, arguments, _ in planned]
        return [
            self._store({**fields, **record, "concurrent_runs": concurrent})
            for fields, record in in_processes(function, jobs_and_arguments, self.settings.jobs, self.settings.device)
        ]

    def run(self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, **extra) -> dict:
        fields, arguments, label = self._plan(stage, budget, variant, seed, learning_rate, **extra)
        return fields if arguments is None else self._execute(run_once, [(fields, arguments, label)])[0]

    def run_round(self, tasks: list[tuple]) -> None:
        """Runs `(stage, budget, variant, seed, learning_rate)` that need none of each other's results."""
        self._execute(
            run_once, [planned for planned in (self._plan(*task) for task in tasks) if planned[1] is not None]
        )

    def _pretrain_plan(self, variant: str, seed: int):
        """(record fields, `pretrain_once`'s arguments, a label); ({"path": folder}, None, "") if it already ran."""
        steps = self.settings.pretrain_steps
        learning_rate = self.recipe.training["learning_rate"]
        folder = self.output_dir / "pretrain" / f"{variant}-seed{seed}-steps{steps}"
        fields = dict(stage="pretrain", budget="steps", variant=variant, seed=seed, learning_rate=learning_rate)
        if self.find(**fields, steps=steps) and (folder / "final" / "config.json").exists():
            return {"path": str(folder / "final")}, None, ""
        recipe = pretraining_recipe(self.recipe, self.output_dir)
        arguments = dict(
            recipe=recipe, variant=variant, seed=seed, steps=steps, output_dir=folder, device=self.settings.device
        )
        label = f"pretrain {variant} seed {seed} ({steps} steps, lr {learning_rate:g})"
        return {**fields, "steps": steps, "pretrain_steps": None}, arguments, label

    def pretrained(self, variant: str, seed: int) -> str:
        fields, arguments, label = self._pretrain_plan(variant, seed)
        if arguments is None:
            return fields["path"]
        return self._execute(pretrain_once, [(fields, arguments, label)])[0]["path"]

    def pretrain_round(self, tasks: list[tuple[str, int]]) -> None:
        planned = [self._pretrain_plan(*task) for task in tasks]
        self._execute(pretrain_once, [item for item in planned if item[1] is not None])

    # -- learning rates

    def sweep_records(self, stage: str, variant: str) -> list[dict]:
        pretrain_steps = self.settings.pretrain_steps if stage == "pretrained" else None
        found = [
            self.find(
                stage=stage,
                variant=variant,
                seed=self.settings.sweep_seed,
                learning_rate=rate,
                pretrain_steps=pretrain_steps,
            )
            for rate in self.settings.grid(stage)
        ]
        return [record for record in found if record]

    def best_learning_rate(self, stage: str, variant: str) -> float | None:
        """The swept rate with the lowest validation NLL per token; None until the whole grid ran."""
        records = self.sweep_records(stage, variant)
        if len(records) < len(self.settings.grid(stage)):
            return None
        return min(records, key=lambda record: (record["valid_nll"], record["learning_rate"]))["learning_rate"]

    def sweep(self, stage: str, variants: list[str]) -> None:
        # Rate by rate across the variants, so that a study cut short has every variant at the first rates.
        seed = self.settings.sweep_seed
        self.run_round(
            [(stage, "steps", variant, seed, rate) for rate in self.settings.grid(stage) for variant in variants]
        )

    def equal_steps(self, stage: str, variants: list[str]) -> None:
        self.sweep(stage, variants)
        self.run_round(
            [
                (stage, "steps", variant, seed, self.best_learning_rate(stage, variant))
                for seed in self.settings.seeds
                for variant in variants
            ]
        )

    def timed_alone(self, record: dict) -> bool:
        """Whether a run's clock is worth a budget here: it ran on this device with no other run beside it. Records
        made before runs counted their neighbours carry no `concurrent_runs`: their clocks are not trusted."""
        return record.get("concurrent_runs") == 1 and record.get("device") == device_name(self.settings.device)

    def step_seconds_here(self, variant: str, seed: int, learning_rate: float) -> float:
        """The variant's seconds per step on this device, alone, from a speed probe (kept with the records)."""
        fields = dict(stage="init", budget="speed", variant=variant, seed=seed, learning_rate=learning_rate)
        found = self.find(**fields, steps=SPEED_PROBE_STEPS)
        if found is None:
            arguments = dict(
                recipe=self.recipe,
                variant=variant,
                seed=seed,
                learning_rate=learning_rate,
                steps=self.settings.steps,
                output_dir=self.output_dir / "speed" / f"{variant}-seed{seed}",
                device=self.settings.device,
            )
            label = f"speed of {variant} here ({SPEED_PROBE_STEPS} steps)"
            planned = [({**fields, "steps": SPEED_PROBE_STEPS, "pretrain_steps": None}, arguments, label)]
            found = self._execute(measure_step_seconds, planned)[0]
        return found["step_seconds"]

    def equal_time(self, variants: list[str]) -> None:
        self.equal_steps("init", variants)
        reference_rate = self.best_learning_rate("init", REFERENCE)
        for seed in self.settings.seeds:
            reference = self.find(stage="init", variant=REFERENCE, seed=seed, learning_rate=reference_rate)
            timing = reference
            if not self.timed_alone(reference):
                # Its equal-steps run shared the device or ran elsewhere: time the same run again, alone, here.
                timing = self.run("init", "time", REFERENCE, seed, reference_rate)
            for variant in variants:
                if variant == REFERENCE:
                    continue  # its equal-steps run is its equal-time run
                rate = self.best_learning_rate("init", variant)
                own = self.find(stage="init", variant=variant, seed=seed, learning_rate=rate)
                if side_by_side(own, reference):
                    # Speed relative to the reference from runs made side by side, scaled to the clean timing.
                    step_seconds = timing["step_seconds"] * own["step_seconds"] / reference["step_seconds"]
                else:
                    step_seconds = self.step_seconds_here(variant, seed, rate)
                horizon = max(1, math.ceil(TIME_HORIZON_HEADROOM * timing["train_seconds"] / step_seconds))
                self.run("init", "time", variant, seed, rate, time_budget=timing["train_seconds"], horizon=horizon)

    def best_swcm(self) -> str | None:
        """The SWCM variant with the lowest mean validation NLL over the equal-steps seeds (validation, not test)."""
        candidates = {}
        for variant in self.variants:
            spec = VARIANTS[variant]
            rate = self.best_learning_rate("init", variant)
            if not spec.is_swcm or spec.mlm_head or rate is None:
                continue
            runs = [self.find(stage="init", variant=variant, seed=s, learning_rate=rate) for s in self.settings.seeds]
            if all(runs):
                candidates[variant] = sum(run["valid_nll"] for run in runs) / len(runs)
        return min(candidates, key=candidates.get) if candidates else None

    def pretrain_variants(self) -> list[str]:
        if self.settings.pretrain_variants:
            return list(dict.fromkeys([REFERENCE, *self.settings.pretrain_variants]))
        best = self.best_swcm()
        if best is None:
            raise ValueError(
                "the pretrain stage needs the best SWCM variant from the equal-steps stage: run the steps stage "
                "for the SWCM variants first, or name the variants with --pretrain-variants"
            )
        return list(dict.fromkeys([REFERENCE, "swcm_pre_emb_head", best]))

    def run_all(self) -> None:
        stages = self.settings.stages
        self.write_docs()
        if "sweep" in stages:
            self.sweep("init", self.variants)
        if "steps" in stages:
            self.equal_steps("init", self.variants)
        if "time" in stages:
            self.equal_time(self.variants)
        if "pretrain" in stages:
            variants = self.pretrain_variants()
            self.pretrain_round(
                [
                    (variant, seed)
                    for seed in dict.fromkeys([self.settings.sweep_seed, *self.settings.seeds])
                    for variant in variants
                ]
            )
            self.equal_steps("pretrained", variants)
        self.write_docs()

    # -- tables

    def budget_run(
        self, stage: str, budget: str, variant: str, seed: int, learning_rate: float, pretrain_steps: int | None = None
    ) -> dict | None:
        """A variant's run under a budget. At equal wall-clock the reference's run is the one timed alone on the
        device that clocked the others, where it had to be timed again; else its equal-steps run, the same run."""
        fields = dict(
            stage=stage, variant=variant, seed=seed, learning_rate=learning_rate, pretrain_steps=pretrain_steps
        )
        if variant == REFERENCE and budget == "time":
            return self.find(**fields, budget="time") or self.find(**fields, budget="steps")
        return self.find(**fields, budget=budget)

    def comparison(self, stage: str, budget: str, variants: list[str]) -> list[dict]:
        """Per variant: its runs on the study's seeds, means and SDs, and paired intervals against the reference."""
        settings = self.settings
        pretrain_steps = settings.pretrain_steps if stage == "pretrained" else None

        def runs_of(variant):
            rate = self.best_learning_rate(stage, variant)
            if rate is None:
                return {}
            found = {
                seed: self.budget_run(stage, budget, variant, seed, rate, pretrain_steps) for seed in settings.seeds
            }
            return {seed: record for seed, record in found.items() if record}

        reference = runs_of(REFERENCE)
        rows = []
        for variant in variants:
            runs = runs_of(variant)
            if not runs:
                continue
            row = {
                "variant": variant,
                "description": VARIANTS[variant].description,
                "learning_rate": next(iter(runs.values()))["learning_rate"],
                "seeds": sorted(runs),
                "steps_reached": [runs[seed]["steps_reached"] for seed in sorted(runs)],
                "commits": sorted({run["commit"] for run in runs.values()}),
            }
            for key in ("test_nll", "valid_nll", "chrf", "rougeL", "step_seconds", "train_seconds"):
                values = [runs[seed][key] for seed in sorted(runs)]
                row[key], row[f"{key}_sd"] = stats.mean_sd(values)
                row[f"{key}_spread"] = max(values) - min(values)
                row[f"{key}_values"] = values
            paired = [seed for seed in sorted(runs) if seed in reference]
            row["paired_seeds"] = paired
            if variant != REFERENCE and paired:
                row["nll_t"] = stats.paired_t_interval([runs[s]["test_nll"] - reference[s]["test_nll"] for s in paired])
                row["chrf_t"] = stats.paired_t_interval([runs[s]["chrf"] - reference[s]["chrf"] for s in paired])
                tokens = runs[paired[0]]["sentence_tokens"]
                if any(r["sentence_tokens"] != tokens for r in [*map(runs.get, paired), *map(reference.get, paired)]):
                    raise ValueError(f"{variant}: test token counts differ from the reference's; cannot pair")
                row["nll_bootstrap"] = stats.paired_bootstrap_ratio(
                    _mean_over_seeds([runs[s] for s in paired]),
                    _mean_over_seeds([reference[s] for s in paired]),
                    tokens,
                    resamples=settings.bootstrap_resamples,
                )
                row["data_order_matches"] = all(same_data_order(runs[s], reference[s]) for s in paired)
                row["verdict"] = stats.verdict(
                    variant, REFERENCE, [row["nll_t"], row["nll_bootstrap"]], unit=" nats/token"
                )
            rows.append(row)
        return rows

    def write_docs(self) -> None:
        markdown, data = self.render()
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.docs_dir / "ablation.json", data)
        atomic_write_text(self.docs_dir / "ablation.md", markdown)

    def render(self) -> tuple[str, dict]:
        settings = self.settings
        recipe = self.recipe
        commit = git_commit()
        tables, data = {}, {}
        for stage, budget, title in (
            ("init", "steps", "Equal steps"),
            ("init", "time", "Equal wall-clock"),
            ("pretrained", "steps", "After shared pretraining, equal fine-tuning steps"),
        ):
            variants = self.variants if stage == "init" else self._pretrain_variants_or_none() or []
            tables[(stage, budget)] = (title, self.comparison(stage, budget, variants))
        runs = sorted(self.records.values(), key=lambda r: (r["stage"], r.get("budget") or "", r["variant"], r["seed"]))
        relevant = [r for r in runs if r["steps"] in (settings.steps, settings.pretrain_steps)]
        devices = sorted({r["device"] for r in relevant}) or [device_name(settings.device)]
        lines = [
            "# Decoder initialisation ablation",
            "",
            f"Written by `{settings.command or 'scripts/ablation.py'}` at commit `{commit}` (each table names the "
            "commits of its runs). Device: " + ", ".join(devices) + ".",
            "",
            f"Setup: encoder `{recipe.model.encoder}` (`make demo`'s multilingual-e5-small with its vocabulary "
            f"pruned to the corpus), pairs from `{Path(recipe.data.train_file).parent}` (languages "
            f"{', '.join(recipe.data.train_languages or ['all'])}); batch "
            f"{recipe.training['per_device_train_batch_size']}, {settings.steps} steps per run, "
            f"{'bf16 autocast' if recipe.training.get('bf16') else 'fp32'}, warmup "
            f"{recipe.training.get('warmup_steps', 0)} steps, {recipe.training.get('lr_scheduler_type', 'linear')} "
            f"decay. Seeds {settings.seeds}; learning-rate grid {settings.learning_rates} swept with seed "
            f"{settings.sweep_seed} on the validation split"
            + (
                f" (after pretraining: {settings.finetune_learning_rates})"
                if settings.finetune_learning_rates != settings.learning_rates
                else ""
            )
            + f". Stages asked for: {', '.join(settings.stages)}.",
            "",
            "Primary figure: test NLL per target token (teacher-forced, float32, label smoothing off), lower is "
            "better. Secondary: greedy chrF and ROUGE-L F. Means ± sample SD over seeds. Against "
            f"`{REFERENCE}` (same seeds, same data order): ΔNLL with a seed-level 95% t-interval and a paired "
            f"bootstrap over test sentences ({settings.bootstrap_resamples} resamples of sentences, seed "
            f"{stats.BOOTSTRAP_SEED}, ratio of summed NLL to summed tokens, per-sentence NLL averaged over the "
            "paired seeds: it covers test-set sampling, not seed variance). A difference counts as shown only when "
            "both intervals exclude 0.",
            "",
        ]
        if len(settings.seeds) < 3:
            lines += [f"**Fewer than 3 seeds ({settings.seeds}): every figure here is preliminary.**", ""]
        lines += self._status_lines()
        lines += self._sweep_lines("init")
        for (stage, budget), (title, rows) in tables.items():
            lines += self._table_lines(stage, budget, title, rows)
            data[f"{stage}_{budget}"] = rows
        if "pretrain" in settings.stages or tables[("pretrained", "steps")][1]:
            lines += self._sweep_lines("pretrained")
        if self.skipped:
            lines += ["## Skipped variants", ""]
            lines += [f"- `{name}`: {reason}." for name, reason in self.skipped.items()]
            lines.append("")
        equal_steps = tables[("init", "steps")][1]
        payload = {
            "commit": commit,
            "settings": dataclasses.asdict(settings),
            # `rows`: the equal-steps table (the demo report reads `variant` and `chrf_spread` from here)
            "rows": equal_steps,
            "tables": data,
            "learning_rates": {
                stage: {variant: self.best_learning_rate(stage, variant) for variant in self.variants}
                for stage in ("init", "pretrained")
            },
            "skipped": self.skipped,
            "runs": [
                {k: v for k, v in run.items() if k not in ("sentence_nll", "sentence_tokens")} for run in relevant
            ],
        }
        return "\n".join(lines).rstrip("\n") + "\n", payload

    def _pretrain_variants_or_none(self) -> list[str] | None:
        try:
            return self.pretrain_variants()
        except ValueError:
            return None

    def _status_lines(self) -> list[str]:
        """What ran and what did not, stage by stage."""
        settings = self.settings
        lines = ["## What ran", ""]
        swept = sum(len(self.sweep_records("init", v)) for v in self.variants)
        lines.append(
            f"- learning-rate sweep: {swept} of {len(self.variants) * len(settings.learning_rates)} runs "
            f"({settings.steps} steps, seed {settings.sweep_seed})."
        )
        for budget, label in (("steps", "equal steps"), ("time", "equal wall-clock")):
            done, missing = 0, []
            for variant in self.variants:
                rate = self.best_learning_rate("init", variant)
                for seed in settings.seeds:
                    found = rate is not None and self.budget_run("init", budget, variant, seed, rate)
                    if found:
                        done += 1
                    else:
                        missing.append(f"{variant}/seed {seed}")
            lines.append(
                f"- {label}: {done} of {len(self.variants) * len(settings.seeds)} runs"
                + (f"; not run: {', '.join(missing)}." if missing else ".")
            )
        variants = self._pretrain_variants_or_none()
        if "pretrain" not in settings.stages and not any(r["stage"] == "pretrain" for r in self.records.values()):
            lines.append("- pretraining stage: not run (not among the stages asked for).")
        elif variants is None:
            lines.append(
                "- pretraining stage: not run (it needs the equal-steps results of the SWCM variants to pick the "
                "best one, or --pretrain-variants)."
            )
        else:
            pretrained = [r for r in self.records.values() if r["stage"] == "pretrain" and r["variant"] in variants]
            pretrained = [r for r in pretrained if r["steps"] == settings.pretrain_steps]
            finetuned = [
                r
                for r in self.records.values()
                if r["stage"] == "pretrained"
                and r["pretrain_steps"] == settings.pretrain_steps
                and r["steps"] == settings.steps
                and r["variant"] in variants
            ]
            lines.append(
                f"- pretraining stage ({', '.join(variants)}; {settings.pretrain_steps} pretraining steps at lr "
                f"{self.recipe.training['learning_rate']:g} for every decoder, then fine-tuning): "
                f"{len(pretrained)} pretraining runs and {len(finetuned)} fine-tuning runs finished (of "
                f"{len(variants) * len(set([settings.sweep_seed, *settings.seeds]))} and "
                f"{len(variants) * (len(settings.grid('pretrained')) + len(settings.seeds) - 1)})."
            )
        left_out = [name for name in VARIANTS if name not in settings.variants]
        if left_out:
            lines.append(f"- variants not in this study: {', '.join(left_out)}.")
        lines.append("")
        return lines

    def _sweep_lines(self, stage: str) -> list[str]:
        variants = self.variants if stage == "init" else (self._pretrain_variants_or_none() or [])
        rows = []
        for variant in variants:
            records = {r["learning_rate"]: r for r in self.sweep_records(stage, variant)}
            if not records:
                continue
            best = self.best_learning_rate(stage, variant)
            cells = [
                f"{records[rate]['valid_nll']:.4f}" if rate in records else "not run"
                for rate in self.settings.grid(stage)
            ]
            rows.append([variant, *cells, f"{best:g}" if best is not None else "sweep incomplete"])
        if not rows:
            return []
        title = "Learning-rate sweep" + (" (fine-tuning after pretraining)" if stage == "pretrained" else "")
        headers = ["variant", *[f"lr {rate:g}" for rate in self.settings.grid(stage)], "chosen"]
        return [
            f"## {title}: validation NLL per token (seed {self.settings.sweep_seed})",
            "",
            markdown_table(headers, rows, numeric=[False] + [True] * (len(headers) - 1)).rstrip("\n"),
            "",
        ]

    def _table_lines(self, stage: str, budget: str, title: str, rows: list[dict]) -> list[str]:
        if not rows:
            return []

        def interval(value, digits=3):
            if not value or value["low"] is None:
                return f"{value['mean']:+.{digits}f} (no interval)" if value else ""
            return f"{value['mean']:+.{digits}f} [{value['low']:+.{digits}f}, {value['high']:+.{digits}f}]"

        def spread(row, key, digits):
            sd = row[f"{key}_sd"]
            return f"{row[key]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

        table = [
            [
                row["variant"],
                f"{row['learning_rate']:g}",
                spread(row, "test_nll", 3),
                interval(row.get("nll_t")),
                interval(row.get("nll_bootstrap")),
                spread(row, "chrf", 2),
                interval(row.get("chrf_t"), 2),
                spread(row, "rougeL", 2),
                ",".join(map(str, row["steps_reached"])),
                f"{row['step_seconds']:.2f}",
                ",".join(map(str, row["seeds"])),
            ]
            for row in sorted(rows, key=lambda r: r["test_nll"])
        ]
        headers = [
            "variant",
            "lr",
            "test NLL",
            "ΔNLL, t 95%",
            "ΔNLL, bootstrap 95%",
            "chrF",
            "ΔchrF, t 95%",
            "ROUGE-L F",
            "steps",
            "s/step",
            "seeds",
        ]
        commits = sorted({commit for row in rows for commit in row["commits"]})
        lines = [f"## {title}", ""]
        if budget == "time":
            lines += [
                f"Each variant trains until `{REFERENCE}`'s measured training time for {self.settings.steps} steps "
                "(same seed, timed alone on this device) is spent; its learning rate decays over "
                f"{TIME_HORIZON_HEADROOM:g} x the steps it was expected to reach, so the clock ends the run. The "
                "expected speed comes from its equal-steps run where that ran beside the reference's (same device, "
                f"same number of runs at once), otherwise from {SPEED_PROBE_STEPS} steps timed here. `steps` are "
                "the steps reached per seed; the reference's row is its run timed alone here where it had to be timed "
                "again. Times on a shared machine are noisy: identical architectures reach different step counts.",
                "",
            ]
        if stage == "pretrained":
            lines += [
                f"Every decoder got the identical pretraining budget ({self.settings.pretrain_steps} steps of DAE + "
                f"MT at lr {self.recipe.training['learning_rate']:g}, same seeds); fine-tuning starts from its "
                "`final/` folder (`model.init: pretrained`), with its own learning-rate sweep.",
                "",
            ]
        lines += [
            markdown_table(headers, table, numeric=[False] + [True] * 9 + [False]).rstrip("\n"),
            "",
            f"Runs from commit(s) {', '.join(f'`{c}`' for c in commits)}. Δ = variant minus `{REFERENCE}`; "
            "negative ΔNLL is better, positive ΔchrF is better.",
            "",
            "**Verdicts (test NLL):**",
            "",
        ]
        for row in rows:
            if row["variant"] == REFERENCE:
                continue
            verdict = row.get("verdict") or f"{row['variant']}: no paired seeds with the reference yet."
            if row.get("data_order_matches") is False:
                verdict += " (warning: the data order differed from the reference's)"
            lines.append(f"- {verdict}")
        lines.append("")
        return lines


def _mean_over_seeds(records: list[dict]) -> list[float]:
    """Each test sentence's summed NLL, averaged over the runs (seeds) given."""
    return [sum(values) / len(values) for values in zip(*(record["sentence_nll"] for record in records))]


def run_study(
    recipe: Recipe, settings: StudySettings, output_dir: Path, docs_dir: Path, render_only: bool = False
) -> Study:
    """Run what is missing (or, with `render_only`, only rewrite the docs from the finished runs)."""
    study = Study(recipe, settings, output_dir, docs_dir)
    if render_only:
        study.write_docs()
    else:
        study.run_all()
    return study


def command_line() -> str:
    return "python " + " ".join(shlex.quote(part) for part in sys.argv)
