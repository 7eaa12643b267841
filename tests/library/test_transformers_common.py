"""transformers' own common model tests (`ModelTesterMixin`, `GenerationTesterMixin`, `ConfigTester`) on XLM-SWCM.

XLM-SWCM is tested here the way a model inside transformers is: a model tester in the style of
`tests/models/bart/test_modeling_bart.py` (tiny config, `prepare_config_and_inputs`,
`prepare_config_and_inputs_for_common`, ...) and a test class mixing in transformers' test mixins.

The mixins are not on PyPI: they come from a copy of transformers' test folder for one release (5.24.0, the locked
one), found at `$XLM_SWCM_TRANSFORMERS_TESTS`, else at `<repo>/../shared/transformers-tests` (the folder holding
`tests/`, `utils/` and `VERSION`, the release they come from). Without it, or with another transformers release
installed than `VERSION` names, this module skips with the reason (`.ci/run` makes that a failure where the folder is
laid); tests/library/test_export.py checks export, compile and static-cache generation directly and always runs.
The mixins also need `parameterized` and `httpx` (the `dev` extra).

The copy imports as the package `tests` (its modules use `from tests.... import` and relative imports). This
project's own tests folder is also called `tests`, but it has no `__init__.py`: pytest imports our files as
top-level modules (by rootdir), never as `tests.*`, and a regular package (the copy's, with `__init__.py`) wins over
a namespace directory wherever either sits on `sys.path`. The copy is put on `sys.path` only while importing it.
"""

import importlib
import os
import sys
import tempfile
import unittest
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from conftest import ROOT


TRANSFORMERS_TESTS = Path(
    os.environ.get("XLM_SWCM_TRANSFORMERS_TESTS") or ROOT.parent / "shared" / "transformers-tests"
).resolve()


