"""The serving benchmark's structure at tiny size (no wall-clock assertions): every candidate is timed or reports
why not, the compiled and ONNX paths give fp32 eager's tokens, targets and the chosen path come out of stored JSON,
and bad arguments are one error line before any model is built."""

import json

import pytest
from conftest import run_script


pytest.importorskip("onnxruntime", reason="the ONNX Runtime candidates need the onnx extra (in dev)")


RESTRICTED_AND_BF16 = "torch-bf16,torch+vocab,onnxruntime+vocab,torch-bf16+vocab,bart"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from xlm_swcm_experiments.serving_benchmark import main

    out = tmp_path_factory.mktemp("serving")
    argv = ["--size", "tiny", "--parts", "candidates,compiled,quality,throughput", "--length", "3", "--repeats", "1"]
    argv += [
        "--candidates",
        f"torch,onnxruntime,compiled,compiled-int8,{RESTRICTED_AND_BF16}",
        "--configs",
        "greedy_b1",
    ]
    argv += ["--impls", "eager,compiled", "--no-memory", "--quality-model", str(out / "none"), "--out-dir", str(out)]
    return main(argv), out


def test_every_candidate_is_timed_or_says_why(report):
    report, out = report
    rows = {row["candidate"]: row for row in report["candidates"]["rows"]}
    for name in ("torch", "onnxruntime", "compiled"):
        assert rows[name]["greedy_b1"]["median_ms"] > 0 and rows[name]["greedy_b8"]["median_ms"] > 0
        assert rows[name]["greedy_b1_agreement"]["tokens"] == 1.0, name  # fp32 paths: fp32 eager's tokens
    assert rows["onnxruntime"]["convert_s"] > 0
    # torch.compile cannot trace torch.ao's dynamic int8 Linear: the row records why instead of ending the run
    assert "greedy_b1" in rows["compiled-int8"] or rows["compiled-int8"]["error"]
    saved = json.loads((out / "serving.json").read_text())
    assert saved["candidates"]["rows"] == json.loads(json.dumps(report["candidates"]["rows"]))


def test_restricted_bf16_and_bart_rows_are_timed_against_their_own_references(report):
    """+vocab rows decode with the benchmark's output vocabulary (a fifth of the tiny vocabulary), compared with
    torch+vocab's tokens; the ONNX one shares onnxruntime's export; bart is its own reference."""
    report, out = report
    part = report["candidates"]
    rows = {row["candidate"]: row for row in part["rows"]}
    assert part["restricted_vocabulary"] == {"language": "ug", "rows": 200, "seed": 0}
    for name in ("torch+vocab", "onnxruntime+vocab", "torch-bf16+vocab"):
        row = rows[name]
        assert row["head_rows"] == 200 and row["output_languages"] == "ug", name
        assert row["greedy_b1"]["median_ms"] > 0 and row["greedy_b8"]["median_ms"] > 0
        assert row["agreement_with"] == "torch+vocab"
    assert rows["onnxruntime+vocab"]["greedy_b1_agreement"]["tokens"] == 1.0  # fp32 graphs: fp32 eager's tokens
    assert rows["onnxruntime+vocab"]["shares_build_of"] == "onnxruntime"
    assert rows["torch"]["head_rows"] == 1000 and "output_languages" not in rows["torch"]
    assert rows["torch-bf16"]["greedy_b8"]["median_ms"] > 0 and rows["bart"]["agreement_with"] == "bart"
    assert "bf16" in part["cpu"]  # the CPU's bf16 flags, or that it has none
    full, restricted = part["bounds"]["full"], part["bounds"]["restricted"]
    assert (full["head_rows"], restricted["head_rows"]) == (1000, 200)
    for fmt in ("fp32", "bf16", "int8"):
        assert 0 < restricted["bytes"][fmt] < full["bytes"][fmt]
    assert full["bytes"]["int8"] < full["bytes"]["bf16"] < full["bytes"]["fp32"] == 4 * full["parameters"]
    table = (out / "serving.md").read_text()
    assert "| torch+vocab | 200 |" in table and "| bart | 1,000 |" in table and "(torch+vocab) |" in table
    assert 'output_languages="ug"' in table and "restricted head (200 rows)" in table
    restricted_targets = [t for t in report["targets"] if "row head" in t["target"]]
    assert len(restricted_targets) == 5
    assert [t["met"] for t in restricted_targets[:2]] == [
        t["value"] <= g for t, g in zip(restricted_targets, (0.25, 0.22))
    ]
    # no ctranslate2 row in this run: the peer targets have no value and are not judged
    assert [t["value"] for t in restricted_targets[2:4]] == [None, None]


