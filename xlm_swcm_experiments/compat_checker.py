"""Check one transformers version against a saved XLM-SWCM folder: `python compat_checker.py FOLDER REFERENCE ANSWER`.

Run as a script in an environment with torch and one transformers version and without xlm_swcm_hf (it is blocked
first, so only the folder's own remote code can serve); `xlm_swcm_experiments/compat/` runs it once per version.
It loads the folder through AutoConfig / AutoModelForSeq2SeqLM / AutoModel / AutoTokenizer (trust_remote_code=True),
measures what REFERENCE's `request` asks for, compares with REFERENCE's `expected` and writes ANSWER (rewritten after
every check, so a run that is killed still leaves what it finished).

Checks (`CHECKS`), each run on its own so that one failing hides none of the others:
  loads         config, seq2seq model, base model and tokenizer load; the tokenizer encodes the sources as expected
  logits        max |logit - reference| for fixed padded ids <= LOGITS_TOLERANCE
  greedy, beam, sampling   generated ids identical (sampling after torch.manual_seed)
  trainer_step  one Seq2SeqTrainer step: its training loss and the loss after the step within LOSS_TOLERANCE
  pipeline      pipeline("text2text-generation") text equals greedy decoding's, or "n/a" where the task does not exist

Standalone on purpose: the standard library, torch and transformers only (it runs where this package is absent).
`compat/reference.py` imports `measure` for the reference (the package's own classes); the tests import `compare`.
Exit status: 0 every check passed (or n/a), 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback


CHECKS = ("loads", "logits", "greedy", "beam", "sampling", "trainer_step", "pipeline")
LOGITS_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5
PIPELINE_TASK = "text2text-generation"
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"


class NotRun(RuntimeError):
    """A check could not start because something it needs (the model, the tokenizer) did not load."""


def error_line(error: BaseException, limit: int = 300) -> str:
    """The exception's last non-empty line, `Type: message`, then where it was raised (`[at file:line in function]`:
    the innermost frame and, when that is elsewhere, the innermost one in the folder's own code); shortened to
    `limit` characters. File paths start at site-packages (`transformers/modeling_utils.py`): the same on every
    machine."""
    lines = [re.sub(r"[^\s'\"(]*/site-packages/", "", line.strip()) for line in str(error).splitlines() if line.strip()]
    if isinstance(error, NotRun):
        return lines[-1] if lines else "not run"
    text = f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        places = [frames[-1]]
        remote = [frame for frame in frames if "transformers_modules" in frame.filename]
        if remote and remote[-1] is not frames[-1]:
            places.append(remote[-1])
        where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in places)
        suffix = f" [at {where}]"
        if len(text) + len(suffix) > limit:  # the place matters more than the end of a long message
            text = text[: max(40, limit - len(suffix) - 4)] + " ..."
        text += suffix
    return text if len(text) <= limit else text[: limit - 4] + " ..."


# ------------------------------------------------------------------------------------------------ measuring


def _tensor(value):
    import torch

    return torch.tensor(value, dtype=torch.long)


def _generation_inputs(request: dict) -> dict:
    return {key: _tensor(value) for key, value in request["generation_inputs"].items()}


def measure_logits(model, request: dict) -> list:
    import torch

    inputs = {key: _tensor(value) for key, value in request["logits_inputs"].items()}
    with torch.no_grad():
        return model(**inputs).logits.tolist()


def measure_generation(model, request: dict, mode: str) -> list[list[int]]:
    """Generated ids for `mode` ("greedy", "beam", "sampling"), sampling right after torch.manual_seed."""
    import torch

    kwargs = {**request["generation"]["common"], **request["generation"][mode]}
    if mode == "sampling":
        torch.manual_seed(request["generation"]["sampling_seed"])
    with torch.no_grad():
        return model.generate(**_generation_inputs(request), **kwargs).tolist()


def measure_trainer_step(load_model, request: dict) -> dict:
    """One Seq2SeqTrainer step on the request's fixed batch: the step's training loss and the loss after it."""
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, default_data_collator

    training = request["training"]
    columns = training["batch"]
    rows = [{key: _tensor(values[index]) for key, values in columns.items()} for index in range(len(columns["labels"]))]
    model = load_model()
    with tempfile.TemporaryDirectory() as output_dir:
        # Only arguments that mean the same from 4.46 to 5.x; no dropout in the model, so the step is deterministic.
        arguments = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            max_steps=1,
            per_device_train_batch_size=len(rows),
            learning_rate=training["learning_rate"],
            lr_scheduler_type="constant",
            optim="adamw_torch",
            seed=training["seed"],
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Seq2SeqTrainer(model=model, args=arguments, train_dataset=rows, data_collator=default_data_collator)
        train_loss = float(trainer.train().training_loss)
    model = trainer.model.eval()
    with torch.no_grad():
        loss_after_step = float(model(**{key: _tensor(values) for key, values in columns.items()}).loss)
    return {"train_loss": train_loss, "loss_after_step": loss_after_step}


def pipeline_task_exists() -> bool:
    from transformers.pipelines import SUPPORTED_TASKS

    return PIPELINE_TASK in SUPPORTED_TASKS


def measure_pipeline(model, tokenizer, request: dict) -> list[str] | None:
    """pipeline("text2text-generation") texts for the sources with greedy settings; None where the task is gone."""
    if not pipeline_task_exists():
        return None
    from transformers import pipeline

    generator = pipeline(PIPELINE_TASK, model=model, tokenizer=tokenizer, device="cpu")
    kwargs = {**request["generation"]["common"], **request["generation"]["greedy"]}
    outputs = generator(list(request["sources"]), clean_up_tokenization_spaces=False, **kwargs)
    return [output["generated_text"] for output in outputs]


def greedy_texts_one_by_one(model, tokenizer, request: dict) -> list[str]:
    """Greedy decoding of each source alone (no padding), decoded as the pipeline decodes: its expected text."""
    import torch

    kwargs = {**request["generation"]["common"], **request["generation"]["greedy"]}
    texts = []
    for source in request["sources"]:
        with torch.no_grad():
            ids = model.generate(**tokenizer([source], return_tensors="pt"), **kwargs)
        texts.append(tokenizer.decode(ids[0], skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return texts


def _attempt(measured: dict, name: str, function, *args) -> None:
    """Run one measurement; store its value, or its error line (a failure never stops the other measurements)."""
    started = time.perf_counter()
    try:
        measured[name] = {"value": function(*args)}
    except BaseException as error:  # noqa: B036  a check that raises anything (even SystemExit) is that check failing
        if isinstance(error, KeyboardInterrupt):
            raise
        measured[name] = {"error": error_line(error)}
    measured[name]["seconds"] = round(time.perf_counter() - started, 3)


def measure(loaders: dict, request: dict, on_progress=None) -> dict:
    """Every measurement the checks compare, as {name: {"value": ...} or {"error": "..."}, "seconds": s}.

    `loaders` maps "config", "model", "base_model", "tokenizer" to zero-argument callables (Auto classes with
    trust_remote_code in a checked environment, the package's classes for the reference). `on_progress(measured)`
    is called after each measurement.
    """
    import torch

    measured: dict = {}
    loaded: dict = {}
    progress = on_progress or (lambda _: None)

    def load(name):
        loaded[name] = loaders[name]()
        if name in ("model", "base_model"):
            loaded[name].eval()
        # the module shows where the class came from: transformers_modules.* is the folder's own code
        return {"class": type(loaded[name]).__name__, "module": type(loaded[name]).__module__}

    def needs(*names):
        missing = [name for name in names if name not in loaded]
        if missing:
            raise NotRun(f"not run: {', '.join(missing)} did not load")

    for name in ("config", "model", "base_model", "tokenizer"):
        _attempt(measured, f"load_{name}", load, name)
    _attempt(measured, "tokenizer_ids", lambda: (needs("tokenizer"), tokenize(loaded["tokenizer"], request))[1])
    progress(measured)
    _attempt(measured, "logits", lambda: (needs("model"), measure_logits(loaded["model"], request))[1])
    progress(measured)
    for mode in ("greedy", "beam", "sampling"):
        _attempt(
            measured, mode, lambda mode=mode: (needs("model"), measure_generation(loaded["model"], request, mode))[1]
        )
        progress(measured)
    _attempt(measured, "trainer_step", lambda: (needs("model"), measure_trainer_step(loaders["model"], request))[1])
    progress(measured)
    _attempt(
        measured,
        "pipeline",
        lambda: (needs("model", "tokenizer"), measure_pipeline(loaded["model"], loaded["tokenizer"], request))[1],
    )
    progress(measured)
    measured["versions"] = {"value": {"transformers": _transformers_version(), "torch": torch.__version__}}
    return measured


def tokenize(tokenizer, request: dict) -> list[list[int]]:
    return tokenizer(list(request["sources"]), padding=True)["input_ids"]


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


# ------------------------------------------------------------------------------------------------ comparing


def _verdict(status: str, detail: str = "") -> dict:
    return {"status": status, "detail": detail}


def _max_abs_difference(expected, actual) -> float:
    """Largest |a - b| over two equally nested lists; ValueError when their shapes differ."""
    if isinstance(expected, list) != isinstance(actual, list):
        raise ValueError("shapes differ")
    if not isinstance(expected, list):
        return abs(float(expected) - float(actual))
    if len(expected) != len(actual):
        raise ValueError(f"shapes differ (length {len(actual)}, expected {len(expected)})")
    return max((_max_abs_difference(e, a) for e, a in zip(expected, actual)), default=0.0)


def _first_difference(expected: list[list[int]], actual: list[list[int]]) -> str:
    if len(expected) != len(actual):
        return f"{len(actual)} sequences, expected {len(expected)}"
    for row, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            for position, (a, b) in enumerate(zip(want, got)):
                if a != b:
                    return f"sequence {row} differs at token {position}: {b}, expected {a}"
            return f"sequence {row} has {len(got)} tokens, expected {len(want)}"
    return ""


def compare(expected: dict, measured: dict, missing: str = "not measured: the checker stopped before it") -> dict:
    """One verdict {"status": "pass" | "fail" | "n/a", "detail": str} per name in CHECKS.

    `expected` holds the reference's values (logits, greedy, beam, sampling: ids; tokenizer_ids; trainer_step:
    losses; pipeline: the texts greedy decoding gives source by source); `measured` is `measure`'s output, possibly
    partial (a checker that timed out): what it lacks fails with `missing`.
    """

    def failed(name):  # that measurement's error line, or None
        entry = measured.get(name) or {"error": missing}
        return entry.get("error")

    return {  # in CHECKS order
        "loads": _loads_verdict(expected, measured, failed),
        "logits": _logits_verdict(expected, measured, failed),
        **{mode: _ids_verdict(expected, measured, failed, mode) for mode in ("greedy", "beam", "sampling")},
        "trainer_step": _trainer_step_verdict(expected, measured, failed),
        "pipeline": _pipeline_verdict(expected, measured, failed),
    }


def _loads_verdict(expected: dict, measured: dict, failed) -> dict:
    """Every part loads (the errors grouped: model and base model often share one) and the tokenizer's ids match."""
    load_errors: dict[str, list[str]] = {}  # error -> the parts that failed with it
    for part in ("config", "model", "base_model", "tokenizer"):
        if failed(f"load_{part}"):
            load_errors.setdefault(failed(f"load_{part}"), []).append(part)
    if load_errors:
        return _verdict(FAIL, "; ".join(f"{', '.join(parts)}: {error}" for error, parts in load_errors.items()))
    if failed("tokenizer_ids"):
        return _verdict(FAIL, f"tokenizer: {failed('tokenizer_ids')}")
    if measured["tokenizer_ids"]["value"] != expected["tokenizer_ids"]:
        return _verdict(FAIL, "the tokenizer encodes the sources differently")
    classes = [measured[f"load_{name}"]["value"]["class"] for name in ("model", "base_model", "tokenizer")]
    return _verdict(PASS, ", ".join(classes))


