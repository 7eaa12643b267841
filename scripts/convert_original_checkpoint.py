#!/usr/bin/env python
"""Convert the authors' `xlm-swcm.bin` into a Hub-ready folder that AutoModelForSeq2SeqLM loads (trust_remote_code)."""

import sys

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.convert import convert_checkpoint_to_folder
from xlm_swcm_hf.hub import layout_string, parameter_count


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="the original xlm-swcm.bin")
    parser.add_argument("--encoder", required=True, help="CINO-base-v2 folder or Hub name (config, tokenizer)")
    parser.add_argument("--output", required=True, help="folder to create")
    parser.add_argument("--tokenizer", help="tokenizer folder or name, if not the encoder's")
    parser.add_argument(
        "--no-self-attn-residual",
        action="store_true",
        help="reproduce the reference code literally: custom layers drop their self-attention residual (defect 2)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    require_writable_output(args.output, "--output")

    try:
        model = convert_checkpoint_to_folder(
            args.checkpoint,
            args.encoder,
            args.output,
            tokenizer=args.tokenizer,
            overwrite=args.overwrite,
            custom_self_attn_residual=not args.no_self_attn_residual,
        )
    except FileExistsError as error:
        raise InputError(str(error)) from error
    config = model.config
    count = parameter_count(model)
    layout = layout_string(config)
    print(f"converted {args.checkpoint} -> {args.output}")
    print(f"  parameters: {count:,} ({count / 1e6:.1f}M)")
    print(f"  decoder layers: {layout}; custom_self_attn_residual={config.custom_self_attn_residual}")
    print("  wrote model.safetensors, config.json, generation_config.json, tokenizer, remote code, README.md")
    print("  verified: reloaded with AutoModelForSeq2SeqLM(trust_remote_code=True), identical logits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
