"""Figures that pin the model's numbers: a fixed-seed tiny model's logits, its greedy/beam/sampled generations, its
cached-decoding parity, the full size's parameter count, and a fixed-seed training run's losses.

`tests/data/model_figures.json` holds them as recorded on transformers 5.24.0 before the model file was made portable
(issue 21); `test_model_figures.py` recomputes them and compares. Run this file
(`python tests/library/model_figures.py`) to print fresh figures as JSON.
"""

import json
import sys
from pathlib import Path

import torch


def compute_figures() -> dict:
    from conftest import padded_batch, tiny_model

    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration

    figures = {}
    model = tiny_model(seed=0)
    batch = padded_batch()
    decoder_input_ids = torch.tensor([[0, 5, 9, 13, 2], [0, 7, 7, 1, 1]])
    with torch.no_grad():
        figures["logits"] = model(**batch, decoder_input_ids=decoder_input_ids).logits.tolist()

        # Cached decoding, one token at a time, against the full forward (the largest difference).
        full = model(**batch, decoder_input_ids=decoder_input_ids[:, :3]).logits
        encoder_outputs = model.get_encoder()(**batch)
        cache, steps = None, []
        for position in range(3):
            output = model(
                encoder_outputs=encoder_outputs,
                attention_mask=batch["attention_mask"],
                decoder_input_ids=decoder_input_ids[:, position : position + 1],
                past_key_values=cache,
                use_cache=True,
            )
            cache = output.past_key_values
            steps.append(output.logits)
        figures["cache_parity_max_abs_diff"] = float((torch.cat(steps, dim=1) - full).abs().max())

        figures["greedy"] = model.generate(**batch, max_new_tokens=8, do_sample=False).tolist()
        figures["beam"] = model.generate(**batch, max_new_tokens=8, num_beams=3, do_sample=False).tolist()
        torch.manual_seed(0)
        figures["sampling"] = model.generate(**batch, max_new_tokens=8, do_sample=True, top_k=0).tolist()

    with torch.device("meta"):
        full_size = XLMSWCMForConditionalGeneration(XLMSWCMConfig(vocab_size=135135))
    figures["full_size_parameters"] = sum(p.numel() for p in full_size.parameters())

    # Five AdamW steps with dropout on: forward, loss, backward and update all feed the figures.
    torch.manual_seed(1)
    model = tiny_model(seed=1).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = torch.tensor([[5, 9, 13, 2, -100], [7, 7, 2, -100, -100]])
    losses = []
    for _ in range(5):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    figures["training_losses"] = losses
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: conftest.py is one folder up
    json.dump(compute_figures(), sys.stdout)