def _logits_verdict(expected: dict, measured: dict, failed) -> dict:
    if failed("logits"):
        return _verdict(FAIL, failed("logits"))
    try:
        difference = _max_abs_difference(expected["logits"], measured["logits"]["value"])
    except ValueError as error:
        return _verdict(FAIL, f"logits {error}")
    status = PASS if difference <= LOGITS_TOLERANCE else FAIL
    return _verdict(status, f"max |diff| {difference:.2e} (tolerance {LOGITS_TOLERANCE:.0e})")


def _ids_verdict(expected: dict, measured: dict, failed, mode: str) -> dict:
    if failed(mode):
        return _verdict(FAIL, failed(mode))
    difference = _first_difference(expected[mode], measured[mode]["value"])
    return _verdict(FAIL, difference) if difference else _verdict(PASS, "identical ids")


def _trainer_step_verdict(expected: dict, measured: dict, failed) -> dict:
    if failed("trainer_step"):
        return _verdict(FAIL, failed("trainer_step"))
    losses = measured["trainer_step"]["value"]
    worst = max(abs(losses[key] - value) for key, value in expected["trainer_step"].items())
    detail = f"loss {losses['train_loss']:.6f}, after the step {losses['loss_after_step']:.6f} (max |diff| {worst:.1e})"
    return _verdict(PASS if worst <= LOSS_TOLERANCE else FAIL, detail)


