"""The decoder-initialisation study (xlm_swcm_experiments/ablation/, runs.py, statistics.py) on a tiny model and real
pairs."""

import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import run_script, write_jsonl
from conftest import tiny_recipe as shared_tiny_recipe
from transformers import TrainerCallback, TrainerControl, TrainerState, XLMRobertaConfig

from xlm_swcm_experiments import ablation, runs
from xlm_swcm_experiments import statistics as stats


# ------------------------------------------------------------------------------------------------ fixtures


def tiny_recipe(real_pairs, tiny_encoder, output_dir, *overrides):
    """The shared tiny recipe with short greedy test decoding (the ablation decodes every test sentence)."""
    return shared_tiny_recipe(real_pairs, tiny_encoder, output_dir, "generation.max_new_tokens=8", *overrides)


def lines_of(path):
    return path.read_text().splitlines() if path.exists() else []


# ------------------------------------------------------------------------------------------------ statistics


def test_t_quantiles_match_the_tables():
    assert stats.t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)
    assert stats.t_quantile_975(2) == pytest.approx(4.3027, abs=1e-4)
    for df, expected in ((31, 2.039513), (40, 2.021075), (60, 2.000298), (120, 1.979930), (10**6, 1.959966)):
        assert stats.t_quantile_975(df) == pytest.approx(expected, abs=2e-6), df


def test_paired_t_interval_and_one_seed():
    interval = stats.paired_t_interval([1.0, 2.0, 3.0])
    half = 4.302652730 * 1.0 / math.sqrt(3)
    assert interval["mean"] == 2.0 and interval["sd"] == 1.0
    assert (interval["low"], interval["high"]) == pytest.approx((2.0 - half, 2.0 + half))
    single = stats.paired_t_interval([0.5])
    assert single["low"] is None and stats.contains_zero(single)
    assert "no difference shown (one seed" in stats.verdict("a", "b", [single])


def test_paired_bootstrap_is_a_ratio_of_sums_fixed_by_its_seed():
    tokens = [1, 3, 10, 2, 4]
    reference = [2.0, 6.0, 20.0, 4.0, 8.0]  # 2 nats/token
    shifted = [value + 0.5 * count for value, count in zip(reference, tokens)]  # +0.5 nats/token everywhere
    result = stats.paired_bootstrap_ratio(shifted, reference, tokens, resamples=500)
    assert result["mean"] == pytest.approx(0.5) and result["low"] == pytest.approx(0.5)
    assert result["high"] == pytest.approx(0.5)
    noisy = [value + delta for value, delta in zip(reference, [3.0, -2.0, 1.0, -3.0, 0.5])]
    first = stats.paired_bootstrap_ratio(noisy, reference, tokens, resamples=500)
    assert first == stats.paired_bootstrap_ratio(noisy, reference, tokens, resamples=500)  # same seed, same interval
    assert first["mean"] == pytest.approx((sum(noisy) - sum(reference)) / sum(tokens))
    assert first["low"] < first["mean"] < first["high"]


def test_verdict_words():
    shown = {"mean": -0.2, "low": -0.3, "high": -0.1}
    straddles = {"mean": -0.2, "low": -0.4, "high": 0.05}
    assert stats.verdict("v", "r", [shown, shown]).startswith("v is better than r")
    assert stats.verdict("v", "r", [dict(shown, mean=0.2, low=0.1, high=0.3)]).startswith("v is worse than r")
    # It names the interval that contains 0, not both.
    assert stats.verdict("v", "r", [shown, straddles]).endswith(
        "no difference shown (-0.200, 95% intervals [-0.300, -0.100]; [-0.400, +0.050]: [-0.400, +0.050] contains 0)."
    )


# ------------------------------------------------------------------------------------------------ callbacks