def _skip_or_fail(reason: str):
    """Skip the module; under XLM_SWCM_REQUIRE_COMMON_TESTS=1 (.ci/run sets it where ../shared is laid) fail instead,
    so that CI cannot go green by skipping them."""
    if os.environ.get("XLM_SWCM_REQUIRE_COMMON_TESTS") == "1":
        pytest.fail(f"{reason}, and XLM_SWCM_REQUIRE_COMMON_TESTS=1 asks for them to run", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def _check_mixins_release(folder: Path):
    """The mixins are bound to the transformers release they were copied from (its VERSION file): with another
    release installed they fail to import or test what that release does not have, so they skip with the reason."""
    version_file = folder / "VERSION"
    if not version_file.is_file():
        _skip_or_fail(f"{version_file} is missing: it names the transformers release the common-test mixins are for")
    mixins_release = version_file.read_text(encoding="utf-8").strip()
    if transformers.__version__ != mixins_release:
        _skip_or_fail(
            f"transformers {transformers.__version__} installed, the common-test mixins are for {mixins_release} "
            "(`make install` installs the locked release)"
        )


def _import_transformers_test_mixins(folder: Path):
    """Import the copy's `tests` package and the modules used here; put `folder` on sys.path only meanwhile."""
    if not (folder / "tests" / "test_modeling_common.py").is_file():
        _skip_or_fail(
            f"transformers' test mixins not found at {folder} (set XLM_SWCM_TRANSFORMERS_TESTS to the folder holding "
            "transformers' `tests/` and `utils/` for the installed transformers version)"
        )
    _check_mixins_release(folder)
    for name in ("parameterized", "httpx"):  # imported by the mixins (`pip install -e .[dev]`)
        pytest.importorskip(name, reason=f"transformers' test mixins import {name} (in the `dev` extra)")
    loaded = sys.modules.get("tests")
    if loaded is not None and Path(getattr(loaded, "__file__", None) or "/").parent != folder / "tests":
        pytest.skip(
            f"another package named `tests` is already imported ({loaded!r}); transformers' mixins import as `tests`",
            allow_module_level=True,
        )
    sys.path.insert(0, str(folder))
    try:
        with warnings.catch_warnings():
            # Their markers (generate, torch_compile_test, flash_attn_test, ...: pytest.ini.example) are registered
            # in transformers' own pytest config, not in ours; marking works without registration.
            warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
            modules = [
                importlib.import_module(name)
                for name in (
                    "tests.test_modeling_common",
                    "tests.generation.test_utils",
                    "tests.test_configuration_common",
                )
            ]
    finally:
        sys.path.remove(str(folder))
    return modules


_common, _generation, _configuration = _import_transformers_test_mixins(TRANSFORMERS_TESTS)
ModelTesterMixin, ids_tensor = _common.ModelTesterMixin, _common.ids_tensor
GenerationTesterMixin = _generation.GenerationTesterMixin
ConfigTester = _configuration.ConfigTester

from transformers.models.auto import modeling_auto  # noqa: E402
from transformers.testing_utils import require_torch, require_torch_fp16, torch_device  # noqa: E402

from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration, XLMSWCMModel  # noqa: E402
from xlm_swcm_hf.modeling_xlm_swcm import XLMSWCMDecoder, shift_tokens_right  # noqa: E402


# Where transformers lists BART (`"bart": "BartModel"` in MODEL_MAPPING_NAMES, `"bart":
# "BartForConditionalGeneration"` in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES): the common tests find base models
# and add `labels` through these tables. Only the model-name tables: CONFIG_MAPPING_NAMES would make transformers
# import `transformers.models.xlm_swcm`; the auto classes already know the config through `AutoModel.register`.
MODEL_NAME_TABLES = {
    "MODEL_MAPPING_NAMES": XLMSWCMModel.__name__,
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": XLMSWCMForConditionalGeneration.__name__,
}


@pytest.fixture(scope="module", autouse=True)
def registered_in_transformers_tables():
    """List XLM-SWCM in transformers' model-name tables for this module's tests only; restore them afterwards."""
    model_type = XLMSWCMConfig.model_type
    previous = {}
    for table_name, class_name in MODEL_NAME_TABLES.items():
        table = getattr(modeling_auto, table_name)
        previous[table_name] = table.get(model_type)
        table[model_type] = class_name
    yield
    for table_name in MODEL_NAME_TABLES:
        table = getattr(modeling_auto, table_name)
        if previous[table_name] is None:
            table.pop(model_type, None)
        else:
            table[model_type] = previous[table_name]


def prepare_xlm_swcm_inputs_dict(config, input_ids, decoder_input_ids=None, attention_mask=None,
                                 decoder_attention_mask=None):  # fmt: skip
    """BART's `prepare_bart_inputs_dict`, including its choice of `decoder_attention_mask = attention_mask`."""
    if attention_mask is None:
        attention_mask = input_ids.ne(config.pad_token_id)
    if decoder_attention_mask is None:
        decoder_attention_mask = decoder_input_ids.ne(config.pad_token_id)
    return {
        "input_ids": input_ids,
        "decoder_input_ids": decoder_input_ids,
        "attention_mask": attention_mask,
        "decoder_attention_mask": attention_mask,
    }


class XLMSWCMModelTester:
    """BART's model tester with XLM-SWCM's config. The decoder has one custom layer per encoder layer plus a normal
    layer after every `normal_layer_interval` custom ones: 2 encoder layers with interval 1 give `C N C`, so both
    layer kinds are exercised; `decoder_layers` states that real decoder depth (3)."""

    def __init__(
        self,
        parent,
        batch_size=13,
        seq_length=7,
        is_training=True,
        use_labels=False,
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=2,
        normal_layer_interval=1,
        num_attention_heads=4,
        intermediate_size=4,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=50,
        eos_token_id=2,
        pad_token_id=1,
        bos_token_id=0,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.normal_layer_interval = normal_layer_interval
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.decoder_layers = self.get_config().decoder_layers  # len(decoder_layout)

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = self.eos_token_id  # Eos Token

        # Unlike BART, clamped as input_ids are: XLM-SWCM embeds decoder inputs with the shared XLM-R embeddings, whose
        # positions skip pad tokens (id 1), so a random pad inside a sequence (attention 1) is embedded as padding by
        # `decoder_input_ids` but not by `decoder_inputs_embeds` (sequential positions); real targets never hold one.
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)

        config = self.get_config()
        inputs_dict = prepare_xlm_swcm_inputs_dict(config, input_ids, decoder_input_ids)
        return config, inputs_dict

    def get_config(self):
        return XLMSWCMConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            normal_layer_interval=self.normal_layer_interval,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            eos_token_id=self.eos_token_id,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
        )

    def prepare_config_and_inputs_for_common(self):
        config, inputs_dict = self.prepare_config_and_inputs()
        return config, inputs_dict

    def create_and_check_decoder_model_past_large_inputs(self, config, inputs_dict):
        # As BART's, except that the decoder is given encoder states: every XLM-SWCM decoder layer cross-attends
        # (BART's decoder skips cross-attention without them).
        base = XLMSWCMModel(config=config).to(torch_device).eval()
        model = base.get_decoder()
        input_ids = inputs_dict["input_ids"]
        attention_mask = inputs_dict["attention_mask"]
        encoder_hidden_states = base.get_encoder()(input_ids, attention_mask=attention_mask).last_hidden_state
        encoder_kwargs = {"encoder_hidden_states": encoder_hidden_states, "encoder_attention_mask": attention_mask}

        # first forward pass
        outputs = model(input_ids, attention_mask=attention_mask, use_cache=True, **encoder_kwargs)

        output, past_key_values = outputs.to_tuple()

        # create hypothetical multiple next token and extent to next_input_ids
        next_tokens = ids_tensor((self.batch_size, 3), config.vocab_size)
        next_attn_mask = ids_tensor((self.batch_size, 3), 2)

        # append to next input_ids and
        next_input_ids = torch.cat([input_ids, next_tokens], dim=-1)
        next_attention_mask = torch.cat([attention_mask, next_attn_mask], dim=-1)

        output_from_no_past = model(next_input_ids, attention_mask=next_attention_mask, **encoder_kwargs)[
            "last_hidden_state"
        ]
        output_from_past = model(
            next_tokens, attention_mask=next_attention_mask, past_key_values=past_key_values, **encoder_kwargs
        )["last_hidden_state"]

        # select random slice
        random_slice_idx = ids_tensor((1,), output_from_past.shape[-1]).item()
        output_from_no_past_slice = output_from_no_past[:, -3:, random_slice_idx].detach()
        output_from_past_slice = output_from_past[:, :, random_slice_idx].detach()

        self.parent.assertTrue(output_from_past_slice.shape[1] == next_tokens.shape[1])

        # test that outputs are equal for slice
        self.parent.assertTrue(torch.allclose(output_from_past_slice, output_from_no_past_slice, atol=1e-3))

    def check_encoder_decoder_model_standalone(self, config, inputs_dict):
        model = XLMSWCMModel(config=config).to(torch_device).eval()
        outputs = model(**inputs_dict)

        encoder_last_hidden_state = outputs.encoder_last_hidden_state
        last_hidden_state = outputs.last_hidden_state

        with tempfile.TemporaryDirectory() as tmpdirname:
            encoder = model.get_encoder()
            encoder.save_pretrained(tmpdirname)
            encoder = type(encoder).from_pretrained(tmpdirname).to(torch_device)

        encoder_last_hidden_state_2 = encoder(inputs_dict["input_ids"], attention_mask=inputs_dict["attention_mask"])[0]

        self.parent.assertTrue((encoder_last_hidden_state_2 - encoder_last_hidden_state).abs().max().item() < 1e-3)

        # The decoder embeds its input with the encoder's embedding module (held, not owned: the checkpoint stores it
        # once, under the encoder), so it cannot `from_pretrained` alone as BartDecoder does: rebuild it around the
        # reloaded encoder's embeddings and load its own saved weights.
        with tempfile.TemporaryDirectory() as tmpdirname:
            torch.save(model.get_decoder().state_dict(), os.path.join(tmpdirname, "decoder.bin"))
            decoder = XLMSWCMDecoder(config, encoder.embeddings)
            decoder.load_state_dict(torch.load(os.path.join(tmpdirname, "decoder.bin")), strict=True)
            decoder = decoder.to(torch_device).eval()

        last_hidden_state_2 = decoder(
            input_ids=inputs_dict["decoder_input_ids"],
            attention_mask=inputs_dict["decoder_attention_mask"],
            encoder_hidden_states=encoder_last_hidden_state,
            encoder_attention_mask=inputs_dict["attention_mask"],
        )[0]

        self.parent.assertTrue((last_hidden_state_2 - last_hidden_state).abs().max().item() < 1e-3)