def _pipeline_verdict(expected: dict, measured: dict, failed) -> dict:
    if failed("pipeline"):
        return _verdict(FAIL, failed("pipeline"))
    if measured["pipeline"]["value"] is None:
        return _verdict(NOT_APPLICABLE, f"no {PIPELINE_TASK} pipeline in this version")
    if measured["pipeline"]["value"] != expected["pipeline"]:
        got, want = measured["pipeline"]["value"], expected["pipeline"]
        return _verdict(FAIL, f"pipeline gave {got!r}, greedy generation {want!r}")
    return _verdict(PASS, "same text as greedy generation")


def all_passed(verdicts: dict) -> bool:
    return all(verdicts.get(name, {}).get("status") in (PASS, NOT_APPLICABLE) for name in CHECKS)


# ------------------------------------------------------------------------------------------------ the script


def _write_json(path: str, content: dict) -> None:
    """Write to a temporary name beside `path`, then rename: a reader never sees half a file."""
    temporary = f"{path}.partial"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(content, handle, ensure_ascii=False)
    os.replace(temporary, path)


def auto_loaders(folder: str) -> dict:
    """How a user without this package loads the folder: the Auto classes, trusting the folder's code."""
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    return {
        "config": lambda: AutoConfig.from_pretrained(folder, trust_remote_code=True),
        "model": lambda: AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True),
        "base_model": lambda: AutoModel.from_pretrained(folder, trust_remote_code=True),
        # AutoTokenizer reads config.json first; trust_remote_code spares the prompt, the class stays the stock one.
        "tokenizer": lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=True),
    }


