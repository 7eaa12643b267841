"""xlm_swcm_hf.bulk_translation: streamed, block-sharded translation; the same outputs with 1 or 2 processes (over
torchrun's c10d rendezvous), resume after a crash, refusal of another run's blocks, text/JSONL/Parquet, input scan."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import ROOT, load_folder, translating_model_folder

from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.bulk_translation import (
    ProcessGroup,
    merge_blocks,
    parts_folder,
    scan_input,
    stream_rows,
    translate_blocks,
)
from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS
from xlm_swcm_hf.translation import translate_texts


MAX_NEW_TOKENS = 5
BLOCK = 8  # small blocks, so a short file makes several of them


def sources(count=30):
    """Many distinct sources of several lengths; row 5 blank."""
    texts = list(TINY_MULTILINGUAL_TEXTS)
    rows = [f"{texts[i % len(texts)]} {texts[(i * 7 + 3) % len(texts)] if i % 3 else ''}".strip() for i in range(count)]
    rows[5] = ""
    return rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return translating_model_folder(tmp_path_factory.mktemp("bulk") / "model")


@pytest.fixture(scope="module")
def loaded(folder):
    return load_folder(folder)


def run_one_process(loaded, input_path, output, record=None, **options):
    model, tokenizer = loaded
    source_column = options.pop("source_column", "source")
    summary = scan_input(input_path, source_column)
    record = record or {"input": summary.sha256}
    common = {"rows": summary.rows, "record": record, "block_size": BLOCK, "source_column": source_column}
    stats = translate_blocks(
        model, tokenizer, input_path, output, **common, max_new_tokens=MAX_NEW_TOKENS, progress=False, **options
    )
    merge_blocks(input_path, output, **common)
    return stats


def expected(loaded, texts):
    translations, _ = translate_texts(*loaded, texts, batch_size=1, progress=False, max_new_tokens=MAX_NEW_TOKENS)
    return translations


def test_one_process_gives_what_generate_gives_each_source_in_order(loaded, tmp_path):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    stats = run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", batch_size=3)
    lines = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == expected(loaded, texts) and lines[-1] == ""
    assert len(set(lines)) >= 4  # outputs depend on the source: an order mistake would show
    assert stats.sentences == len(texts) - 1 and stats.empty == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # blocks removed after the merge


def test_jsonl_rows_come_back_as_written_and_parquet_round_trips(loaded, tmp_path):
    texts = sources(20)
    rows = [{"id": i, "text": text, **({"meta": {"k": [i]}} if i % 2 else {})} for i, text in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    run_one_process(loaded, tmp_path / "in.jsonl", tmp_path / "out.jsonl", source_column="text")
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [{k: v for k, v in row.items() if k != "translation"} for row in written] == rows  # no field added
    translations = [row["translation"] for row in written]
    assert translations == expected(loaded, texts)

    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), tmp_path / "in.parquet", row_group_size=7)
    run_one_process(loaded, tmp_path / "in.parquet", tmp_path / "out.parquet", source_column="text")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("translation").to_pylist() == translations
    assert table.column("id").to_pylist() == list(range(len(texts)))
    assert [row["text"] for row in stream_rows(tmp_path / "in.parquet")] == texts


def test_a_crash_keeps_finished_blocks_and_the_rerun_translates_only_the_rest(loaded, tmp_path, monkeypatch):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    original, calls = XLMSWCMForConditionalGeneration.generate, []

    def crash_in_the_third_block(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if sum(calls) > 2 * BLOCK:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", crash_in_the_third_block)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", batch_size=BLOCK)
    kept = sorted(p.name for p in parts_folder(tmp_path / "out.txt").iterdir())
    assert kept == ["block-00000000.jsonl", "block-00000001.jsonl"] and not (tmp_path / "out.txt").exists()
    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", original)
    stats = run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", batch_size=BLOCK)
    assert stats.resumed == 2 * BLOCK and stats.sentences == len(texts) - 2 * BLOCK
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")[:-1] == expected(loaded, texts)


def test_blocks_of_another_run_are_refused_unless_overwrite(loaded, tmp_path, monkeypatch):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", lambda *a, **k: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", record={"model": "a"})
    (parts_folder(tmp_path / "out.txt") / "block-00000000.jsonl").write_text(
        json.dumps({"format": 1, "block": 0, "rows": BLOCK, "record": {"model": "a"}}) + "\n"
    )
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"another model \(its files. content\).*--overwrite"):
        run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", record={"model": "b"})
    run_one_process(loaded, tmp_path / "in.txt", tmp_path / "out.txt", record={"model": "b"}, overwrite=True)
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")[:-1] == expected(loaded, texts)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("null.jsonl", '{"source": "a"}\n{"source": null}\n', "line 2: field 'source' is not text (got null)"),
        ("number.jsonl", '{"source": 42}\n', "line 1: field 'source' is not text (got int)"),
        ("missing.jsonl", '{"text": "a"}\n', "line 1 has no 'source' field"),
        ("broken.jsonl", '{"source": "a"\n', "line 1 is not valid JSON"),
        ("empty.txt", "", "is empty"),
        ("blank.txt", "\n  \n", "holds only blank lines"),
        ("blank_row.jsonl", '{"source": "a"}\n\n', "line 2 is blank"),
        ("translated.jsonl", '{"source": "a", "translation": "b"}\n', "already has a 'translation' field"),
    ],
)
def test_scan_refuses_a_source_that_is_not_text_naming_the_row(tmp_path, name, content, fragment):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        scan_input(tmp_path / name)


def test_scan_refuses_a_null_or_numeric_parquet_column(tmp_path):
    pq.write_table(pa.table({"source": ["a", None]}), tmp_path / "null.parquet")
    with pytest.raises(InputError, match="row 2: column 'source' is null"):
        scan_input(tmp_path / "null.parquet")
    pq.write_table(pa.table({"source": [1, 2]}), tmp_path / "int.parquet")
    with pytest.raises(InputError, match="column 'source' is int64, not text"):
        scan_input(tmp_path / "int.parquet")


WORKER = """
import sys
from transformers import AutoTokenizer
from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.bulk_translation import ProcessGroup, merge_blocks, scan_input, translate_blocks

