"""The transformers version matrix (xlm_swcm_experiments/compat/) without building environments: version selection,
the comparison on made-up answers, the table and report, bad input; and the checker run for real against this
virtualenv's transformers (the one environment that needs nothing built)."""

import json
import sys
from pathlib import Path

import pytest
from conftest import run_script

from xlm_swcm_experiments import compat
from xlm_swcm_experiments.compat_checker import CHECKS, FAIL, NOT_APPLICABLE, PASS, all_passed, compare, error_line
from xlm_swcm_hf.checks import InputError


# ------------------------------------------------------------------------------------------------ versions


def test_default_matrix_is_the_latest_patch_of_every_minor_from_4_46():
    versions = compat.DEFAULT_VERSIONS
    assert versions[0] == "4.46.3" and versions[-1] == "5.25.0"
    assert {"4.47.1", "4.49.0", "4.57.6", "5.0.0", "5.5.4", "5.10.4", "5.22.2", "5.24.0"} <= set(versions)
    assert len(versions) == len({compat.minor_of(version) for version in versions}) == 38
    assert versions == sorted(versions, key=compat.version_key)  # 5.10 after 5.9, not after 5.1


def test_latest_patches_compares_numbers_not_text():
    assert compat.latest_patches(["5.10.2", "5.10.10", "5.9.0", "5.10.4"]) == ["5.9.0", "5.10.10"]


def test_ci_subset_is_oldest_middle_newest():
    assert compat.ci_versions() == ["4.46.3", compat.DEFAULT_VERSIONS[19], "5.25.0"]
    assert compat.ci_versions(["5.0.0", "5.1.0"]) == ["5.0.0", "5.1.0"]


def test_parse_versions_sorts_deduplicates_and_expands_minors():
    assert compat.parse_versions("5.25.0, 4.46.3,5.0,5.0.0,") == ["4.46.3", "5.0.0", "5.25.0"]
    assert compat.parse_versions("5.5") == ["5.5.4"]
    assert compat.parse_versions("4.46.1") == ["4.46.1"]  # an older patch of a minor may be asked for explicitly


@pytest.mark.parametrize("text", ["banana", "4.45.2", "5.26.0", "5", "5.0.0rc1", " , "])
def test_parse_versions_refuses_unknown_versions(text):
    with pytest.raises(InputError):
        compat.parse_versions(text)


def test_requirements_pin_the_version_and_bring_accelerate():
    for version in ("4.46.3", "5.0.0", "5.25.0"):
        requirements = compat.requirements_for(version)
        assert requirements[0] == f"transformers=={version}"
        assert any(requirement.startswith("accelerate") for requirement in requirements)
        assert not any(requirement.startswith("torch") for requirement in requirements)  # torch: the base's only


def test_a_release_with_an_unavailable_dependency_is_installed_without_it():
    assert compat.requirement_name("Tokenizers<0.24.0,>=0.23.1; python_version > '3'") == "tokenizers"
    assert (
        compat.requirement_name("huggingface_hub>=0.23")
        == compat.requirement_name("Huggingface-Hub")
        == "huggingface-hub"
    )
    missing = compat.MISSING_DEPENDENCIES["5.25.0"]
    assert missing.packages == ("kernels",) and missing.environment == {"USE_HUB_KERNELS": "0"}
    assert set(compat.MISSING_DEPENDENCIES) <= set(compat.KNOWN_RELEASES)


# ------------------------------------------------------------------------------------------------ comparing


EXPECTED = {
    "tokenizer_ids": [[0, 5, 2], [0, 6, 1]],
    "logits": [[[0.5, -1.0], [2.0, 0.25]]],
    "greedy": [[0, 7, 8, 2]],
    "beam": [[0, 7, 9, 2]],
    "sampling": [[0, 3, 4, 2]],
    "trainer_step": {"train_loss": 4.5, "loss_after_step": 4.25},
    "pipeline": ["abc"],
}