def test_wall_clock_budget_stops_training_on_time_with_a_replaceable_clock():
    ticks = iter(range(0, 1000, 4))  # every reading of the clock advances 4 "seconds"
    budget = runs.WallClockBudget(seconds=10, clock=lambda: next(ticks))
    args, state, control = SimpleNamespace(device=torch.device("cpu")), TrainerState(), TrainerControl()
    budget.on_train_begin(args, state, control)
    for step in range(1, 10):
        state.global_step = step
        budget.on_step_end(args, state, control)
        if control.should_training_stop:
            break
    assert (budget.steps, budget.elapsed, budget.stopped_by_clock) == (3, 12, True)
    measuring = runs.WallClockBudget()  # no budget: it only measures
    measuring.on_train_begin(args, state, control := TrainerControl())
    measuring.on_step_end(args, state, control)
    assert not control.should_training_stop


# ------------------------------------------------------------------------------------------------ the study


def test_ablation_runs_variants_and_writes_the_table(real_pairs, tiny_encoder, tmp_path):
    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused")
    settings = ablation.StudySettings(
        variants=["swcm_pre_emb_head", "encoder_decoder_model"],
        seeds=[0, 1],
        steps=2,
        learning_rates=[3e-3],
        stages=["time"],  # pulls in the sweep and the equal-steps runs it needs
        bootstrap_resamples=200,
    )
    study = ablation.run_study(recipe, settings, tmp_path / "ablation", tmp_path / "docs")
    assert settings.variants[0] == "random_emb_head"  # the reference is always there
    rows = ablation.comparison(study, "init", "steps", study.variants)
    assert sorted(row["variant"] for row in rows) == ["encoder_decoder_model", "random_emb_head", "swcm_pre_emb_head"]
    for row in rows:
        assert row["seeds"] == [0, 1] and row["test_nll"] > 0 and row["learning_rate"] == 3e-3
        if row["variant"] != "random_emb_head":
            assert row["data_order_matches"], row["variant"]  # same seed, same batches
            assert row["nll_t"]["n"] == 2 and row["nll_bootstrap"]["items"] == 24
            assert row["verdict"].startswith(row["variant"])
    records = [json.loads(line) for line in lines_of(tmp_path / "ablation" / "ablation_runs.jsonl")]
    assert len(records) == 3 * 2 + 2 * 2  # equal steps (the one-rate sweep is seed 0's run) + equal time
    for record in records:
        assert len(record["sentence_nll"]) == 24 and record["valid_nll"] > 0
    timed = [record for record in records if record["budget"] == "time"]
    assert all(record["time_budget"] > 0 and record["steps_reached"] >= 1 for record in timed)
    table = (tmp_path / "docs" / "ablation.md").read_text()
    for text in (
        "## Equal steps",
        "## Equal wall-clock",
        "ΔNLL, bootstrap 95%",
        "**Verdicts (test NLL):**",
        "| encoder_decoder_model |",
        "Fewer than 3 seeds",
        "at commit `",
        "equal steps: 6 of 6 runs",
    ):
        assert text in table, text
    assert "pretraining stage: not run" in table
    docs = json.loads((tmp_path / "docs" / "ablation.json").read_text())
    assert {row["variant"] for row in docs["rows"]} >= {"random_emb_head"} and "chrf_spread" in docs["rows"][0]
    assert all("sentence_nll" not in run for run in docs["runs"])
    # Finished runs are reused when the same command runs again.
    before = lines_of(tmp_path / "ablation" / "ablation_runs.jsonl")
    ablation.run_study(recipe, settings, tmp_path / "ablation", tmp_path / "docs")
    assert lines_of(tmp_path / "ablation" / "ablation_runs.jsonl") == before
    # --render-only: the docs again from the finished runs, nothing trained (even for a variant that never ran).
    more = ablation.StudySettings(**{**settings.__dict__, "variants": [*settings.variants, "swcm_pre_scaled_freeze"]})
    ablation.run_study(recipe, more, tmp_path / "ablation", tmp_path / "docs2", render_only=True)
    assert lines_of(tmp_path / "ablation" / "ablation_runs.jsonl") == before
    rendered = (tmp_path / "docs2" / "ablation.md").read_text()
    assert "equal steps: 6 of 8 runs; not run: swcm_pre_scaled_freeze/seed 0" in rendered
    assert "- variants not in this study: swcm_pre_random_head" in rendered


