"""`evaluate` module folder `multilingual_rouge` (see `multilingual_rouge.py`); also a regular subpackage."""
