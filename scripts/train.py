#!/usr/bin/env python
"""Fine-tune or pretrain XLM-SWCM from a YAML recipe with Seq2SeqTrainer.

python scripts/train.py --config configs/translation.yaml training.learning_rate=3e-5 data.train_languages=[zh]
python scripts/train.py --config configs/translation.yaml --resume        # continue from the last checkpoint
accelerate launch --multi_gpu --num_processes 2 scripts/train.py --config ...
torchrun --nproc_per_node 2 scripts/train.py --config ...
"""

import argparse
import json
import logging
import sys

from xlm_swcm_hf.checks import ScriptArgumentParser, cli_main
from xlm_swcm_hf.output_vocabulary import add_full_vocabulary_argument
from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training import run_training


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config",
        required=True,
        action="append",
        help="a recipe from configs/; repeat to merge override files (configs/overrides/*.yaml)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    add_full_vocabulary_argument(parser)  # the test split's generation metrics
    parser.add_argument("overrides", nargs="*", help="section.key=value (YAML values), e.g. training.max_steps=100")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    recipe = Recipe.from_yaml(args.config, args.overrides)
    metrics = run_training(recipe, resume=args.resume, full_vocabulary=args.full_vocabulary)
    print(json.dumps(metrics, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