def test_learning_rate_is_chosen_per_variant_on_validation_nll(real_pairs, tiny_encoder, tmp_path):
    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused")
    settings = ablation.StudySettings(
        variants=["swcm_pre_emb_head"], seeds=[3, 4], steps=5, learning_rates=[1e-3, 2e-3]
    )
    study = ablation.Study(recipe, settings, tmp_path / "ablation", tmp_path / "docs")
    assert settings.sweep_seed == 3
    fake = {("random_emb_head", 1e-3): (2.0, 1.0), ("random_emb_head", 2e-3): (1.5, 9.0)}
    for (variant, rate), (valid, test) in fake.items():
        record = dict(stage="init", budget="steps", variant=variant, seed=3, learning_rate=rate, steps=5)
        study.records[ablation.record_key({**record, "pretrain_steps": None})] = {
            **record,
            "valid_nll": valid,
            "test_nll": test,
        }
    assert study.best_learning_rate("init", "random_emb_head") == 2e-3  # validation decides, not test
    assert study.best_learning_rate("init", "swcm_pre_emb_head") is None  # grid not finished


def test_init_candidates_change_the_model_and_its_training(real_pairs, tiny_encoder, tmp_path):
    from xlm_swcm_hf.modeling_xlm_swcm import shared_weight_mapping

    # Interval 1: custom, normal, custom, normal, custom (3 encoder layers), so there are new layers to train.
    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused", "model.normal_layer_interval=1")

    def prepared(variant, max_steps=2, budget=2):
        run_recipe = ablation.variant_recipe(recipe, variant, 0, 1e-3, tmp_path / variant)
        return ablation.prepare_run(run_recipe, variant, 0, max_steps, budget, "cpu")

    # Post-LN with copied LayerNorms but random cross-attention.
    model = prepared("swcm_post_random_xattn_emb_head").parts.model
    parameters = dict(model.named_parameters())
    mapping = shared_weight_mapping(model.config)
    copied_norms = [name for name in mapping if "layer_norm" in name]
    assert copied_norms and all(
        torch.equal(parameters[f"model.{n}"], parameters[f"model.{mapping[n]}"]) for n in copied_norms
    )
    query = "decoder.layers.0.encoder_attn.q_proj.weight"
    assert not torch.equal(parameters[f"model.{query}"], parameters[f"model.{mapping[query]}"])
    self_query = "decoder.layers.0.self_attn.q_proj.weight"
    assert torch.equal(parameters[f"model.{self_query}"], parameters[f"model.{mapping[self_query]}"])

    # Per-group learning rates: the copied tensors (cross-attention is not copied in the scaled scheme) at 0.2 x.
    run = prepared("swcm_pre_scaled_group_lr")
    groups = run.parts.trainer.optimizer.param_groups
    rates = {group["name"]: group["lr"] for group in groups}
    assert rates["copied"] == pytest.approx(ablation.COPIED_LR_MULTIPLIER * 1e-3) and rates["new"] == 1e-3
    copied_count = sum(len(group["params"]) for group in groups if group["name"].startswith("copied"))
    pre_mapping = shared_weight_mapping(run.parts.model.config)  # pre-LN: no LayerNorms copied
    assert copied_count == run.notes["copied_tensors"] == len([n for n in pre_mapping if ".encoder_attn." not in n])
    run.parts.trainer.train()
    assert run.parts.trainer.optimizer.param_groups[0]["name"] == "copied"  # the trainer kept our optimizer

    # Freezing: copied sublayers fixed for round(0.2 x 10) = 2 steps, then trained; new parameters train at once.
    run = prepared("swcm_pre_scaled_freeze", max_steps=3, budget=10)
    model = run.parts.model
    copied = "model.decoder.layers.0.ffn1.fc1.weight"
    new = "model.decoder.layers.1.ffn.fc2.weight"  # a normal layer's output (zero at the start in this scheme)
    seen = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            parameters = dict(model.named_parameters())
            seen.append((parameters[copied].detach().clone(), parameters[new].detach().clone()))

    start = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    for callback in (*run.callbacks, Snapshot()):
        run.parts.trainer.add_callback(callback)
    run.parts.trainer.train()
    assert run.notes["frozen_until_step"] == 2
    assert torch.equal(seen[0][0], start[copied]) and torch.equal(seen[1][0], start[copied])
    assert not torch.equal(seen[2][0], start[copied])
    assert not torch.equal(seen[1][1], start[new])  # step 1 has learning rate 0 (warmup); step 2 does not
    assert all(parameter.requires_grad for parameter in model.parameters())


