"""Script-aware tokenizer for multilingual ROUGE: `multilingual_tokenize` and `MultilingualTokenizer`.

The implementation (and its documentation) is `multilingual_rouge/script_tokenizer.py`: it sits inside the
`evaluate` module folder so that folder loads on its own (`evaluate` copies same-folder imports into its cache,
but cannot reach this file). This module is the package's import path for it; nothing is duplicated.

    >>> from xlm_swcm_hf.metrics.tokenization import multilingual_tokenize
    >>> multilingual_tokenize("བོད་ཀྱི་སྐད་ཡིག།")
    ['བོད', 'ཀྱི', 'སྐད', 'ཡིག']
    >>> multilingual_tokenize("蒙古语 Монгол хэл")
    ['蒙', '古', '语', 'монгол', 'хэл']
"""

from .multilingual_rouge.script_tokenizer import MultilingualTokenizer, multilingual_tokenize


__all__ = ["MultilingualTokenizer", "multilingual_tokenize"]
