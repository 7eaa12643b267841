"""Experiments around xlm_swcm_hf: the demo (its real data, offline encoder), the ablation and the benchmark.

The ablation (`ablation/`) and the LoRA comparison (`adaptation.py`) share one measured training run (`runs.py`) and
one statistics module (`statistics.py`: intervals, bootstrap, verdicts and how they are printed).

They use the library; the library never imports them (tests/test_layout.py checks), and none of this travels to
the Hub.
"""
