"""`python -m xlm_swcm_experiments.benchmark`: the benchmark's command line (the training and memory children run
through it)."""

from .cli import main


if __name__ == "__main__":
    main()
