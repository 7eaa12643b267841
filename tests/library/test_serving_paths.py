"""What serving relies on beyond the export tests: a `torch.compile(fullgraph=True)` forward with a static cache gives
eager's tokens in every decoding mode (beam search included, which transformers' own auto-compile leaves
uncompiled), and translate's progress bar reports sentences and tokens per second."""

import pytest
import torch
from conftest import padded_batch, tiny_model

from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer
from xlm_swcm_hf.translation import translate_texts


MODES = {
    "greedy": dict(do_sample=False, num_beams=1),
    "beam_search": dict(do_sample=False, num_beams=3, num_return_sequences=2, early_stopping=False),
    "sampling": dict(do_sample=True, num_beams=1, top_k=20, temperature=1.5),
}


@pytest.mark.slow
def test_compiled_forward_with_static_cache_gives_eager_tokens_in_every_mode():
    model = tiny_model(num_hidden_layers=2, normal_layer_interval=1, initializer_range=0.3)
    if not model._can_compile_fullgraph:
        pytest.skip("this transformers gives the model no static cache (4.x)")

    def generate(mode, **extra):
        torch.manual_seed(0)
        with torch.no_grad():
            return model.generate(**padded_batch(), max_new_tokens=8, min_new_tokens=8, **MODES[mode], **extra)

    eager = {mode: generate(mode) for mode in MODES}
    torch.compiler.reset()
    model.forward = torch.compile(model.forward, fullgraph=True, dynamic=False)
    for mode in MODES:
        torch.testing.assert_close(generate(mode, cache_implementation="static"), eager[mode], rtol=0, atol=0)


def test_translate_progress_bar_shows_sentences_and_tokens_per_second(capsys):
    model = tiny_model(initializer_range=0.3)
    texts = ["We learn languages.", "Bonjour tout le monde.", "", "Привет, мир."]
    translations, stats = translate_texts(
        model, build_tiny_xlmr_tokenizer(), texts, batch_size=2, progress=True, max_new_tokens=4
    )
    bar = capsys.readouterr().err
    assert "translating" in bar and "3/3" in bar and "sentences/s" in bar and "tokens/s" in bar, bar[-300:]
    assert stats.sentences == 3 and stats.empty == 1 and stats.tokens > 0 and translations[2] == ""