def measured_like(expected, **changes):
    """A checker's measurements that reproduce `expected`, with `changes` ({name: entry}) applied."""
    loaded = {"class": "X", "module": "transformers_modules.folder.modeling_xlm_swcm"}
    measured = {f"load_{part}": {"value": loaded} for part in ("config", "model", "base_model", "tokenizer")}
    measured.update({name: {"value": json.loads(json.dumps(value))} for name, value in expected.items()})
    measured["tokenizer_ids"] = {"value": expected["tokenizer_ids"]}
    measured.update(changes)
    return measured


def statuses(verdicts):
    return {name: verdict["status"] for name, verdict in verdicts.items()}


def test_compare_passes_a_faithful_answer():
    verdicts = compare(EXPECTED, measured_like(EXPECTED))
    assert statuses(verdicts) == dict.fromkeys(CHECKS, PASS)
    assert all_passed(verdicts)


def test_compare_logits_within_and_beyond_tolerance():
    close = [[[0.5 + 9e-6, -1.0], [2.0, 0.25]]]
    far = [[[0.5, -1.0], [2.0, 0.25 + 2e-5]]]
    assert compare(EXPECTED, measured_like(EXPECTED, logits={"value": close}))["logits"]["status"] == PASS
    verdict = compare(EXPECTED, measured_like(EXPECTED, logits={"value": far}))["logits"]
    assert verdict["status"] == FAIL and "2.00e-05" in verdict["detail"]
    wrong_shape = compare(EXPECTED, measured_like(EXPECTED, logits={"value": [[[0.5, -1.0]]]}))["logits"]
    assert wrong_shape["status"] == FAIL and "shapes differ" in wrong_shape["detail"]


def test_compare_names_the_first_differing_token():
    verdicts = compare(EXPECTED, measured_like(EXPECTED, beam={"value": [[0, 7, 8, 2]]}, sampling={"value": [[0, 3]]}))
    assert statuses(verdicts) == {**dict.fromkeys(CHECKS, PASS), "beam": FAIL, "sampling": FAIL}
    assert verdicts["beam"]["detail"] == "sequence 0 differs at token 2: 8, expected 9"
    assert verdicts["sampling"]["detail"] == "sequence 0 has 2 tokens, expected 4"
    assert not all_passed(verdicts)


def test_compare_trainer_losses_within_tolerance():
    near = {"train_loss": 4.5 + 5e-6, "loss_after_step": 4.25}
    off = {"train_loss": 4.5, "loss_after_step": 4.26}
    assert compare(EXPECTED, measured_like(EXPECTED, trainer_step={"value": near}))["trainer_step"]["status"] == PASS
    assert compare(EXPECTED, measured_like(EXPECTED, trainer_step={"value": off}))["trainer_step"]["status"] == FAIL


def test_compare_pipeline_missing_task_is_not_applicable_and_a_different_text_fails():
    gone = compare(EXPECTED, measured_like(EXPECTED, pipeline={"value": None}))
    assert gone["pipeline"]["status"] == NOT_APPLICABLE and all_passed(gone)
    different = compare(EXPECTED, measured_like(EXPECTED, pipeline={"value": ["abd"]}))["pipeline"]
    assert different["status"] == FAIL and "'abd'" in different["detail"]


def test_compare_load_failures_are_grouped_and_each_check_keeps_its_own_error():
    error = "ModuleNotFoundError: No module named 'transformers.masking_utils'"
    not_run = {"error": "not run: model did not load"}
    measured = measured_like(
        EXPECTED,
        load_model={"error": error},
        load_base_model={"error": error},
        logits=not_run,
        greedy=not_run,
        trainer_step={"error": "TypeError: unexpected keyword"},
    )
    verdicts = compare(EXPECTED, measured)
    assert verdicts["loads"] == {"status": FAIL, "detail": f"model, base_model: {error}"}
    assert verdicts["logits"]["detail"] == verdicts["greedy"]["detail"] == "not run: model did not load"
    assert verdicts["trainer_step"]["detail"] == "TypeError: unexpected keyword"
    assert verdicts["beam"]["status"] == PASS  # one failing check hides none of the others


