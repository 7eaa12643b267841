"""The GPU check's checks (registered in `gpu_check.CHECKS`): each takes a `Context` (device, sizes) and returns its
measurements or raises `CheckFailed`. Training in fp16 and bf16, generation on the device equal to the CPU's, sdpa
attention, LoRA through peft, and the full-size decode step in bf16 next to BART; with the small models and data they
run on.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path

import torch


# Model sizes per check; "gpu" is what the script runs on a GPU, "tiny" what the CPU tests run.
SIZES = {
    "gpu": {
        # the demo's model: multilingual-e5-small's dimensions and its pruned vocabulary's size
        "train": dict(
            vocab_size=10097, hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536
        ),
        "train_batch": 16,
        "train_length": 48,
        "train_steps": 30,
        "train_lr": 1e-3,
        "decode": "full",  # xlm_swcm_experiments.benchmark's full size, 491.6M parameters
        "decode_tokens": 32,
        "decode_repeats": 3,
    },
    "tiny": {
        "train": dict(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64),
        "train_batch": 4,
        "train_length": 8,
        "train_steps": 12,
        "train_lr": 1e-2,
        "decode": "tiny",
        "decode_tokens": 4,
        "decode_repeats": 1,
    },
}
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=37)


class CheckFailed(AssertionError):
    """A check ran and its result is wrong; the message says what was expected and what came."""


@dataclasses.dataclass
class Context:
    device: torch.device
    size: str = "gpu"
    work_dir: Path | None = None

    @property
    def sizes(self) -> dict:
        return SIZES[self.size]

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ------------------------------------------------------------------------------------------------ models and data


def swcm_model(dims: dict, seed: int = 0, attn_implementation: str = "sdpa"):
    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration

    torch.manual_seed(seed)
    config = XLMSWCMConfig(
        **dims,
        max_position_embeddings=130,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = attn_implementation
    model = XLMSWCMForConditionalGeneration(config)
    with torch.no_grad():  # non-trivial biases and LayerNorms, as in a trained model
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model


def source_batch(vocab_size: int, batch: int = 2, length: int = 7, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    if batch > 1:  # one padded row: the attention mask matters
        ids[1, length // 2 :] = 1
        ids[1, length // 2 - 1] = 2
    return {"input_ids": ids, "attention_mask": (ids != 1).long()}


def translation_dataset(vocab_size: int, rows: int, length: int, seed: int = 0):
    """A learnable toy task: the target is the source reversed (fixed rows, so loss must fall quickly)."""
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (rows, length), generator=generator)
    labels = torch.cat([ids.flip(1)[:, :-1], torch.full((rows, 1), 2)], dim=1)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * length] * rows, "labels": labels})


# ------------------------------------------------------------------------------------------------ checks


def _train(ctx: Context, precision: str) -> dict:
    from transformers import PrinterCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    sizes = ctx.sizes
    model = swcm_model(sizes["train"])
    dataset = translation_dataset(sizes["train"]["vocab_size"], sizes["train_batch"] * 2, sizes["train_length"])
    losses, scales = [], []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs):
            scaler = getattr(trainer.accelerator, "scaler", None)
            scales.append(scaler.get_scale() if scaler is not None and scaler.is_enabled() else None)

    with tempfile.TemporaryDirectory(dir=ctx.work_dir) as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            max_steps=sizes["train_steps"],
            per_device_train_batch_size=sizes["train_batch"],
            learning_rate=sizes["train_lr"],
            warmup_steps=2,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            seed=0,
            fp16=precision == "fp16",
            bf16=precision == "bf16",
            use_cpu=ctx.device.type == "cpu",
        )
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=dataset, callbacks=[Record()])
        trainer.remove_callback(PrinterCallback)  # the table reports the losses
        trainer.train()
    require(len(losses) >= 4, f"expected a logged loss per step, got {len(losses)}")
    require(all(math.isfinite(loss) for loss in losses), f"non-finite loss in {losses}")
    head, tail = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    require(tail < head * 0.9, f"loss did not decrease: first steps {head:.3f}, last steps {tail:.3f}")
    details = {"loss_first": round(head, 3), "loss_last": round(tail, 3), "steps": len(losses)}
    parameter = next(model.parameters())
    details["device"] = str(parameter.device)
    if precision == "fp16":
        active = [scale for scale in scales if scale is not None]
        require(bool(active), "fp16 training ran without an active grad scaler")
        details["grad_scale"] = active[-1]
    else:
        require(all(scale is None for scale in scales), "bf16 training should not use a grad scaler")
    return details


def check_train_fp16(ctx: Context) -> dict:
    return _train(ctx, "fp16")


def check_train_bf16(ctx: Context) -> dict:
    return _train(ctx, "bf16")


def _generate(model, batch, beams: int, new_tokens: int = 8):
    with torch.inference_mode():
        return model.generate(
            **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=beams, do_sample=False
        ).cpu()


def check_generate_matches_cpu(ctx: Context) -> dict:
    """Cached greedy and beam search on the device give the CPU's fp32 tokens (tiny model, fp32 on both)."""
    model = swcm_model(TINY).eval()
    batch = source_batch(TINY["vocab_size"])
    expected = {beams: _generate(model, batch, beams) for beams in (1, 4)}
    model.to(ctx.device)
    on_device = {k: v.to(ctx.device) for k, v in batch.items()}
    details = {}
    for beams, tokens in expected.items():
        got = _generate(model, on_device, beams)
        require(torch.equal(got, tokens), f"beams={beams}: {ctx.device} gave {got.tolist()}, CPU {tokens.tolist()}")
        details[f"beams{beams}"] = "equal"
    return details