def test_restricted_candidate_decodes_inside_its_vocabulary(tmp_path):
    from xlm_swcm_experiments.benchmark import make_source
    from xlm_swcm_experiments.serving_benchmark.measure import build_base, greedy, prepare_candidate

    base = build_base("tiny")
    allowed = set(base.output_vocabularies["ug"])
    full = prepare_candidate("torch", base, tmp_path)
    row = prepare_candidate("torch+vocab", base, tmp_path, {"torch": full})
    assert row["model"] is base and row["generate"] == {"output_languages": "ug"} and row["convert_s"] == 0
    source = make_source("tiny", 8)
    _, restricted = greedy(row["model"], source, 6, **row["generate"])
    _, whole = greedy(full["model"], source, 6)
    assert set(restricted[:, 1:].flatten().tolist()) <= allowed
    assert not set(whole[:, 1:].flatten().tolist()) <= allowed  # the whole vocabulary's tokens leave it


def test_ctranslate2_peer_decodes_the_same_bart(tmp_path):
    """CTranslate2 int8 running the converted same-shape BART gives the forced number of tokens, timed beside
    PyTorch's BART and compared with its tokens; its row judges the peer targets."""
    pytest.importorskip("ctranslate2", reason="the CTranslate2 peer needs the peers extra (in dev)")
    from xlm_swcm_experiments.serving_benchmark import main

    out = tmp_path / "peer"
    argv = ["--size", "tiny", "--parts", "candidates", "--length", "4", "--repeats", "1", "--no-memory"]
    report = main([*argv, "--candidates", "torch,torch+vocab,bart,ctranslate2-int8", "--out-dir", str(out)])
    rows = {row["candidate"]: row for row in report["candidates"]["rows"]}
    peer = rows["ctranslate2-int8"]
    assert "error" not in peer, peer.get("error")
    for config, batch in (("greedy_b1", 1), ("greedy_b8", 8)):
        assert peer[config]["median_ms"] > 0 and peer[f"{config}_agreement"]["positions"] == 4 * batch
    assert peer["agreement_with"] == "bart" and peer["convert_s"] > 0
    peer_targets = [t for t in report["targets"] if "CTranslate2" in t["target"]]
    assert len(peer_targets) == 2 and all(t["met"] == (t["value"] < 1) for t in peer_targets)
    assert "| ctranslate2-int8 | 1,000 |" in (out / "serving.md").read_text()


def test_ctranslate2_peer_generates_forced_length_ids(tmp_path):
    pytest.importorskip("ctranslate2", reason="the CTranslate2 peer needs the peers extra (in dev)")
    import torch

    from xlm_swcm_experiments.benchmark import build_bart, make_source
    from xlm_swcm_experiments.serving_benchmark.peers import prepare_peer

    row = prepare_peer("ctranslate2-int8", "tiny", tmp_path, {})
    source = make_source("tiny", 3)
    ids = row["model"].generate(**source, max_new_tokens=5, min_new_tokens=5)
    assert ids.shape == (3, 6) and (ids[:, 0] == 2).all() and int(ids.max()) < 1000
    assert (ids[:, 1:] != 2).all()  # forced length: no </s> before the end
    with torch.inference_mode():
        bart = build_bart("tiny").generate(**source, max_new_tokens=5, min_new_tokens=5, do_sample=False, num_beams=1)
    assert bart.shape == ids.shape  # what the agreement compares


def test_ctranslate2_row_says_why_when_it_is_not_installed(tmp_path, monkeypatch):
    import sys

    from xlm_swcm_experiments.serving_benchmark.peers import prepare_peer

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    row = prepare_peer("ctranslate2-int8", "tiny", tmp_path, {})
    assert row["error"].startswith("skipped: ctranslate2 is not installed") and "peers" in row["error"]