def test_compare_a_tokenizer_that_encodes_differently_fails_loads():
    measured = measured_like(EXPECTED, tokenizer_ids={"value": [[0, 5, 2], [0, 7, 1]]})
    assert compare(EXPECTED, measured)["loads"] == {
        "status": FAIL,
        "detail": "the tokenizer encodes the sources differently",
    }


def test_compare_a_partial_answer_fails_what_it_lacks_with_the_reason():
    measured = measured_like(EXPECTED)
    for name in ("trainer_step", "pipeline"):
        del measured[name]
    verdicts = compare(EXPECTED, measured, missing="timed out after 900 s")
    assert verdicts["greedy"]["status"] == PASS
    assert verdicts["trainer_step"] == verdicts["pipeline"] == {"status": FAIL, "detail": "timed out after 900 s"}


def test_error_line_keeps_the_last_line_without_machine_paths():
    error = ImportError("first\ncannot import name 'x' from 'y' (/tmp/env/lib/python3.11/site-packages/y/z.py)\n")
    assert error_line(error) == "ImportError: cannot import name 'x' from 'y' (y/z.py)"
    assert len(error_line(ValueError("v" * 1000))) == 300


def test_error_line_says_where_a_raised_error_came_from():
    def forward():
        raise IndexError("list index out of range")

    try:
        forward()
    except IndexError as error:
        line = error_line(error)
    assert line.startswith("IndexError: list index out of range [at test_compat.py:")
    assert line.endswith(" in forward]")


# ------------------------------------------------------------------------------------------------ reporting


def row(version, **statuses_by_check):
    checks = {name: {"status": PASS, "detail": "ok"} for name in CHECKS}
    for name, (status, detail) in statuses_by_check.items():
        checks[name] = {"status": status, "detail": detail}
    environment = {
        "cached": False,
        "build_seconds": 12.3,
        "requirements": [f"transformers=={version}", "accelerate"],
        "packages": {"huggingface_hub": "0.36.2", "tokenizers": "0.20.3", "accelerate": "1.16.0"},
    }
    return {
        "version": version,
        "checks": checks,
        "check_seconds": 4.2,
        "environment": environment,
        "passed": all_passed(checks),
    }


ROWS = [
    row("4.46.3", loads=(FAIL, "model: ImportError: x"), logits=(FAIL, "not run: model did not load")),
    row("5.25.0", pipeline=(NOT_APPLICABLE, "no text2text-generation pipeline in this version")),
]
ROWS[1]["environment"]["note"] = "installed without kernels"


def test_table_has_a_column_per_check_and_a_row_per_version():
    lines = compat.render_table(ROWS).splitlines()
    assert lines[0] == "| transformers | loads | logits | greedy | beam | sampling | trainer step | pipeline |"
    assert lines[2] == "| 4.46.3 | FAIL | FAIL | pass | pass | pass | pass | pass |"
    assert lines[3] == "| 5.25.0 | pass | pass | pass | pass | pass | pass | n/a |"


def test_markdown_report_lists_failures_and_environments():
    report = {
        "generated": "2026-01-01 00:00 UTC",
        "full_matrix": False,
        "reference": {"transformers": "5.24.0", "torch": "2.13.0+cpu", "python": "3.11.7"},
        "rows": ROWS,
    }
    markdown = compat.render_markdown(report)
    assert "1 of 2 versions pass (a partial run" in markdown
    assert "| 4.46.3 | loads | model: ImportError: x |" in markdown
    assert "| 4.46.3 | logits | not run: model did not load |" in markdown
    assert "| 5.25.0 | `accelerate` (installed without kernels) | 0.36.2 | 0.20.3 | 1.16.0 | 12 | 4 |" in markdown
    line = compat.progress_line(ROWS[0], 1, 2)
    assert line.startswith("[1/2] transformers 4.46.3: FAIL loads, logits (built in 12 s, checked in 4 s)")
    line = compat.progress_line(ROWS[1], 2, 2)
    assert (
        line == "[2/2] transformers 5.25.0: pass (built in 12 s, checked in 4 s)\n    note: installed without kernels"
    )