def test_mlm_head_variant_uses_the_encoders_head_or_says_why_not(real_pairs, tiny_encoder, tmp_path):
    from transformers import XLMRobertaForMaskedLM

    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused")
    reason = ablation.skip_reason("swcm_pre_scaled_mlm_head", recipe)
    assert "has no masked-LM head" in reason
    study = ablation.Study(
        recipe, ablation.StudySettings(variants=["swcm_pre_scaled_mlm_head"], seeds=[0], steps=1), tmp_path, tmp_path
    )
    assert study.skipped == {"swcm_pre_scaled_mlm_head": reason} and study.variants == ["random_emb_head"]
    markdown, _ = ablation.render(study)
    assert "## Skipped variants" in markdown and "has no masked-LM head" in markdown

    # An encoder folder with a masked-LM head: the head's transform is copied in front of the output layer.
    config = XLMRobertaConfig.from_pretrained(tiny_encoder)
    torch.manual_seed(3)
    with_head = tmp_path / "mlm-encoder"
    XLMRobertaForMaskedLM(config).save_pretrained(with_head)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (tiny_encoder / name).exists():
            shutil.copy(tiny_encoder / name, with_head / name)
    mlm_recipe = tiny_recipe(real_pairs, with_head, tmp_path / "unused")
    assert ablation.skip_reason("swcm_pre_scaled_mlm_head", mlm_recipe) is None
    state = ablation.encoder_mlm_head_state(with_head)
    record = ablation.run_variant(mlm_recipe, "swcm_pre_scaled_mlm_head", 0, 1e-3, 1, tmp_path / "mlm-run", "cpu")
    assert record["steps_reached"] == 1 and record["test_nll"] > 0 and record["chrf"] >= 0
    run = ablation.prepare_run(
        ablation.variant_recipe(mlm_recipe, "swcm_pre_scaled_mlm_head", 0, 1e-3, tmp_path / "m"),
        "swcm_pre_scaled_mlm_head",
        0,
        1,
        1,
        "cpu",
    )
    head = run.parts.model.lm_head
    assert isinstance(head, ablation.MLMHeadTransform) and torch.equal(head.dense.weight, state["dense.weight"])
    assert torch.equal(head.decoder.weight, run.parts.model.model.get_input_embeddings().weight)


