"""External peers of the CPU paths: BART of the same width/depth (`benchmark.build_bart`), in PyTorch fp32 eager and
in CTranslate2 with int8 weights (converted by its Python converter from a `save_pretrained` folder), both behind
`generate(**source, max_new_tokens=..., min_new_tokens=...)` so the candidates' timing loop runs them alike."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..benchmark import build_bart


CTRANSLATE2_EXTRA = "pip install -e '.[peers]' (ctranslate2==4.8.5)"
BART_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0-3, as the random sources use them


def peer_tokens(vocab_size: int) -> list[str]:
    """One token string per id: CTranslate2 translates token strings, the random BART has no tokenizer of its own."""
    return [*BART_SPECIAL_TOKENS, *(f"t{i}" for i in range(len(BART_SPECIAL_TOKENS), vocab_size))]


def save_bart_folder(bart, folder: Path) -> Path:
    """`bart` saved with `save_pretrained` beside a word-level tokenizer over `peer_tokens` (what CTranslate2's
    converter reads the vocabulary from). The config also states BART's post-norm layout (`normalize_before`,
    `normalize_embedding`), which transformers 5 no longer writes and ctranslate2 4.8.5's BART loader reads."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(peer_tokens(bart.config.vocab_size))}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
    )  # fmt: skip
    bart.config.normalize_before = False
    bart.config.normalize_embedding = True
    bart.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class CTranslate2Peer:
    """A converted CTranslate2 model on the CPU, one intra-op thread, decoding greedily (beam_size=1) to exactly the
    number of new tokens asked for; `generate` returns ids as transformers does (the decoder start token first)."""

    def __init__(self, folder: Path, decoder_start_token_id: int, vocab_size: int, threads: int = 1):
        import ctranslate2

        self.translator = ctranslate2.Translator(str(folder), device="cpu", intra_threads=threads, inter_threads=1)
        self.tokens = peer_tokens(vocab_size)
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.decoder_start_token_id = decoder_start_token_id

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 1, min_new_tokens: int = 0, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(-1).tolist()  # right-padded sources, as make_source's
        source = [[self.tokens[i] for i in row[:length]] for row, length in zip(input_ids.tolist(), lengths)]
        results = self.translator.translate_batch(
            source, beam_size=1, max_decoding_length=max_new_tokens, min_decoding_length=min_new_tokens,
        )  # fmt: skip
        rows = [[self.decoder_start_token_id, *(self.ids[t] for t in result.hypotheses[0])] for result in results]
        width = max(len(row) for row in rows)
        return torch.tensor([row + [self.ids["<pad>"]] * (width - len(row)) for row in rows])


def prepare_peer(name: str, size: str, work: Path, built: dict) -> dict:
    """Peer `name` ("bart" or "ctranslate2-int8"); reuses the BART of an earlier "bart" row in `built`."""
    start = time.perf_counter()
    bart = built["bart"]["model"] if "model" in built.get("bart", {}) else build_bart(size)
    if name == "bart":
        return {"model": bart, "generate": {}, "convert_s": time.perf_counter() - start}
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        return {"error": f"skipped: ctranslate2 is not installed ({CTRANSLATE2_EXTRA})"}
    folder = work / name
    if not (folder / "model.bin").is_file():
        source = save_bart_folder(bart, work / "bart-transformers")
        TransformersConverter(str(source)).convert(str(folder), quantization="int8", force=True)
    model = CTranslate2Peer(folder, bart.config.decoder_start_token_id, bart.config.vocab_size, torch.get_num_threads())
    return {"model": model, "generate": {}, "convert_s": time.perf_counter() - start}