def test_restricted_targets_are_judged_from_the_numbers():
    from xlm_swcm_experiments.serving_benchmark import evaluate_targets

    def timed(name, b1, b8):
        return {"candidate": name, "greedy_b1": {"median_ms": b1}, "greedy_b8": {"median_ms": b8}}

    bounds = {head: {"ms_per_token": {"fp32": 40.0, "bf16": 20.0, "int8": 10.0}} for head in ("full", "restricted")}
    rows = [timed("torch", 100, 250), timed("onnxruntime-int8+vocab", 24, 60), timed("ctranslate2-int8", 30, 55)]
    part = {"rows": rows, "restricted_vocabulary": {"language": "ug", "rows": 20000, "seed": 0}, "bounds": bounds}
    report = {"meta": {"device": "cpu (x)"}, "candidates": part, "chosen": "onnxruntime-int8"}
    restricted = [target for target in evaluate_targets(report) if "row head" in target["target"]]
    batch1, batch8, peer1, peer8, bound = restricted
    assert batch1["value"] == pytest.approx(0.24) and batch1["met"] is True and batch1["goal"] == "<= 0.25"
    assert batch8["value"] == pytest.approx(0.24) and batch8["met"] is False and batch8["goal"] == "<= 0.22"
    assert "CTranslate2" in peer1["target"] and peer1["met"] is True and peer8["met"] is False
    assert (
        bound["value"] == pytest.approx(2.4) and bound["met"] is False and "(int8, restricted head)" in bound["target"]
    )
    assert "onnxruntime-int8+vocab (20,000-row head; the chosen path)" in batch1["target"]


def test_compiled_rows_and_targets(report):
    report, out = report
    compiled = {row["impl"]: row for row in report["compiled"]}
    assert set(compiled) == {"eager", "compiled"} and compiled["compiled"]["tokens_identical_to_eager"]
    assert compiled["compiled"]["first_call_s"] > 0
    assert "skipped" in report["quality"] and "skipped" in report["throughput"]
    assert report["chosen"] is None  # no quality measured: nothing is chosen
    names = [target["target"] for target in report["targets"]]
    assert any("weights-read bound" in name for name in names)
    gpu = [target for target in report["targets"] if "(GPU)" in target["goal"]]
    assert gpu and all(target["met"] is None for target in gpu)  # a CPU run does not judge the GPU targets
    table = (out / "serving.md").read_text()
    assert "| compiled |" in table and "## Targets" in table and "a GPU target" in table


PARTS_IN_ORDER = ["candidates", "quality", "compiled", "throughput"]


def test_merge_takes_the_parts_not_run_now(report, tmp_path):
    from xlm_swcm_experiments.serving_benchmark import main

    earlier, out = report
    argv = ["--size", "tiny", "--parts", "throughput", "--quality-model", str(tmp_path / "none")]
    merged = main([*argv, "--merge", str(out / "serving.json"), "--out-dir", str(tmp_path / "merged")])
    assert merged["candidates"] == json.loads(json.dumps(earlier["candidates"]))
    assert merged["compiled"] == json.loads(json.dumps(earlier["compiled"]))
    assert merged["meta"]["merged"][0]["parts"] == ["candidates", "quality", "compiled"]
    # --parts none: nothing measured; the first file holding a part wins, a later one adds what is still missing
    merges = ["--merge", str(tmp_path / "merged" / "serving.json"), "--merge", str(out / "serving.json")]
    rendered = main(["--parts", "none", *merges, "--out-dir", str(tmp_path / "rendered")])
    # each part keeps the run that measured it: candidates, quality, compiled from the first run by way of the merged
    # file, throughput from the merged file's own run; the second file adds nothing
    entries = rendered["meta"]["merged"]
    assert [entry["parts"] for entry in entries] == [PARTS_IN_ORDER[:3], PARTS_IN_ORDER[3:]]
    assert entries[0]["from"] == f"{out / 'serving.json'} (by way of {tmp_path / 'merged' / 'serving.json'})"
    assert entries[0]["commit"] == earlier["meta"]["commit"] and entries[1]["from"] == merges[1]
    assert rendered["throughput"] == merged["throughput"] and rendered["targets"] == merged["targets"]
    assert "are from" in (tmp_path / "merged" / "serving.md").read_text()