def test_pretraining_stage_pretrains_each_decoder_identically_then_fine_tunes(real_pairs, tiny_encoder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(real_pairs, data, ignore=shutil.ignore_patterns("full"))
    (data / "monolingual_ug.jsonl").write_text(json.dumps({"text": "ئېيت ئېيت", "lang": "ug"}) + "\n")
    recipe = tiny_recipe(data, tiny_encoder, tmp_path / "unused")
    settings = ablation.StudySettings(
        variants=["swcm_pre_emb_head"],
        seeds=[0],
        steps=2,
        pretrain_steps=2,
        learning_rates=[3e-3],
        finetune_learning_rates=[3e-3, 1e-3],  # the fine-tuning sweep after pretraining has its own grid
        stages=["pretrain"],
        pretrain_variants=["swcm_pre_emb_head"],
        bootstrap_resamples=200,
    )
    study = ablation.run_study(recipe, settings, tmp_path / "ablation", tmp_path / "docs")
    pretraining = tmp_path / "ablation" / "pretraining-data"
    assert len(lines_of(pretraining / "targets_ug.jsonl")) == 80  # the train split's ug targets
    monolingual = ablation.pretraining_recipe(recipe, tmp_path / "ablation").data.monolingual_files
    assert monolingual["ug"][0].endswith("monolingual_ug.jsonl") and set(monolingual) == {"ug", "kk", "mn", "zh"}
    records = list(study.records.values())
    pretrained = [r for r in records if r["stage"] == "pretrain"]
    assert {r["variant"] for r in pretrained} == {"random_emb_head", "swcm_pre_emb_head"}
    assert {(r["steps"], r["learning_rate"], r["steps_reached"]) for r in pretrained} == {(2, 3e-3, 2)}
    assert all((Path(r["path"]) / "config.json").exists() for r in pretrained)
    finetuned = [r for r in records if r["stage"] == "pretrained"]
    assert {r["variant"] for r in finetuned} == {"random_emb_head", "swcm_pre_emb_head"}
    assert sorted(r["learning_rate"] for r in finetuned) == [1e-3, 1e-3, 3e-3, 3e-3]
    assert not [r for r in records if r["stage"] == "init"]
    table = (tmp_path / "docs" / "ablation.md").read_text()
    assert "(after pretraining: [0.003, 0.001])" in table and "| lr 0.003 | lr 0.001 |" in table
    assert "## After shared pretraining, equal fine-tuning steps" in table
    assert "no difference shown (one seed gives no interval)" in table


def test_ablation_script_refuses_bad_options(tmp_path, capsys):
    output = tmp_path / "abl"
    cases = [
        (["--stages", "warmup"], "unknown stages ['warmup']"),
        (["--lrs", "fast"], "--lrs 'fast'"),
        (["--pretrain-variants", "encoder_decoder_model"], "cannot be saved as XLM-SWCM"),
        (["--seeds", "0,0"], "must not repeat"),
        (["--finetune-lrs", "1e-4,1e-4"], "must not repeat"),
        (["--finetune-lrs", "0"], "--finetune-lrs must be > 0"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "no CUDA GPU is available"))
    for argv, message in cases:
        assert run_script("ablation", [*argv, "--output", output, "--docs", tmp_path / "docs"]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not output.exists() and not (tmp_path / "docs").exists()


def test_equal_time_measures_a_variants_speed_here_when_its_run_did_not_run_beside_the_references(
    real_pairs, tiny_encoder, tmp_path
):
    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused")
    base = dict(variants=["swcm_pre_emb_head"], seeds=[0], steps=2, learning_rates=[3e-3], bootstrap_resamples=200)
    output, docs = tmp_path / "ablation", tmp_path / "docs"
    ablation.run_study(recipe, ablation.StudySettings(**base, stages=["steps"]), output, docs)
    results = output / "ablation_runs.jsonl"
    records = [json.loads(line) for line in lines_of(results)]
    assert ablation.side_by_side(*records)  # one after another on this device
    # The variant's run as it was recorded on a GPU: its speed says nothing about this CPU.
    records[1].update(device="cuda (NVIDIA H200)", step_seconds=0.001)
    write_jsonl(results, records)
    study = ablation.run_study(recipe, ablation.StudySettings(**base, stages=["time"]), output, docs)
    records = [json.loads(line) for line in lines_of(results)]
    probes = [r for r in records if r["budget"] == "speed"]
    timed = [r for r in records if r["budget"] == "time"]
    assert len(probes) == 1 and probes[0]["steps"] == ablation.SPEED_PROBE_STEPS == probes[0]["steps_reached"]
    assert probes[0]["variant"] == "swcm_pre_emb_head" and probes[0]["step_seconds"] > 0
    assert len(timed) == 1  # the reference's equal-steps clock ran alone here: it is the budget
    expected = math.ceil(ablation.TIME_HORIZON_HEADROOM * timed[0]["time_budget"] / probes[0]["step_seconds"])
    assert timed[0]["horizon"] == expected
    assert "25 steps timed here" in (docs / "ablation.md").read_text() and study.records


def test_only_a_clock_that_ran_alone_on_this_device_is_a_time_budget():
    here = SimpleNamespace(settings=SimpleNamespace(device="cpu"))
    alone = {"device": runs.device_name("cpu"), "concurrent_runs": 1}
    assert ablation.Study.timed_alone(here, alone)
    assert not ablation.Study.timed_alone(here, {**alone, "concurrent_runs": 2})
    assert not ablation.Study.timed_alone(here, {**alone, "device": "cuda (NVIDIA H200)"})
    # Made before runs counted their neighbours: whether it shared the machine is unknown.
    assert not ablation.Study.timed_alone(here, {"device": alone["device"]})


def test_the_reference_at_equal_wall_clock_is_its_run_timed_again_where_there_is_one():
    records = {("random_emb_head", "steps"): {"device": "cuda (NVIDIA H200)"}}
    here = SimpleNamespace(find=lambda **fields: records.get((fields["variant"], fields["budget"])))
    arguments = ("init", "time", "random_emb_head", 0, 1e-3)
    assert ablation.Study.budget_run(here, *arguments) is records[("random_emb_head", "steps")]
    records[("random_emb_head", "time")] = {"device": runs.device_name("cpu"), "concurrent_runs": 1}
    assert ablation.Study.budget_run(here, *arguments) is records[("random_emb_head", "time")]
    assert ablation.Study.budget_run(here, "init", "steps", "random_emb_head", 0, 1e-3)["device"].startswith("cuda")
    # Only the reference's equal-steps run is its equal-time run: a variant's never stands in for its timed run.
    records[("swcm_pre_emb_head", "steps")] = {"device": runs.device_name("cpu")}
    assert ablation.Study.budget_run(here, "init", "time", "swcm_pre_emb_head", 0, 1e-3) is None


@pytest.mark.slow  # spawned processes
def test_jobs_run_each_round_in_processes_of_their_own_with_the_same_results(real_pairs, tiny_encoder, tmp_path):
    """--jobs N: the sweep's and the seeds' runs go to N spawned processes; the records are those of one process."""
    recipe = tiny_recipe(real_pairs, tiny_encoder, tmp_path / "unused")
    base = dict(variants=["swcm_pre_emb_head"], seeds=[0, 1], steps=2, learning_rates=[3e-3], stages=["steps"])
    results = {}
    for jobs in (1, 2):
        settings = ablation.StudySettings(**base, jobs=jobs, bootstrap_resamples=200)
        study = ablation.run_study(recipe, settings, tmp_path / f"jobs{jobs}", tmp_path / f"docs{jobs}")
        records = [json.loads(line) for line in lines_of(tmp_path / f"jobs{jobs}" / "ablation_runs.jsonl")]
        assert len(records) == 2 * 2  # two variants (the reference joins), two seeds: two rounds of two runs
        results[jobs] = {ablation.record_key(record): record for record in records}
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else torch.get_num_threads()
        assert {record["device"] for record in records} == {f"cpu ({threads} thread{'' if threads == 1 else 's'})"}
        assert "## Equal steps" in (tmp_path / f"docs{jobs}" / "ablation.md").read_text() and study.records
    assert results[1].keys() == results[2].keys()
    for key, record in results[1].items():
        parallel = results[2][key]
        assert parallel["data_order"] == record["data_order"], key
        assert parallel["valid_nll"] == pytest.approx(record["valid_nll"], rel=1e-3), key
        assert parallel["sentence_nll"] == pytest.approx(record["sentence_nll"], rel=1e-3, abs=1e-3), key
    # Equal wall-clock needs the reference timed alone on this device: the parallel study times it again, alone.
    for jobs in (1, 2):
        settings = ablation.StudySettings(**{**base, "stages": ["time"]}, jobs=jobs, bootstrap_resamples=200)
        ablation.run_study(recipe, settings, tmp_path / f"jobs{jobs}", tmp_path / f"docs{jobs}")
        records = [json.loads(line) for line in lines_of(tmp_path / f"jobs{jobs}" / "ablation_runs.jsonl")]
        retimed = [r for r in records if r["budget"] == "time" and r["variant"] == "random_emb_head"]
        timed = [r for r in records if r["budget"] == "time" and r["variant"] == "swcm_pre_emb_head"]
        assert len(retimed) == (0 if jobs == 1 else 2) and len(timed) == 2
        assert all(record["concurrent_runs"] == 1 for record in retimed + timed)  # clocks that shared nothing
        assert not any(r["budget"] == "speed" for r in records)  # speeds from runs made side by side
        budgets = {r["seed"]: r["train_seconds"] for r in (retimed or records) if r["variant"] == "random_emb_head"}
        assert all(record["time_budget"] == budgets[record["seed"]] for record in timed)