def test_merge_rows_replaces_the_same_versions_and_keeps_the_rest():
    old = [row("4.46.3"), row("5.0.0"), row("5.25.0")]
    new = [row("5.0.0", greedy=(FAIL, "x")), row("4.47.1")]
    merged = compat.merge_rows(old, new)
    assert [item["version"] for item in merged] == ["4.46.3", "4.47.1", "5.0.0", "5.25.0"]
    assert merged[2]["checks"]["greedy"]["status"] == FAIL


def test_write_report_writes_json_and_markdown(tmp_path):
    report = {"generated": "now", "full_matrix": True, "reference": {"transformers": "5", "torch": "2", "python": "3"}}
    json_path, markdown_path = compat.write_report({**report, "rows": ROWS}, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"][0]["version"] == "4.46.3"
    assert markdown_path.read_text().startswith("# transformers compatibility matrix")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["compat.json", "compat.md"]


def test_the_stored_report_lives_in_docs_results_and_renders_to_its_markdown(tmp_path):
    """Generated results live in docs/results/: the full matrix and --update-docs write there, and the stored
    compat.md is what the stored compat.json renders to."""
    results = compat.ROOT / "docs" / "results"
    assert compat.DOCS_DIR == results
    assert compat.parse_args(["--work-dir", str(tmp_path / "work")]).output == results
    args = compat.parse_args(["--versions", "5.25.0", "--update-docs", "--work-dir", str(tmp_path / "work")])
    stored = json.loads((results / "compat.json").read_text(encoding="utf-8"))
    assert args.output == results and args.merge_into == stored
    assert compat.render_markdown(stored).encode("utf-8") == (results / "compat.md").read_bytes()
    assert not (compat.ROOT / "docs" / "compat.md").exists() and not (compat.ROOT / "docs" / "compat.json").exists()


# ------------------------------------------------------------------------------------------------ bad input


def expect_error(capsys, code, fragment):
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1, errors
    assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--versions", "4.99.0"], "unknown transformers version '4.99.0'"),
        (["--versions", ","], "--versions needs at least one"),
        (["--versions", "5.0.0", "--timeout", "0"], "--timeout must be positive"),
        (["--versions", "5.0.0", "--update-docs", "--output", "x"], "do not combine it with --output"),
    ],
)
def test_bad_arguments_stop_before_any_work(capsys, tmp_path, argv, fragment):
    work_dir = tmp_path / "work"
    code = run_script("compat_matrix", [*argv, "--work-dir", work_dir])
    expect_error(capsys, code, fragment)
    assert not work_dir.exists()


def test_an_output_that_cannot_be_written_stops_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    work_dir = tmp_path / "work"
    code = run_script("compat_matrix", ["--versions", "5.0.0", "--output", blocker / "sub", "--work-dir", work_dir])
    expect_error(capsys, code, "a-file is a file")
    code = run_script("compat_matrix", ["--versions", "5.0.0", "--work-dir", blocker])
    expect_error(capsys, code, "--work-dir")
    assert not work_dir.exists()