def main(argv: list[str]) -> int:
    folder, reference_path, answer_path = argv
    with open(reference_path, encoding="utf-8") as handle:
        reference = json.load(handle)
    started = time.perf_counter()
    answer = {"measured": {}, "verdicts": {}, "finished": False}

    def record(measured):
        answer["measured"] = measured
        answer["seconds"] = round(time.perf_counter() - started, 3)
        _write_json(answer_path, answer)

    try:
        import torch

        torch.set_num_threads(1)  # the reference is measured on one thread too: same reduction order
        loaders = auto_loaders(folder)
    except BaseException as error:  # transformers itself does not import: every check fails with that line
        if isinstance(error, KeyboardInterrupt):
            raise
        measured = {
            f"load_{name}": {"error": error_line(error)} for name in ("config", "model", "base_model", "tokenizer")
        }
        measured.update({name: {"error": f"not run: {error_line(error)}"} for name in CHECKS[1:] + ("tokenizer_ids",)})
        answer["measured"] = measured
    else:
        answer["measured"] = measure(loaders, reference["request"], on_progress=record)
    answer["verdicts"] = compare(reference["expected"], answer["measured"])
    answer["finished"] = True
    record(answer["measured"])
    return 0 if all_passed(answer["verdicts"]) else 1


if __name__ == "__main__":
    sys.modules["xlm_swcm_hf"] = None  # only the folder's own code may serve
    sys.exit(main(sys.argv[1:]))
