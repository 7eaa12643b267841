"""The typed recipe: every default in one place, unknown keys refused by name, overrides and override files."""

import pytest
from conftest import ROOT

from xlm_swcm_hf.data import DenoisingCollator, noise_spans, temperature_sampling_probabilities
from xlm_swcm_hf.recipe import DataRecipe, GenerationRecipe, Recipe, RecipeError


CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_shipped_recipe_is_valid(path):
    recipe = Recipe.from_yaml(path)
    recipe.training_arguments()  # every training key is a real Seq2SeqTrainingArguments field with a valid value


def test_override_files_merge_section_by_section():
    recipe = Recipe.from_yaml([ROOT / "configs" / "translation.yaml", ROOT / "configs" / "overrides" / "smoke.yaml"])
    assert recipe.training["max_steps"] == 20 and recipe.training["learning_rate"] == 5.0e-5  # merged, not replaced
    assert recipe.generation.num_beams == 2 and recipe.data.max_source_length == 256


@pytest.mark.parametrize(
    "override, message",
    [
        ("adapter.r=8", "Unknown recipe section 'adapter'"),
        ("model.normal_layer_intervall=4", "model.normal_layer_intervall (did you mean 'normal_layer_interval'?)"),
        ("data.max_source_lenght=64", "did you mean 'max_source_length'"),
        ("training.learning_rte=1e-4", "did you mean 'learning_rate'"),
        ("generation.num_beam=3", "did you mean 'num_beams'"),
        ("model.normal_layer_interval=true", "model.normal_layer_interval=True has the wrong type"),
        ("data.max_source_length=2", "max_source_length=2 must be >= 3"),
        ("data.task=qa", "task='qa' is invalid"),
        ("model.path=null", "init=pretrained needs path"),
        ("generation.num_beams=0", "num_beams=0 must be >= 1"),
        ("training.output_dir=", "training.output_dir is required"),
        ("data.train_languages=zh", "data.train_languages='zh' has the wrong type"),
        ("training.learning_rate=.nan", "training.learning_rate=nan must be a finite number"),
        ("training.num_train_epochs=.inf", "training.num_train_epochs=inf must be a finite number"),
        ("training.adam_beta2=1.5", "training.adam_beta2=1.5 must be in [0, 1)"),
        ("training.adam_epsilon=0", "training.adam_epsilon=0 must be > 0"),
        ("data.mask_ratio=.nan", "mask_ratio=nan must be a finite number"),
        ("peft.lora_dropout=.nan", "peft.lora_dropout=nan must be a finite number"),
        ("generation.temperature=0", "temperature=0 must be > 0"),
        ("generation.length_penalty=.inf", "generation.length_penalty=inf must be a finite number"),
        ("model.normal_layer_interval=-1", "normal_layer_interval=-1 must be >= 0"),
        ("training.bf16=sometimes", "training.bf16='sometimes' has the wrong type: expected true, false or auto"),
    ],
)
def test_bad_recipes_name_the_key(override, message):
    with pytest.raises(RecipeError, match=rf"translation.yaml: .*{_escape(message)}"):
        Recipe.from_yaml(ROOT / "configs" / "translation.yaml", [override])


def _escape(text):
    import re

    return re.escape(text)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        Recipe.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        Recipe.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="not a YAML mapping"):
        Recipe.from_yaml(tmp_path / "list.yaml")


def test_defaults_are_stated_once_and_read_from_the_recipe():
    import inspect

    collator = inspect.signature(DenoisingCollator).parameters
    assert collator["mask_ratio"].default == DataRecipe.mask_ratio == 0.35
    assert collator["poisson_lambda"].default == DataRecipe.poisson_lambda
    assert collator["max_length"].default == DataRecipe.max_source_length
    assert inspect.signature(noise_spans).parameters["mask_ratio"].default == DataRecipe.mask_ratio
    temperature = inspect.signature(temperature_sampling_probabilities).parameters["temperature"].default
    assert temperature == DataRecipe.sampling_temperature == pytest.approx(1 / 0.3)


def test_generation_travels_one_way():
    recipe = Recipe.from_yaml(ROOT / "configs" / "demo.yaml")
    arguments = recipe.training_arguments()
    # The trainer falls back to the model's generation_config when these are unset.
    assert arguments.generation_num_beams is None and arguments.generation_max_length is None

    class Holder:
        from transformers import GenerationConfig

        generation_config = GenerationConfig()

    model = Holder()
    recipe.generation.apply_to(model)
    assert model.generation_config.num_beams == 4 and model.generation_config.no_repeat_ngram_size == 3
    assert GenerationRecipe().settings() == {"num_beams": 4}


def test_model_defaults_belong_to_the_model():
    recipe = Recipe.from_yaml(ROOT / "configs" / "tiny.yaml", ["model.lm_head_init=null"])
    kwargs = recipe.model.from_encoder_kwargs()
    assert "lm_head_init" not in kwargs and "init_scheme" not in kwargs  # from_encoder's own defaults apply
    assert kwargs["normal_layer_interval"] == 3 and kwargs["share_weights"] is True


