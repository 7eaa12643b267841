"""Data pipeline: loading, task formats, tokenization/label convention, collation, DAE noise, language sampling."""

import logging
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import TINY_ENCODER, tiny_model, write_jsonl
from datasets import Dataset, DatasetDict, interleave_datasets

from xlm_swcm_hf.data import (
    MRC_TEMPLATE,
    DenoisingCollator,
    MixedObjectiveCollator,
    TaskColumns,
    TruncationStats,
    apply_infilling,
    format_examples,
    infer_builder,
    interleave_languages,
    load_task_dataset,
    make_seq2seq_collator,
    noise_spans,
    permute_sentences,
    split_sentences,
    temperature_sampling_probabilities,
    tokenize_for_seq2seq,
)
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS, build_tiny_xlmr_tokenizer


BOS, PAD, EOS, UNK = 0, 1, 2, 3

SUMMARIZATION_ROWS = [
    {"text": "我们学习语言。你们学习吗？", "summary": "我们学习。", "lang": "zh"},
    {"text": "Біз тіл үйренеміз. Сендер де үйренесің бе?", "summary": "Біз үйренеміз.", "lang": "kk"},
    {"text": "We learn languages. Do you learn languages too?", "summary": "We learn.", "lang": "en"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_xlmr_tokenizer()


def _words():
    return " ".join(TINY_MULTILINGUAL_TEXTS).split()


def _random_texts(count, num_words, seed=0):
    rng = np.random.default_rng(seed)
    words = _words()
    return [" ".join(rng.choice(words, size=num_words)) for _ in range(count)]


# ----------------------------------------------------------------------------------------------- tiny tokenizer
def test_tiny_tokenizer_is_xlmr_shaped_and_fits_the_tiny_model(tokenizer, tmp_path):
    assert len(tokenizer) <= TINY_ENCODER["vocab_size"]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        BOS,
        PAD,
        EOS,
        UNK,
    )
    assert tokenizer.mask_token_id == len(tokenizer) - 1
    ids = tokenizer("We learn languages.")["input_ids"]
    assert ids[0] == BOS and ids[-1] == EOS and UNK not in ids
    # Deterministic, and survives save/load.
    assert build_tiny_xlmr_tokenizer().get_vocab() == tokenizer.get_vocab()
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in TINY_MULTILINGUAL_TEXTS:
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    small = build_tiny_xlmr_tokenizer(TINY_MULTILINGUAL_TEXTS, vocab_size=40)
    assert len(small) <= 40 and small.mask_token_id == len(small) - 1


# ----------------------------------------------------------------------------------------------- loading
def _write(tmp_path, rows, fmt, name="data"):
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "csv":
        Dataset.from_list(rows).to_csv(path, index=False)
    elif fmt == "tsv":
        Dataset.from_list(rows).to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        Dataset.from_list(rows).to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_load_local_files(tmp_path, fmt):
    path = _write(tmp_path, SUMMARIZATION_ROWS, fmt)
    ds = load_task_dataset(path, "summarization", split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, Dataset)
    assert ds.column_names == ["source_text", "target_text", "lang"]
    assert ds["source_text"] == [r["text"] for r in SUMMARIZATION_ROWS]
    assert ds["target_text"] == [r["summary"] for r in SUMMARIZATION_ROWS]
    assert ds["lang"] == ["zh", "kk", "en"]


def test_load_split_dict_raw_and_errors(tmp_path):
    train = _write(tmp_path, SUMMARIZATION_ROWS, "jsonl", "train")
    valid = _write(tmp_path, SUMMARIZATION_ROWS[:1], "jsonl", "valid")
    dd = load_task_dataset({"train": train, "validation": valid}, "summarization", cache_dir=str(tmp_path / "c"))
    assert isinstance(dd, DatasetDict) and set(dd) == {"train", "validation"}
    assert dd["validation"]["target_text"] == ["我们学习。"]
    raw = load_task_dataset(str(train), None, split="train", cache_dir=str(tmp_path / "c"))
    assert raw.column_names == ["text", "summary", "lang"]
    text = tmp_path / "mono.txt"
    text.write_text("line one\nline two\n", encoding="utf-8")
    lines = load_task_dataset(text, None, split="train", cache_dir=str(tmp_path / "c"))
    assert lines["text"] == ["line one", "line two"]

    assert infer_builder("a.jsonl.gz") == "json" and infer_builder({"train": ["a.csv"]}) == "csv"
    with pytest.raises(ValueError, match="nope.jsonl does not exist"):
        load_task_dataset(tmp_path / "nope.jsonl", "summarization")
    with pytest.raises(ValueError, match="one builder"):
        infer_builder({"train": "a.jsonl", "test": "b.csv"})
    with pytest.raises(ValueError, match="cannot infer"):
        infer_builder("data.xlsx")
    with pytest.raises(ValueError, match="unknown task"):
        load_task_dataset(train, "qa")


# ----------------------------------------------------------------------------------------------- task formats
def test_summarization_with_custom_columns():
    ds = Dataset.from_dict({"article": ["  a long text  "], "highlights": ["short"], "language": ["en"]})
    out = format_examples(ds, "summarization", {"source": "article", "target": "highlights", "lang": "language"})
    assert out.column_names == ["source_text", "target_text", "lang"]
    assert out[0] == {"source_text": "a long text", "target_text": "short", "lang": "en"}
    same = format_examples(ds, "summarization", TaskColumns(source="article", target="highlights", lang=None))
    assert same.column_names == ["source_text", "target_text"]
    with pytest.raises(ValueError, match="column 'text'.*not found"):
        format_examples(ds, "summarization")
    with pytest.raises(ValueError, match="unknown column role"):
        format_examples(ds, "summarization", {"document": "article"})


def test_mrc_template_is_xlmr_pair_encoding(tokenizer):
    ds = Dataset.from_dict(
        {
            "question": ["Do you learn?", "你们学习吗？"],
            "context": ["We learn languages.", "我们学习语言。"],
            # A plain string and a SQuAD-style answer dict.
            "answer": [{"text": ["We learn"], "answer_start": [0]}, {"text": ["学习"], "answer_start": [2]}],
        }
    )
    out = format_examples(ds, "mrc")
    assert out["source_text"][0] == MRC_TEMPLATE.format(question="Do you learn?", context="We learn languages.")
    assert out["target_text"] == ["We learn", "学习"]
    for row, (question, context) in zip(out, zip(ds["question"], ds["context"])):
        ids = tokenizer(row["source_text"])["input_ids"]
        assert ids == tokenizer(question, context)["input_ids"]  # <s> q </s></s> c </s>
        assert ids.count(EOS) == 3
    # Truncation cuts the context, the question survives.
    question_ids = tokenizer("Do you learn?", add_special_tokens=False)["input_ids"]
    max_source_length = len(question_ids) + 6
    assert len(tokenizer(out["source_text"][0])["input_ids"]) > max_source_length
    tokenized, _ = tokenize_for_seq2seq(out, tokenizer, max_source_length=max_source_length, max_target_length=8)
    assert tokenized[0]["input_ids"][: len(question_ids) + 3] == [BOS, *question_ids, EOS, EOS]
    with pytest.raises(ValueError, match="question column"):
        format_examples(ds, "mrc", {"question": None})


def test_translation_with_lang_column():
    ds = Dataset.from_dict(
        {"source": ["ug: School", "kk: School"], "target": ["مەكتەپ", "Мектеп"], "lang": ["ug", "kk"]}
    )
    out = format_examples(ds, "translation")
    assert out.to_list() == [
        {"source_text": "ug: School", "target_text": "مەكتەپ", "lang": "ug"},
        {"source_text": "kk: School", "target_text": "Мектеп", "lang": "kk"},
    ]
    no_lang = format_examples(ds.remove_columns("lang"), "translation")
    assert no_lang.column_names == ["source_text", "target_text"]


def test_invalid_rows_name_row_and_column(tmp_path, caplog):
    rows = [{"text": f"text {i}", "summary": f"sum {i}"} for i in range(20)]
    rows[17]["summary"] = "   "
    rows[5]["text"] = None
    ds = Dataset.from_list(rows)
    with pytest.raises(ValueError, match=r"row 5: column 'text' is missing \(and 1 more invalid rows\)"):
        format_examples(ds, "summarization")
    only_17 = [dict(r) for r in rows]
    only_17[5]["text"] = "text 5"
    with pytest.raises(
        ValueError, match=r"^row 17: column 'summary' is empty; fix the data or drop such rows \(drop_invalid=True"
    ):
        format_examples(Dataset.from_list(only_17), "summarization")
    with pytest.raises(ValueError, match=r"split 'train', row 5: column 'text' is missing"):
        format_examples(DatasetDict({"train": ds}), "summarization")

    with caplog.at_level(logging.WARNING, logger="xlm_swcm_hf.data"):
        out = format_examples(ds, "summarization", drop_invalid=True)
    assert len(out) == 18
    assert "text 5" not in out["source_text"] and "sum 17" not in out["target_text"]
    assert "dropped 2 of 20 rows" in caplog.text

    # The same through a CSV file (empty cells load as None: "missing") and a DatasetDict.
    path = _write(tmp_path, rows, "csv")
    with pytest.raises(ValueError, match="row 5: column 'text' is missing"):
        load_task_dataset(path, "summarization", split="train", cache_dir=str(tmp_path / "c"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xlm_swcm_hf.data"):
        out = load_task_dataset(path, "summarization", drop_invalid=True, cache_dir=str(tmp_path / "c"))
    assert len(out["train"]) == 18 and "dropped 2 of 20 rows" in caplog.text


def test_invalid_row_index_counts_from_zero():
    ds = Dataset.from_list([{"text": "a", "summary": "b"}] * 3 + [{"text": "a", "summary": ""}])
    with pytest.raises(
        ValueError, match=r"^row 3: column 'summary' is empty; fix the data or drop such rows \(drop_invalid=True"
    ):
        format_examples(ds, "summarization")
    with pytest.raises(ValueError, match=r"row 0: column 'answer' is empty"):
        format_examples(Dataset.from_dict({"question": ["q"], "context": ["c"], "answer": [[]]}), "mrc")


# ----------------------------------------------------------------------------------------------- tokenization
def test_tokenize_truncation_stats_and_label_convention(tokenizer, caplog):
    sources = ["We learn.", "We learn languages. Do you learn languages too?", "我们学习语言。你们学习吗？他们也学习！"]
    targets = ["We learn languages.", "我们学习。", "Do you learn languages too? We learn languages."]
    ds = Dataset.from_dict({"source_text": sources, "target_text": targets, "lang": ["en", "en", "zh"]})
    max_src, max_tgt = 12, 8
    full_src = [len(tokenizer(s)["input_ids"]) for s in sources]
    full_tgt = [len(tokenizer(t)["input_ids"]) - 1 for t in targets]  # no leading <s>
    with caplog.at_level(logging.WARNING, logger="xlm_swcm_hf.data"):
        tokenized, stats = tokenize_for_seq2seq(ds, tokenizer, max_src, max_tgt, keep_columns=["lang"])
    assert isinstance(stats, TruncationStats)
    assert stats.num_examples == 3
    assert stats.truncated_sources == sum(n > max_src for n in full_src) == 2
    assert stats.truncated_targets == sum(n > max_tgt for n in full_tgt) == 2
    assert (stats.longest_source, stats.longest_target) == (max(full_src), max(full_tgt))
    assert "truncated 2 of 3 sources" in caplog.text and "2 of 3 targets" in caplog.text
    assert tokenized.column_names == ["lang", "input_ids", "attention_mask", "labels"]

    for row, source, target in zip(tokenized, sources, targets):
        # Sources: the tokenizer's own truncated encoding, <s> ... </s>.
        assert row["input_ids"] == tokenizer(source, truncation=True, max_length=max_src)["input_ids"]
        assert row["attention_mask"] == [1] * len(row["input_ids"])
        # Labels: y1 ... </s>, no leading <s>.
        labels = row["labels"]
        assert labels[0] != BOS and labels[-1] == EOS and BOS not in labels and len(labels) <= max_tgt
        full = tokenizer(target)["input_ids"]
        assert labels == (full[1:] if len(full) - 1 <= max_tgt else full[1:max_tgt] + [EOS])

    dd, dd_stats = tokenize_for_seq2seq(DatasetDict({"train": ds, "test": ds.select([0])}), tokenizer, 64, 64)
    assert dd_stats["train"].truncated_sources == 0 and dd_stats["test"].num_examples == 1
    assert dd["train"].column_names == ["input_ids", "attention_mask", "labels"]
    with pytest.raises(ValueError, match="max_target_length"):
        tokenize_for_seq2seq(ds, tokenizer, 8, 1)


# ----------------------------------------------------------------------------------------------- collation
def test_collator_pads_labels_and_builds_single_bos_decoder_inputs(tokenizer):
    model = tiny_model()
    ds = Dataset.from_dict(
        {"source_text": ["We learn.", "我们学习语言。你们学习吗？"], "target_text": ["我们学习语言。", "We learn."]}
    )
    tokenized, _ = tokenize_for_seq2seq(ds, tokenizer, 32, 32)
    features = tokenized.to_list()
    plain = make_seq2seq_collator(tokenizer)(features)
    assert "decoder_input_ids" not in plain
    batch = make_seq2seq_collator(tokenizer, model=model)(features)
    labels, decoder_inputs = batch["labels"], batch["decoder_input_ids"]
    assert labels.shape == decoder_inputs.shape
    lengths = [len(f["labels"]) for f in features]
    for i, n in enumerate(lengths):
        assert labels[i, :n].tolist() == features[i]["labels"]
        assert (labels[i, n:] == -100).all()
        assert batch["attention_mask"][i].sum() == len(features[i]["input_ids"])
        # <s> y1 y2 ...: exactly one <s>, then the first label.
        assert decoder_inputs[i, 0] == BOS and decoder_inputs[i, 1] == labels[i, 0] != BOS
        assert decoder_inputs[i, 1:n].tolist() == features[i]["labels"][: n - 1]
    assert not ((decoder_inputs[:, 0] == BOS) & (decoder_inputs[:, 1] == BOS)).any()
    # The batch runs through the model, and the collator's decoder inputs are the ones the model would build.
    with torch.no_grad():
        out = model(**batch)
        reference = model(**{k: v for k, v in batch.items() if k != "decoder_input_ids"})
    assert torch.isfinite(out.loss) and torch.allclose(out.loss, reference.loss)


# ----------------------------------------------------------------------------------------------- DAE noise
@pytest.mark.parametrize("ratio", [0.35, 0.2])
def test_noise_span_statistics(ratio):
    rng = np.random.default_rng(0)
    masked = total = 0
    span_lengths = []
    for _ in range(3000):
        length = int(rng.integers(20, 200))
        spans = noise_spans(length, rng, mask_ratio=ratio, poisson_lambda=3.5)
        starts = [s for s, _ in spans]
        assert starts == sorted(starts)
        for (s1, l1), (s2, _) in zip(spans, spans[1:]):
            assert s1 + l1 < s2  # never overlapping nor touching
        assert all(0 <= s and s + n <= length for s, n in spans)
        masked += sum(n for _, n in spans)
        total += length
        span_lengths += [n for _, n in spans]
        ids = list(range(100, 100 + length))
        noised = apply_infilling(ids, spans, mask_token_id=7)
        assert noised.count(7) == len(spans)  # one <mask> per span
        assert len(noised) == length - sum(n for _, n in spans) + len(spans)
    assert abs(masked / total - ratio) < 0.05
    assert abs(masked / total - ratio) < 0.005  # in fact far tighter
    assert abs(np.mean(span_lengths) - 3.5) < 0.3  # Poisson(3.5); only the last span of a sequence is cut
    assert 0 in span_lengths  # zero-length spans insert a mask
    # On long sequences the cut last span hardly matters: the mean is lambda.
    long_spans = [n for _ in range(200) for _, n in noise_spans(1000, rng, mask_ratio=ratio, poisson_lambda=3.5)]
    assert abs(np.mean(long_spans) - 3.5) < 0.1
    assert abs(np.mean([n == 0 for n in long_spans]) - np.exp(-3.5)) < 0.01  # P(Poisson(3.5) = 0)


def test_noise_spans_edge_cases():
    rng = np.random.default_rng(1)
    assert noise_spans(0, rng) == [] and noise_spans(50, rng, mask_ratio=0.0) == []
    assert noise_spans(5, rng, mask_ratio=1.0) == [(0, 5)]
    for length in range(1, 8):  # short sequences: always valid
        for _ in range(50):
            spans = noise_spans(length, rng, mask_ratio=0.9, poisson_lambda=0.5)
            assert all(0 <= s and s + n <= length for s, n in spans)
    with pytest.raises(ValueError):
        noise_spans(10, rng, mask_ratio=1.5)


@pytest.mark.parametrize("ratio", [0.35, 0.2])
def test_denoising_collator_masks_at_the_configured_ratio(tokenizer, ratio):
    texts = _random_texts(200, 30)
    collator = DenoisingCollator(tokenizer, mask_ratio=ratio, max_length=512, seed=0)
    batch = collator([{"text": t} for t in texts])
    mask_id = tokenizer.mask_token_id
    masked = total = 0
    for text, input_ids, mask, labels in zip(texts, batch["input_ids"], batch["attention_mask"], batch["labels"]):
        source = input_ids[mask.bool()].tolist()
        target = labels[labels != -100].tolist()
        original = tokenizer(text)["input_ids"]
        assert target == original[1:]  # the original text, y1 ... </s>
        assert source[0] == BOS and source[-1] == EOS  # never masked
        assert BOS not in source[1:-1] and EOS not in source[1:-1]
        content, noised = len(target) - 1, source[1:-1]
        masks = noised.count(mask_id)
        masked += content - (len(noised) - masks)
        total += content
    assert abs(masked / total - ratio) < 0.05


def test_denoising_collator_determinism_and_decoder_inputs(tokenizer):
    features = [{"text": t} for t in _random_texts(8, 12, seed=3)]
    model = tiny_model()
    first = DenoisingCollator(tokenizer, model, max_length=48, seed=7)(features)
    again = DenoisingCollator(tokenizer, model, max_length=48, seed=7)(features)
    other = DenoisingCollator(tokenizer, model, max_length=48, seed=8)(features)
    assert set(first) == {"input_ids", "attention_mask", "labels", "decoder_input_ids"}
    for key in first:
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["input_ids"], other["input_ids"])
    assert torch.equal(first["labels"], other["labels"])  # the target is always the original text
    # The stream advances (fresh noise per batch) and reseed() restarts it.
    collator = DenoisingCollator(tokenizer, max_length=48, seed=7)
    b1, b2 = collator(features), collator(features)
    assert not torch.equal(b1["input_ids"], b2["input_ids"])
    collator.reseed(7)
    assert torch.equal(collator(features)["input_ids"], b1["input_ids"])
    assert (first["decoder_input_ids"][:, 0] == BOS).all() and (first["decoder_input_ids"][:, 1] != BOS).all()
    assert len(tokenizer) <= model.config.vocab_size
    with torch.no_grad():
        assert torch.isfinite(model(**first).loss)


def test_denoising_collator_in_dataloader_workers(tokenizer):
    from torch.utils.data import DataLoader

    data = [{"text": "We learn languages. We learn languages. Do you learn languages too?"}] * 8
    collator = DenoisingCollator(tokenizer, max_length=60, seed=0)

    def run():
        torch.manual_seed(0)
        return [b["input_ids"] for b in DataLoader(data, batch_size=2, num_workers=2, collate_fn=collator)]

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # reproducible under torch's seed
    # Batches 0 and 1 come from different workers with identical text: the workers' noise differs.
    assert not torch.equal(first[0], first[1])


def test_split_sentences_across_scripts():
    assert split_sentences("We learn. Do you? Yes! Pi is 3.14 ok") == ["We learn.", "Do you?", "Yes!", "Pi is 3.14 ok"]
    assert split_sentences("我们学习语言。你们学习吗？他们也学习！") == [
        "我们学习语言。",
        "你们学习吗？",
        "他们也学习！",
    ]
    assert split_sentences("ང་ཚོ་སློབ། ཁྱེད་ཚོ་ཡང་སློབ།") == ["ང་ཚོ་སློབ།", "ཁྱེད་ཚོ་ཡང་སློབ།"]
    assert split_sentences("ང་ཚོ་སློབ། །ཁྱེད་ཚོ།") == ["ང་ཚོ་སློབ། །", "ཁྱེད་ཚོ།"]  # "། །" is one boundary
    assert split_sentences("ང་ཚོ་སློབ།ཁྱེད་ཚོ།") == ["ང་ཚོ་སློབ།", "ཁྱེད་ཚོ།"]
    assert split_sentences("ᠪᠢᠳᠡ ᠬᠡᠯᠡ᠃ᠪᠢᠳᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃") == ["ᠪᠢᠳᠡ ᠬᠡᠯᠡ᠃", "ᠪᠢᠳᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃"]
    assert split_sentences("بىز تىل ئۆگىنىمىز. سىلەر ئۆگىنەمسىلەر؟ ھەئە") == [
        "بىز تىل ئۆگىنىمىز.",
        "سىلەر ئۆگىنەمسىلەر؟",
        "ھەئە",
    ]
    assert split_sentences("") == [] and split_sentences("no terminator") == ["no terminator"]


@pytest.mark.parametrize(
    "text",
    [
        "One. Two. Three! Four? Five.",
        "我们学习语言。你们学习吗？他们也学习！好。",
        "ང་ཚོ་སློབ། ཁྱེད་ཚོ་ཡང་སློབ། ཁོང་ཚོ་ཡང་སློབ།",
        "ᠪᠢᠳᠡ ᠬᠡᠯᠡ᠃ ᠪᠢᠳᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃ ᠰᠠᠶᠢᠨ᠃",
        "بىز تىل ئۆگىنىمىز. سىلەر ئۆگىنەمسىلەر؟ ياخشى!",
    ],
)
def test_sentence_permutation_preserves_sentences(text):
    rng = np.random.default_rng(0)
    sentences = Counter(split_sentences(text))
    orders = set()
    for _ in range(20):
        permuted = permute_sentences(text, rng)
        assert Counter(split_sentences(permuted)) == sentences
        orders.add(permuted)
    assert len(orders) > 1  # it does permute
    assert permute_sentences(text, np.random.default_rng(5)) == permute_sentences(text, np.random.default_rng(5))


def test_denoising_collator_sentence_permutation(tokenizer):
    text = "We learn languages. Do you learn? 我们学习。"
    collator = DenoisingCollator(tokenizer, mask_ratio=0.0, permute_sentences=True, seed=0)
    seen = set()
    for _ in range(10):
        batch = collator([{"text": text}])
        labels = batch["labels"][0].tolist()
        assert labels == tokenizer(text)["input_ids"][1:]  # target: the original order
        source = tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
        assert Counter(split_sentences(source)) == Counter(split_sentences(text))
        seen.add(source)
    assert len(seen) > 1


# ----------------------------------------------------------------------------------------------- mixed objectives
def test_mixed_objective_collator_dae_and_mt(tokenizer):
    mono = Dataset.from_dict({"text": _random_texts(6, 4, seed=1)})
    parallel = Dataset.from_dict({"source_text": ["ug: We learn."] * 6, "target_text": ["بىز تىل ئۆگىنىمىز."] * 6})
    mixed = interleave_datasets([mono, parallel], probabilities=[0.5, 0.5], seed=0, stopping_strategy="all_exhausted")
    features = mixed.to_list()
    collator = MixedObjectiveCollator(DenoisingCollator(tokenizer, tiny_model(), max_length=48, seed=0))
    batch = collator(features)
    objectives = collator.last_objectives
    assert set(objectives) == {"dae", "mt"} and len(objectives) == len(features)
    mask_id = tokenizer.mask_token_id
    for i, (feature, objective) in enumerate(zip(features, objectives)):
        labels = batch["labels"][i][batch["labels"][i] != -100].tolist()
        source = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        if objective == "mt":
            assert source == tokenizer(feature["source_text"])["input_ids"]
            assert labels == tokenizer(feature["target_text"])["input_ids"][1:]
            assert mask_id not in source
        else:
            assert labels == tokenizer(feature["text"])["input_ids"][1:]
            assert mask_id in source
    assert (batch["decoder_input_ids"][:, 0] == BOS).all()
    # Already tokenized rows pass through unchanged.
    pre = {"input_ids": [BOS, 10, 11, EOS], "labels": [12, EOS]}
    batch = collator([pre, {"text": "We learn."}])
    assert collator.last_objectives == ["pretokenized", "dae"]
    assert batch["input_ids"][0, :4].tolist() == pre["input_ids"] and batch["labels"][0, :2].tolist() == pre["labels"]
    with pytest.raises(ValueError, match="feature 0"):
        collator([{"lang": "ug"}])


# ----------------------------------------------------------------------------------------------- language sampling
def test_temperature_sampling_probabilities():
    sizes = {"zh": 2100, "bo": 2200, "ug": 736, "kk": 937, "mn": 970, "tiny": 10}
    total = sum(sizes.values())
    proportional = temperature_sampling_probabilities(sizes, temperature=1.0)
    for lang, n in sizes.items():
        assert proportional[lang] == pytest.approx(n / total)
    flat = temperature_sampling_probabilities(sizes, temperature=1e6)
    assert all(p == pytest.approx(1 / len(sizes), rel=1e-3) for p in flat.values())
    assert temperature_sampling_probabilities(sizes, temperature=float("inf"))["tiny"] == pytest.approx(1 / 6)
    hot = temperature_sampling_probabilities(sizes, temperature=5.0)
    assert sum(hot.values()) == pytest.approx(1.0)
    assert hot["tiny"] > 5 * proportional["tiny"]  # low-resource languages up-sampled
    assert hot["bo"] < proportional["bo"]
    # Monotone in T for the smallest language.
    ps = [temperature_sampling_probabilities(sizes, t)["tiny"] for t in (1, 2, 3.33, 5, 10)]
    assert ps == sorted(ps)
    assert temperature_sampling_probabilities({"a": 5, "b": 0}, 3.0) == {"a": 1.0, "b": 0.0}
    for bad in ({}, {"a": 0}, {"a": -1}):
        with pytest.raises(ValueError):
            temperature_sampling_probabilities(bad)
    with pytest.raises(ValueError):
        temperature_sampling_probabilities(sizes, temperature=0)


def test_interleave_languages_upsamples_low_resource():
    big = Dataset.from_dict({"text": [f"zh {i}" for i in range(400)]})
    small = Dataset.from_dict({"text": [f"bo {i}" for i in range(20)]})
    mixed = interleave_languages({"zh": big, "bo": small}, temperature=5.0, seed=0)
    assert "lang" in mixed.column_names
    counts = Counter(mixed["lang"])
    assert set(counts) == {"zh", "bo"}
    assert counts["zh"] >= 400  # all_exhausted: every language seen completely
    share = counts["bo"] / len(mixed)
    assert share > 2 * 20 / 420  # up-sampled beyond its natural share
    assert share == pytest.approx(temperature_sampling_probabilities({"zh": 400, "bo": 20}, 5.0)["bo"], abs=0.05)
    again = interleave_languages({"zh": big, "bo": small}, temperature=5.0, seed=0)
    assert again["text"] == mixed["text"]
    assert interleave_languages({"zh": big, "bo": small}, temperature=5.0, seed=1)["text"] != mixed["text"]