def check_sdpa(ctx: Context) -> dict:
    """The sdpa attention path: logits equal to eager attention (fp32), and it runs in bf16 with a padded batch."""
    batch = {k: v.to(ctx.device) for k, v in source_batch(TINY["vocab_size"]).items()}
    targets = torch.tensor([[0, 20, 21, 22], [0, 30, 31, 32]], device=ctx.device)
    logits = {}
    for implementation in ("eager", "sdpa"):
        model = swcm_model(TINY, attn_implementation=implementation).eval().to(ctx.device)
        require(
            model.config._attn_implementation == implementation,
            f"asked for {implementation}, model uses {model.config._attn_implementation}",
        )
        with torch.no_grad():
            logits[implementation] = model(**batch, decoder_input_ids=targets).logits.float()
    error = (logits["sdpa"] - logits["eager"]).abs().max().item()
    require(error < 1e-4, f"sdpa and eager logits differ by {error:.2e}")
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        bf16 = model(**batch, decoder_input_ids=targets).logits
    require(bool(torch.isfinite(bf16).all()), "sdpa in bf16 gave non-finite logits")
    return {"max_abs_diff_vs_eager": f"{error:.1e}", "bf16": "finite"}


def check_lora(ctx: Context) -> dict:
    """LoRA through peft: only the adapter trains, the loss falls, the merged model generates."""
    from xlm_swcm_hf.training.adapters import require_peft

    peft = require_peft()  # a clear message where peft is too old for this transformers

    model = swcm_model(TINY).to(ctx.device)
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_2_SEQ_LM, r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
    )
    model = peft.get_peft_model(model, config)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    require(bool(trainable) and all("lora_" in name for name in trainable), f"trainable: {sorted(trainable)[:4]}")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = {k: v.to(ctx.device) for k, v in source_batch(TINY["vocab_size"], batch=4, seed=3).items()}
    labels = batch["input_ids"].flip(1).masked_fill(batch["attention_mask"].flip(1) == 0, -100)
    model.train()
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    require(losses[-1] < losses[0] * 0.9, f"LoRA loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}")
    adapter_parameters = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    merged = model.merge_and_unload().eval()
    out = _generate(merged, {k: v[:2] for k, v in batch.items()}, beams=2, new_tokens=4)
    require(out.shape == (2, 5), f"merged model generated shape {tuple(out.shape)}")
    return {
        "trainable_parameters": adapter_parameters,
        "loss_first": round(losses[0], 3),
        "loss_last": round(losses[-1], 3),
    }


def check_decode_bf16(ctx: Context) -> dict:
    """Full-size greedy decode step in bf16, batch 1 and 8, next to BART of the same size (forced lengths)."""
    from xlm_swcm_experiments.benchmark import build_bart, build_swcm, make_source, weights_read_per_token

    sizes, details = ctx.sizes, {}
    size, tokens = sizes["decode"], sizes["decode_tokens"]
    models = {
        "swcm": build_swcm(size).to(ctx.device, torch.bfloat16),
        "bart": build_bart(size).to(ctx.device, torch.bfloat16),
    }
    ratio = weights_read_per_token(models["swcm"])["bytes"] / weights_read_per_token(models["bart"])["bytes"]
    details["weights_read_ratio"] = round(ratio, 3)
    for batch in (1, 8):
        source = {k: v.to(ctx.device) for k, v in make_source(size, batch).items()}
        times = {name: [] for name in models}
        for repeat in range(sizes["decode_repeats"] + 1):  # the first round is a warm-up
            for name, model in models.items():
                n = 2 if repeat == 0 else tokens
                ctx.synchronize()
                start = time.perf_counter()
                out = _generate(model, source, 1, new_tokens=n)
                ctx.synchronize()
                if repeat:
                    require(out.shape[1] - 1 == n, f"{name} batch {batch}: {out.shape[1] - 1} new tokens, not {n}")
                    times[name].append((time.perf_counter() - start) / n * 1e3)
        ours, bart = min(times["swcm"]), min(times["bart"])
        details[f"b{batch}_ms_per_step"] = round(ours, 2)
        details[f"b{batch}_bart_ms_per_step"] = round(bart, 2)
        details[f"b{batch}_vs_bart"] = round(ours / bart, 2)
        # Generous: a step far slower than BART's means something is wrong (e.g. the cache is not used). Only on
        # CUDA: CPU timings of the tiny size under load say nothing.
        if ctx.device.type == "cuda":
            require(ours / bart <= 2.0, f"batch {batch}: {ours:.1f} ms/step is {ours / bart:.2f}x BART's {bart:.1f}")
    return details
