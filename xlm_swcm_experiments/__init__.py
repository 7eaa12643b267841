"""Experiments around xlm_swcm_hf: the demo (its real data, offline encoder), the ablation and the benchmark.

They use the library; the library never imports them (tests/test_layout.py checks), and none of this travels to
the Hub.
"""
