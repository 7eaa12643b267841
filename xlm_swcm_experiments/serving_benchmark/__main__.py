"""python -m xlm_swcm_experiments.serving_benchmark: the benchmark, and its memory child processes."""

from .cli import main


main()