@require_torch
class XLMSWCMHeadTests(unittest.TestCase):
    """BART's head tests that apply to a seq2seq LM (XLM-SWCM has no classification or QA heads)."""

    vocab_size = 99

    def _get_config_and_data(self):
        input_ids = torch.tensor(
            [
                [71, 82, 18, 33, 46, 91, 2],
                [68, 34, 26, 58, 30, 82, 2],
                [5, 97, 17, 39, 94, 40, 2],
                [76, 83, 94, 25, 70, 78, 2],
                [87, 59, 41, 35, 48, 66, 2],
                [55, 13, 16, 58, 5, 2, 1],  # note padding
                [64, 27, 31, 51, 12, 75, 2],
                [52, 64, 86, 17, 83, 39, 2],
                [48, 61, 9, 24, 71, 82, 2],
                [26, 1, 60, 48, 22, 13, 2],
                [21, 5, 62, 28, 14, 76, 2],
                [45, 98, 37, 86, 59, 48, 2],
                [70, 70, 50, 9, 28, 0, 2],
            ],
            dtype=torch.long,
            device=torch_device,
        )

        batch_size = input_ids.shape[0]
        config = XLMSWCMConfig(
            vocab_size=self.vocab_size,
            hidden_size=24,
            num_hidden_layers=2,
            normal_layer_interval=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=48,
            eos_token_id=2,
            pad_token_id=1,
            bos_token_id=0,
        )
        return config, input_ids, batch_size

    def test_lm_forward(self):
        config, input_ids, batch_size = self._get_config_and_data()
        lm_labels = ids_tensor([batch_size, input_ids.shape[1]], self.vocab_size).to(torch_device)
        lm_model = XLMSWCMForConditionalGeneration(config)
        lm_model.to(torch_device)
        outputs = lm_model(input_ids=input_ids, labels=lm_labels)
        expected_shape = (batch_size, input_ids.shape[1], config.vocab_size)
        self.assertEqual(outputs["logits"].shape, expected_shape)
        self.assertIsInstance(outputs["loss"].item(), float)

    def test_lm_uneven_forward(self):
        config = XLMSWCMConfig(
            vocab_size=self.vocab_size,
            hidden_size=14,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=8,
            max_position_embeddings=48,
        )
        lm_model = XLMSWCMForConditionalGeneration(config).to(torch_device)
        context = torch.tensor(
            [[71, 82, 18, 33, 46, 91, 2], [68, 34, 26, 58, 30, 2, 1]], device=torch_device, dtype=torch.long
        )
        summary = torch.tensor([[82, 71, 82, 18, 2], [58, 68, 2, 1, 1]], device=torch_device, dtype=torch.long)
        outputs = lm_model(input_ids=context, decoder_input_ids=summary, labels=summary)
        expected_shape = (*summary.shape, config.vocab_size)
        self.assertEqual(outputs["logits"].shape, expected_shape)

    def test_shift_tokens_right(self):
        input_ids = torch.tensor([[71, 82, 18, 33, 2, 1, 1], [68, 34, 26, 58, 30, 82, 2]], dtype=torch.long)
        shifted = shift_tokens_right(input_ids, 1, 2)
        n_pad_before = input_ids.eq(1).float().sum()
        n_pad_after = shifted.eq(1).float().sum()
        self.assertEqual(shifted.shape, input_ids.shape)
        self.assertEqual(n_pad_after, n_pad_before - 1)
        self.assertTrue(torch.eq(shifted[:, 0], 2).all())

    @require_torch_fp16
    def test_generate_fp16(self):
        config, input_ids, batch_size = self._get_config_and_data()
        attention_mask = input_ids.ne(1).to(torch_device)
        model = XLMSWCMForConditionalGeneration(config).eval().to(torch_device)
        model.half()
        model.generate(input_ids, attention_mask=attention_mask)
        model.generate(num_beams=4, do_sample=True, early_stopping=False, num_return_sequences=3)

    def test_dummy_inputs(self):
        config, *_ = self._get_config_and_data()
        model = XLMSWCMForConditionalGeneration(config).eval().to(torch_device)
        model(**model.dummy_inputs)