def test_chosen_path_is_the_fastest_that_keeps_quality():
    from xlm_swcm_experiments.serving_benchmark import choose_path

    def timed(name, ms):
        return {"candidate": name, "greedy_b1": {"median_ms": ms}}

    quality = [
        {"candidate": "torch", "nll": 2.0, "chrf": 30.0},
        {"candidate": "onnxruntime", "nll": 2.0, "chrf": 30.0},
        {"candidate": "onnxruntime-int8", "nll": 2.05, "chrf": 30.2},  # NLL 0.05 worse: out
        {"candidate": "torch-int8", "nll": 2.01, "chrf": 29.7},
    ]
    candidates = [timed("torch", 50), timed("onnxruntime", 20), timed("onnxruntime-int8", 8), timed("torch-int8", 25)]
    report = {"candidates": {"rows": candidates}, "quality": {"rows": quality}}
    assert choose_path(report) == "onnxruntime"


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--candidates", "torch,tensorrt"], "--candidates 'torch,tensorrt': choose from"),
        (["--candidates", "onnxruntime"], "must include torch"),
        (["--impls", "compiled"], "include eager"),
        (["--length", "0"], "--length must be >= 1"),
        (["--merge", "{tmp}/missing.json"], "missing.json"),
    ],
)
def test_bad_arguments_are_one_error_line(tmp_path, capsys, extra, fragment):
    extra = [item.format(tmp=tmp_path) for item in extra]
    code = run_script("benchmark_serving", ["--size", "tiny", "--out-dir", tmp_path / "out", *extra])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_loop_throughput_counts_every_process_over_the_slowest_loop():
    """Two processes' closing lines: all their sentences over the slower loop, since they run side by side."""
    from xlm_swcm_experiments.serving_benchmark.bulk import loop_sentences_per_s

    stdout = (
        "process 1 of 2: translated 60 sentences, 240 tokens in 3.0 s: 20.00 sentences/s, 80.0 tokens/s; 0 truncated\n"
        "process 0 of 2: translated 40 sentences, 160 tokens in 4.0 s: 10.00 sentences/s, 40.0 tokens/s; 0 truncated\n"
        "wrote out.txt\n"
    )
    assert loop_sentences_per_s(stdout) == pytest.approx(100 / 4.0)
    with pytest.raises(RuntimeError, match="no statistics line"):
        loop_sentences_per_s("wrote out.txt\n")


def test_bulk_part_at_smoke_scale_reports_each_comparison_and_its_target(tmp_path):
    """--parts bulk --bulk-scale smoke: translate.py in 1 and 2 processes, the plain loop and the two memory runs are
    all measured and judged (the values are whatever this machine gives: only their presence and consistency)."""
    from xlm_swcm_experiments.serving_benchmark import main
    from xlm_swcm_experiments.serving_benchmark.bulk import BULK_SCALES

    out = tmp_path / "bulk"
    main(["--parts", "bulk", "--bulk-scale", "smoke", "--repeats", "1", "--out-dir", str(out)])
    saved = json.loads((out / "serving.json").read_text())
    bulk, scale = saved["bulk"], BULK_SCALES["smoke"]
    processes = bulk["processes"]
    assert processes["lines"] == scale["lines"] and processes["identical_outputs"] is True
    rates = [processes[f"processes_{n}"]["sentences_per_s"] for n in (1, 2)]
    assert all(rate > 0 for rate in rates) and processes["ratio"] == pytest.approx(rates[1] / rates[0])
    loops = [processes[f"processes_{n}"]["loop_sentences_per_s"] for n in (1, 2)]
    assert all(loop > rate for loop, rate in zip(loops, rates))  # the loop alone leaves start-up out
    assert processes["loop_ratio"] == pytest.approx(loops[1] / loops[0])
    assert bulk["plain_loop"]["sentences"] == scale["loop_lines"] and bulk["plain_loop"]["identical_outputs"] >= 0
    memory = bulk["memory"]
    assert [row["lines"] for row in memory["rows"]] == list(scale["memory_lines"])
    assert all(row["peak_rss_bytes"] > 50 * 2**20 for row in memory["rows"])  # a process that loaded torch
    assert memory["ratio"] == pytest.approx(memory["rows"][1]["peak_rss_bytes"] / memory["rows"][0]["peak_rss_bytes"])
    targets = {target["target"]: target for target in saved["targets"] if target["target"].startswith("bulk:")}
    assert len(targets) == 3 and all(target["met"] in (True, False) for target in targets.values())
    memory_target = next(target for name, target in targets.items() if "memory" in name)
    assert memory_target["met"] == (memory["ratio"] <= 1.2) and memory_target["goal"] == "<= 1.2"
    table = (out / "serving.md").read_text()
    assert "## translate.py past one process (smoke scale" in table and "| 2,000 |" in table