def test_training_values_are_typed_and_yaml_float_quirks_are_read_as_numbers():
    recipe = Recipe.from_yaml(ROOT / "configs" / "translation.yaml", ["training.learning_rate=3e-5"])
    assert recipe.training["learning_rate"] == 3e-5  # YAML 1.1 reads 3e-5 as a string: the README's own command
    assert recipe.training_arguments().learning_rate == 3e-5
    with pytest.raises(RecipeError, match="training.max_steps='many' has the wrong type"):
        Recipe.from_yaml(ROOT / "configs" / "translation.yaml", ["training.max_steps=many"])
    with pytest.raises(RecipeError, match="training.learning_rate='fast' has the wrong type"):
        Recipe.from_yaml(ROOT / "configs" / "translation.yaml", ["training.learning_rate=fast"])


def test_one_generation_length_limit_at_a_time():
    from transformers import GenerationConfig

    class Holder:
        generation_config = GenerationConfig(max_length=257)

    GenerationRecipe(max_new_tokens=12).apply_to(Holder)
    assert Holder.generation_config.max_new_tokens == 12 and Holder.generation_config.max_length is None
    GenerationRecipe(max_length=30).apply_to(Holder)
    assert Holder.generation_config.max_length == 30 and Holder.generation_config.max_new_tokens is None


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("training:\n  output_dir: a\ntraining:\n  output_dir: b\n", "'training'", 3),
        ("training:\n  output_dir: a\n  learning_rate: 1.0e-4\n  learning_rate: 1.0e-3\n", "'learning_rate'", 4),
        ("data: {columns: {source: a, source: b}}\n", "'source'", 1),
    ],
)
def test_a_key_given_twice_is_refused_naming_it_and_its_line(tmp_path, text, key, line):
    """Plain YAML keeps the last of two `training:` sections silently."""
    (tmp_path / "twice.yaml").write_text(text)
    with pytest.raises(RecipeError, match=rf"twice.yaml: line {line}: key {key} is given twice"):
        Recipe.from_yaml(tmp_path / "twice.yaml")


def test_anchors_and_merge_keys_still_work_and_a_bad_override_value_is_named():
    from xlm_swcm_hf.recipe import load_yaml

    with pytest.raises(RecipeError, match=r"Override 'training.max_steps=\[1': the value is not valid YAML"):
        Recipe.from_yaml(ROOT / "configs" / "translation.yaml", ["training.max_steps=[1"])

    assert load_yaml("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  a: 3\n")["other"] == {"a": 3, "b": 2}


@pytest.mark.parametrize("bf16_seconds, expected", [(0.2, True), (0.95, False), (5.0, False)])
def test_bf16_auto_follows_the_measurement(monkeypatch, bf16_seconds, expected):
    """`training.bf16: auto` becomes bf16 only where the probe measures it clearly faster than fp32 (fp32 takes 1 s
    a probe step here): a CPU that emulates bf16 trains in fp32."""
    from xlm_swcm_hf.training import precision

    monkeypatch.setattr(precision, "_probe_seconds", lambda device, bf16, block, inputs: bf16_seconds if bf16 else 1.0)
    precision.choose_bf16.cache_clear()
    try:
        recipe = Recipe.from_yaml(ROOT / "configs" / "translation.yaml", ["training.bf16=auto"])
        assert recipe.training["bf16"] == "auto"  # kept as written (the card shows the recipe)
        assert recipe.training_arguments().bf16 is expected and recipe.uses_bf16 is expected
        assert recipe.training_arguments(bf16=True).bf16 is True  # an explicit value is not measured
        choice = precision.choose_bf16("cpu")
        assert f"{bf16_seconds / 1.0:.2f}x" in choice.summary()
        assert choice.summary().startswith(f"training.bf16=auto -> {'bf16' if expected else 'fp32'} on cpu")
    finally:
        precision.choose_bf16.cache_clear()


def test_bf16_auto_probe_runs_on_this_cpu():
    """The real probe: both timings measured, the choice consistent with them."""
    from xlm_swcm_hf.training.precision import BF16_MAX_TIME_SHARE, choose_bf16

    choose_bf16.cache_clear()
    choice = choose_bf16("cpu")
    assert choice.fp32_s > 0 and choice.bf16_s > 0
    assert choice.use_bf16 == (choice.bf16_s <= BF16_MAX_TIME_SHARE * choice.fp32_s)


def test_bf16_auto_on_a_gpu_is_its_bf16_support(monkeypatch):
    """On CUDA the probe is not timed (too small for a GPU): bf16 where the GPU supports it."""
    import torch

    from xlm_swcm_hf.training import precision

    def untimed(*args):
        raise AssertionError("the probe ran on the GPU")

    monkeypatch.setattr(precision, "_probe_seconds", untimed)
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        precision.choose_bf16.cache_clear()
        choice = precision.choose_bf16("cuda")
        assert choice.use_bf16 is supported
        assert choice.summary().endswith("supports bf16" if supported else "lacks bf16")
    precision.choose_bf16.cache_clear()