@require_torch
class XLMSWCMModelTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    # BART also mixes in PipelineTesterMixin: it runs only architectures listed among transformers' tiny Hub
    # checkpoints (XLM-SWCM is not) and needs the Hub, so here it would only skip.
    all_model_classes = (XLMSWCMModel, XLMSWCMForConditionalGeneration)
    is_encoder_decoder = True

    def setUp(self):
        self.model_tester = XLMSWCMModelTester(self)
        self.config_tester = ConfigTester(self, config_class=XLMSWCMConfig)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_save_load_strict(self):
        config, inputs_dict = self.model_tester.prepare_config_and_inputs()
        for model_class in self.all_model_classes:
            model = model_class(config)

            with tempfile.TemporaryDirectory() as tmpdirname:
                model.save_pretrained(tmpdirname)
                model2, info = model_class.from_pretrained(tmpdirname, output_loading_info=True)
            self.assertEqual(info["missing_keys"], set())

    def test_decoder_model_past_with_large_inputs(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_decoder_model_past_large_inputs(*config_and_inputs)

    def test_encoder_decoder_model_standalone(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs_for_common()
        self.model_tester.check_encoder_decoder_model_standalone(*config_and_inputs)

    @require_torch_fp16
    def test_generate_fp16(self):
        config, input_dict = self.model_tester.prepare_config_and_inputs()
        input_ids = input_dict["input_ids"]
        attention_mask = input_ids.ne(1).to(torch_device)
        model = XLMSWCMForConditionalGeneration(config).eval().to(torch_device)
        model.half()
        model.generate(input_ids, attention_mask=attention_mask)
        model.generate(num_beams=4, do_sample=True, early_stopping=False, num_return_sequences=3)

    # Architecture difference: these two mixin tests count the decoder's attentions / hidden states with the
    # encoder's layer count (`model_tester.num_hidden_layers` / `expected_num_hidden_layers` serve both; neither the
    # tester nor the config can state a separate decoder depth to them). XLM-SWCM's decoder has
    # `decoder_layers = len(decoder_layout)` layers: 3 here (C N C) for 2 encoder layers. They run unchanged in
    # XLMSWCMEqualDepthModelTest below, on a decoder without normal layers (as deep as the encoder).
    @unittest.skip(reason="decoder deeper than the encoder (C N C); runs in XLMSWCMEqualDepthModelTest")
    def test_attention_outputs(self):
        pass

    @unittest.skip(reason="decoder deeper than the encoder (C N C); runs in XLMSWCMEqualDepthModelTest")
    def test_hidden_states_output(self):
        pass


@require_torch
class XLMSWCMEqualDepthModelTest(unittest.TestCase):
    """The mixin's `test_attention_outputs` and `test_hidden_states_output`, unchanged, on `normal_layer_interval=0`
    (decoder `C C`, as deep as the encoder), the only XLM-SWCM layout for which their single layer count holds."""

    all_model_classes = XLMSWCMModelTest.all_model_classes
    is_encoder_decoder = True
    has_attentions = True
    _prepare_for_class = ModelTesterMixin._prepare_for_class
    _set_subconfig_attributes = ModelTesterMixin._set_subconfig_attributes
    test_attention_outputs = ModelTesterMixin.test_attention_outputs
    test_hidden_states_output = ModelTesterMixin.test_hidden_states_output

    def setUp(self):
        self.model_tester = XLMSWCMModelTester(self, normal_layer_interval=0)
        assert self.model_tester.decoder_layers == self.model_tester.num_hidden_layers


def test_registered_in_model_name_tables():
    """The model-name tables list XLM-SWCM while this module runs (the fixture); the config table does not."""
    for table_name, class_name in MODEL_NAME_TABLES.items():
        assert getattr(modeling_auto, table_name)[XLMSWCMConfig.model_type] == class_name
    assert XLMSWCMConfig.model_type not in modeling_auto.CONFIG_MAPPING_NAMES