folder, input_path, output, crash_rank = sys.argv[1:5]
group = ProcessGroup()
summary = scan_input(input_path)
common = {"rows": summary.rows, "record": {"input": summary.sha256}, "block_size": BLOCK_SIZE}
model = XLMSWCMForConditionalGeneration.from_pretrained(folder).eval()
if str(group.rank) == crash_rank:
    original = model.generate
    def crash(*args, **kwargs):
        if crash.calls:
            raise SystemExit(9)
        crash.calls += 1
        return original(*args, **kwargs)
    crash.calls = 0
    model.generate = crash
stats = translate_blocks(model, AutoTokenizer.from_pretrained(folder), input_path, output, **common,
                         batch_size=3, max_new_tokens=MAX_NEW_TOKENS, progress=False)
print(f"process {group.rank} of {group.world}: {stats.sentences} translated, {stats.resumed} resumed", flush=True)
group.barrier()
if group.is_main:
    merge_blocks(input_path, output, **common)
""".replace("BLOCK_SIZE", str(BLOCK)).replace("MAX_NEW_TOKENS", str(MAX_NEW_TOKENS))


def torchrun(tmp_path, folder, output, port, crash_rank=-1):
    (tmp_path / "worker.py").write_text(WORKER)
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"),
        *("--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--max-restarts", "0"),
        *(str(tmp_path / "worker.py"), str(folder), str(tmp_path / "in.txt"), str(output), str(crash_rank)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_over_c10d_give_the_one_process_output_and_resume_after_a_crash(folder, loaded, tmp_path):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    run_one_process(loaded, tmp_path / "in.txt", tmp_path / "one.txt", batch_size=3)

    crashed = torchrun(tmp_path, folder, tmp_path / "two.txt", free_port(), crash_rank=1)
    assert crashed.returncode != 0 and not (tmp_path / "two.txt").exists()
    kept = sorted(p.name for p in parts_folder(tmp_path / "two.txt").iterdir())
    assert "block-00000000.jsonl" in kept and "block-00000001.jsonl" not in kept  # rank 1 died in its first block

    finished = torchrun(tmp_path, folder, tmp_path / "two.txt", free_port())
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "process 0 of 2" in finished.stdout and "process 1 of 2" in finished.stdout
    assert (tmp_path / "two.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert not parts_folder(tmp_path / "two.txt").exists()


def test_alone_the_group_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group = ProcessGroup()
    assert (group.rank, group.world, group.is_main, group.device) == (0, 1, True, None)
    group.barrier()
    assert [group.owns(block) for block in range(3)] == [True, True, True]
    assert torch.get_num_threads() >= 1