def test_versions_and_ci_exclude_each_other(capsys):
    assert run_script("compat_matrix", ["--versions", "5.0.0", "--ci"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --ci: not allowed with argument --versions"), err


def test_list_prints_the_versions(capsys, tmp_path):
    assert run_script("compat_matrix", ["--ci", "--list", "--work-dir", tmp_path / "work"]) == 0
    assert capsys.readouterr().out.split() == compat.ci_versions()
    assert not (tmp_path / "work").exists()


# ------------------------------------------------------------------------------------------------ the checker


def test_a_checker_that_stops_without_an_answer_fails_every_check(tmp_path, monkeypatch):
    crashing = tmp_path / "crash.py"
    crashing.write_text("import sys\nsys.exit('Segmentation fault, say')\n")
    monkeypatch.setattr(compat.checks, "CHECKER_SCRIPT", crashing)
    verdicts = compat.run_checker(Path(sys.executable), tmp_path, tmp_path / "reference.json", 60, EXPECTED)["verdicts"]
    assert verdicts == dict.fromkeys(CHECKS, {"status": FAIL, "detail": "the checker stopped: Segmentation fault, say"})


def test_a_checker_that_times_out_keeps_what_it_finished(tmp_path, monkeypatch):
    partial = {"finished": False, "measured": measured_like(EXPECTED)}
    del partial["measured"]["pipeline"]
    slow = tmp_path / "slow.py"
    slow.write_text(
        f"import json, sys, time\nopen(sys.argv[3], 'w').write({json.dumps(json.dumps(partial))})\ntime.sleep(60)\n"
    )
    monkeypatch.setattr(compat.checks, "CHECKER_SCRIPT", slow)
    verdicts = compat.run_checker(Path(sys.executable), tmp_path, tmp_path / "reference.json", 3, EXPECTED)["verdicts"]
    assert verdicts["greedy"]["status"] == PASS
    assert verdicts["pipeline"] == {"status": FAIL, "detail": "timed out after 3 s"}


def test_checker_passes_against_this_environments_transformers(tmp_path):
    """The real checker, run as the matrix runs it (a child interpreter, xlm_swcm_hf blocked), in this virtualenv."""
    folder = tmp_path / "folder"
    reference = compat.build_reference(folder)
    reference_path = tmp_path / "reference.json"
    reference_path.write_text(json.dumps(reference))
    answer = compat.run_checker(Path(sys.executable), folder, reference_path, 600, reference["expected"])
    assert all_passed(answer["verdicts"]), answer["verdicts"]
    assert answer["verdicts"]["logits"]["detail"].startswith("max |diff| 0.00e+00")
    # The classes came from the folder's own code, not from the installed (and blocked) package.
    for part in ("config", "model", "base_model"):
        assert answer["measured"][f"load_{part}"]["value"]["module"].startswith("transformers_modules."), part


def test_checker_is_standalone():
    """It runs where only torch and transformers are installed: the standard library, torch, transformers."""
    import ast

    tree = ast.parse(Path(compat.CHECKER_SCRIPT).read_text(encoding="utf-8"))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    third_party = {module.split(".")[0] for module in modules} - set(sys.stdlib_module_names)
    assert third_party == {"torch", "transformers"}


def test_markdown_report_states_the_refusal_below_the_floor():
    report = {
        "generated": "2026-01-01 00:00 UTC",
        "full_matrix": True,
        "reference": {"transformers": "5.24.0", "torch": "2.13.0+cpu", "python": "3.11.7"},
        "rows": ROWS,
        "below_floor": {
            "version": "4.45.2",
            "refused": True,
            "detail": "XLM-SWCM needs transformers>=4.46 (found 4.45.2)",
        },
    }
    markdown = compat.render_markdown(report)
    assert "Below the floor, transformers 4.45.2 refuses to load, as it should: `XLM-SWCM needs" in markdown
    report["below_floor"] = {"version": "4.45.2", "refused": False, "detail": "the folder loaded"}
    assert "4.45.2 does NOT refuse as expected: `the folder loaded`" in compat.render_markdown(report)


class _ThisInterpreter:
    """A builder whose every environment is the running interpreter (nothing is built)."""

    def ensure(self, version):
        return {}

    def environment(self, version):
        return Path(sys.prefix)


@pytest.mark.parametrize(
    "script, refused",
    [
        ("import sys; print('XLM-SWCM needs transformers>=4.46 (found 4.45.2): pip install -U transformers')", True),
        ("import sys; print('cannot import name PreTrainedConfig')", False),  # an ImportError from inside is no refusal
        ("import sys; sys.exit('the folder loaded')", False),
    ],
)
def test_the_refusal_counts_only_as_the_folders_own_line(tmp_path, monkeypatch, script, refused):
    monkeypatch.setattr(compat.checks, "REFUSAL_SCRIPT", script)
    monkeypatch.setattr(compat.checks, "python_of", lambda environment: Path(sys.executable))
    answer = compat.check_refusal(_ThisInterpreter(), tmp_path, 60)
    assert answer["refused"] is refused and answer["version"] == "4.45.2"
