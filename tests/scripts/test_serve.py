"""scripts/serve.py, the page to try a model: what a request gives (exactly `generate`'s output for the tagged text),
bad requests answered in the page, bad command lines refused before loading, the script where xlm_swcm_hf is not
importable (a Space), `push_to_hub.py --space-app`, and the page itself in Debian's headless Chromium."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SCRIPTS, run_script, tiny_model

from xlm_swcm_experiments.serve_page import BrowserUnavailable, Page, chromium_driver, running_app
from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.hub import save_hub_folder
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer
from xlm_swcm_hf.translation import TAG_TEMPLATE, tagged


pytest.importorskip("gradio", reason="the serve extra (pip install -e '.[serve]') is not installed")

SERVE = SCRIPTS / "serve.py"
LANGUAGES = ["bo", "ug", "kk", "mn", "zh"]
LIMIT = 62  # the tiny model's position table: max_position_embeddings 64 - pad_token_id 1 - 1
SENTENCE = "We learn languages."
LONG_TEXT = " ".join(["We learn languages. Do you learn languages too?"] * 12)  # far beyond 62 tokens
# Runs a script the way a Space runs app.py: xlm_swcm_hf cannot be imported, only the folder's own code serves.
WITHOUT_PACKAGE = (
    "import runpy, sys; sys.modules['xlm_swcm_hf'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
EXAMPLES = [
    {"source": "ug: Argentine Austral", "lang": "ug"},
    {"source": "zh: We learn languages.", "lang": "zh"},
    {"source": "kk: Do you learn languages too?", "lang": "kk"},
    {"source": "fr: not one of the model's languages", "lang": "fr"},
]


def load_serve():
    """scripts/serve.py as a module (with xlm_swcm_hf importable: the package's checks)."""
    spec = importlib.util.spec_from_file_location("serve_script", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread for these tiny models: on a busy 2-core machine two threads wait on each other (30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def child_env(**extra):
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": "",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def run_without_package(script, *args, cwd=None, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PACKAGE, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny trained-looking XLM-SWCM folder (remote code, card naming five target languages and the source
    language) whose outputs differ by target language, with a few examples."""
    model = tiny_model(initializer_range=1.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    path = save_hub_folder(
        tmp_path_factory.mktemp("serve") / "model",
        model,
        build_tiny_xlmr_tokenizer(),
        card_fields={"languages": LANGUAGES, "source_languages": ["en"]},  # the card's `language` lists en too
    )
    (path / "examples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in EXAMPLES), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded(folder):
    from transformers import AutoTokenizer

    return XLMSWCMForConditionalGeneration.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def translator(loaded):
    model, tokenizer = loaded
    return load_serve().Translator(model, tokenizer, LANGUAGES)


def reference(loaded, text, language, seed=None, **generation):
    """What `model.generate` gives for the tagged text, cut to the position table."""
    model, tokenizer = loaded
    settings = {"num_beams": 1, "max_new_tokens": LIMIT, "do_sample": seed is not None, **generation}
    batch = tokenizer([tagged(text, language)], return_tensors="pt", truncation=True, max_length=LIMIT)
    with torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        ids = model.generate(**batch, **settings)[0]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


# --------------------------------------------------------------------------------------------------- requests
def test_a_request_gives_what_generate_gives_for_the_tagged_text(loaded, translator):
    outputs = {}
    for language in LANGUAGES:
        result = translator.translate(SENTENCE, language, 1, LIMIT)
        assert result.error is None and result.notes == []
        assert result.text == reference(loaded, SENTENCE, language)
        assert result.tokens > 0 and result.seconds > 0 and result.tokens_per_second > 0
        outputs[language] = result.text
    assert len(set(outputs.values())) >= 3, "the target language must reach the model"
    beams = translator.translate(SENTENCE, "ug", 3, 9)
    assert beams.text == reference(loaded, SENTENCE, "ug", num_beams=3, max_new_tokens=9)


def test_the_tag_is_the_package_s_own():
    assert load_serve().TAG_TEMPLATE == TAG_TEMPLATE
    # run_path returns the module's globals: the stand-in the script uses where the package is missing
    code = (
        f"import runpy, sys; sys.modules['xlm_swcm_hf'] = None; print(runpy.run_path({str(SERVE)!r})['TAG_TEMPLATE'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert result.stdout.strip() == TAG_TEMPLATE


def test_the_target_languages_key_is_the_package_s_own():
    from xlm_swcm_hf.hub import TARGET_LANGUAGES_KEY

    assert load_serve().TARGET_LANGUAGES_KEY == TARGET_LANGUAGES_KEY
    stand_in = f"runpy.run_path({str(SERVE)!r})['TARGET_LANGUAGES_KEY']"
    code = f"import runpy, sys; sys.modules['xlm_swcm_hf'] = None; print({stand_in})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert result.stdout.strip() == TARGET_LANGUAGES_KEY


def old_style_card(path):
    """The card as written before `target_languages`: the target languages alone under `language`."""
    import yaml

    card = (path / "README.md").read_text(encoding="utf-8")
    block, _, rest = card[4:].partition("\n---")
    metadata = yaml.safe_load(block)
    metadata["language"] = metadata.pop("target_languages")
    (path / "README.md").write_text("---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---" + rest)


def test_the_page_offers_the_target_languages_not_the_source_language(folder, tmp_path, capsys):
    from xlm_swcm_hf.hub import card_metadata

    assert card_metadata((folder / "README.md").read_text())["language"] == ["en", *LANGUAGES]
    serve = load_serve()
    assert serve.model_languages(folder, None, "x") == LANGUAGES
    line = serve_error(capsys, ["--model", folder, "--languages", "en,ug"])
    assert "en is not among the languages the model was trained with (bo, ug, kk, mn, zh)" in line, line
    old = broken_copy(folder, tmp_path, "old-card", old_style_card)
    assert "target_languages" not in (old / "README.md").read_text()
    assert serve.model_languages(old, None, "x") == LANGUAGES
    # where the package is missing (a Space), the same languages from the new card and from the old one
    code = (
        f"import runpy, sys; sys.modules['xlm_swcm_hf'] = None; g = runpy.run_path({str(SERVE)!r}); "
        "from pathlib import Path; print([g['model_languages'](Path(p), None, 'x') for p in sys.argv[1:]])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(old)], capture_output=True, text=True, env=child_env(), check=True
    )
    assert result.stdout.strip() == repr([LANGUAGES, LANGUAGES])


def test_sampling_with_a_seed_is_repeatable(loaded, translator):
    first = translator.translate(SENTENCE, "kk", 1, 12, sample=True, seed=7)
    again = translator.translate(SENTENCE, "kk", 1, 12, sample=True, seed=7)
    assert first.text == again.text == reference(loaded, SENTENCE, "kk", seed=7, max_new_tokens=12)


def test_too_long_text_is_cut_to_the_position_table_with_a_note(loaded, translator):
    result = translator.translate(LONG_TEXT, "zh", 1, LIMIT)
    assert result.error is None
    assert any(f"only its first {LIMIT} tokens" in note for note in result.notes), result.notes
    assert result.text == reference(loaded, LONG_TEXT, "zh")


@pytest.mark.parametrize(
    "text, language, beams, new_tokens, seed, fragment",
    [
        ("", "ug", 1, 8, 0, "Type or paste a text"),
        ("   \n ", "ug", 1, 8, 0, "Type or paste a text"),
        (SENTENCE, "fr", 1, 8, 0, "Unknown target language 'fr'"),
        (SENTENCE, None, 1, 8, 0, "Unknown target language None"),
        ("fr: " + SENTENCE, "ug", 1, 8, 0, "starts with 'fr:', a target-language tag this model does not know"),
        ("ug:  ", "ug", 1, 8, 0, "no text after the tag"),
        (SENTENCE, "ug", 0, 8, 0, "num beams must be between 1 and 8"),
        (SENTENCE, "ug", 9, 8, 0, "num beams must be between 1 and 8"),
        (SENTENCE, "ug", 1.5, 8, 0, "num beams must be a whole number"),
        (SENTENCE, "ug", 1, LIMIT + 1, 0, f"max new tokens must be between 1 and {LIMIT}"),
        (SENTENCE, "ug", 1, None, 0, "max new tokens must be a whole number"),
        (SENTENCE, "ug", "many", 8, 0, "num beams must be a whole number"),
        (SENTENCE, "ug", 1, 8, -1, "seed must be 0 or more"),
    ],
)
def test_bad_requests_get_a_message_and_no_translation(translator, text, language, beams, new_tokens, seed, fragment):
    result = translator.translate(text, language, beams, new_tokens, sample=True, seed=seed)
    assert result.error is not None and fragment in result.error, result.error
    assert result.text == "" and result.tokens == 0


def test_a_typed_tag_of_a_known_language_is_replaced_by_the_chosen_one(loaded, translator):
    result = translator.translate("kk: " + SENTENCE, "ug", 1, LIMIT)
    assert result.error is None and "removed" in result.notes[0]
    assert result.text == reference(loaded, SENTENCE, "ug")


def test_a_language_with_an_output_vocabulary_decodes_within_it_unless_full_vocabulary(folder):
    from transformers import AutoTokenizer

    model = XLMSWCMForConditionalGeneration.from_pretrained(folder).eval()
    specials = [0, 1, 2, 3]
    model.set_output_vocabularies({"ug": specials + list(range(10, 45)), "zh": specials + list(range(40, 99, 2))})
    own = (model, AutoTokenizer.from_pretrained(folder))
    serve = load_serve()
    restricted, full = serve.Translator(*own, LANGUAGES), serve.Translator(*own, LANGUAGES, full_vocabulary=True)
    changed = 0
    for language in ("ug", "zh", "kk"):  # kk has no vocabulary: the whole one
        within = {"output_languages": language} if language != "kk" else {}
        result = restricted.translate(SENTENCE, language, 1, LIMIT)
        assert result.error is None and result.text == reference(own, SENTENCE, language, **within)
        assert full.translate(SENTENCE, language, 1, LIMIT).text == reference(own, SENTENCE, language)
        changed += result.text != reference(own, SENTENCE, language)
    assert changed >= 1  # the vocabularies reach generate


def test_generation_failures_are_a_message_not_a_crash(loaded):
    model, tokenizer = loaded
    serve = load_serve()
    translator = serve.Translator(model, tokenizer, LANGUAGES)
    translator.max_new_tokens_limit = 500  # let a length through that the model itself refuses
    result = translator.translate(SENTENCE, "ug", 1, 400)
    assert result.error.startswith("Translation failed: ValueError") and "position table" in result.error


def test_int8_quantization_through_the_package(folder):
    translator = load_serve().load_translator(str(folder), folder, LANGUAGES, "int8")
    assert getattr(translator.model, "quantized_for_cpu", None) == "int8"
    result = translator.translate(SENTENCE, "ug", 2, 8)
    assert result.error is None and result.tokens > 0


def test_an_empty_output_gets_a_note(loaded):
    model, tokenizer = loaded

    class Silent:  # generates the start and end tokens only
        config, generation_config = model.config, model.generation_config

        def generate(self, **kwargs):
            return torch.tensor([[model.config.decoder_start_token_id, model.config.eos_token_id]])

    result = load_serve().Translator(Silent(), tokenizer, LANGUAGES).translate(SENTENCE, "ug", 1, 8)
    assert result.error is None and result.text == "" and result.tokens == 0
    assert result.notes == ["The model's output is empty: the 0 token(s) it generated are no text."]


def test_the_output_box_direction_script_and_escaping():
    serve = load_serve()
    ug = serve.output_html(serve.Result(text="بىز <b>", language="ug"))
    assert 'dir="rtl"' in ug and 'lang="ug"' in ug and "&lt;b&gt;" in ug
    assert 'dir="rtl"' in serve.output_html(serve.Result(text="بىز", language="kk_Arab"))
    assert 'dir="auto"' in serve.output_html(serve.Result(text="Біз", language="kk"))
    assert "vertical" in serve.output_html(serve.Result(text="ᠪᠢᠳᠡ", language="mn"))
    assert "vertical" not in serve.output_html(serve.Result(text="Бид", language="mn"))


def test_every_script_is_written_its_way_in_outputs_and_history():
    serve = load_serve()
    mongolian = "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ"
    # traditional Mongolian top to bottom, columns left to right: by its tag, or by its letters under plain mn
    for language in ("mn_Mong", "mn"):
        box = serve.output_html(serve.Result(text=mongolian, language=language))
        assert 'class="swcm-output vertical"' in box, box
    assert 'lang="mn-Mong"' in serve.output_html(serve.Result(text=mongolian, language="mn_Mong"))
    history = serve.history_html(
        [
            {"language": "mn_Mong", "source": mongolian, "text": mongolian},
            {"language": "ug", "source": "We learn", "text": "بىز ئۆگىنىمىز"},
            {"language": "kk_Arab", "source": "We learn", "text": "ءبىز"},
            {"language": "bo", "source": "We learn", "text": "ང་ཚོ་སློབ་སྦྱོང་།"},
        ]
    )
    assert history.count("vertical") == 2  # the Mongolian source and output, nothing else
    assert history.count('dir="rtl"') == 2 and 'lang="bo"' in history
    css = serve.page_css({})
    assert "writing-mode: vertical-lr" in css and ":lang(mn-Mong)" in css
    assert '"Noto Serif Tibetan", "Noto Sans Tibetan"' in css  # fonts that shape Tibetan stacks


def test_examples_come_from_the_folder_without_their_tags(folder):
    examples, path = load_serve().find_examples(folder, None, LANGUAGES)
    assert path == folder / "examples.jsonl"
    assert examples == [["Argentine Austral", "ug"], ["Do you learn languages too?", "kk"], [SENTENCE, "zh"]]


def test_fonts_for_tibetan_mongolian_and_uyghur_are_served_when_installed():
    serve = load_serve()
    fonts = serve.font_files()
    if not fonts:
        pytest.skip("fonts-noto-core is not installed (make browser installs it)")
    css = serve.page_css(fonts)
    for family, path in fonts.items():
        assert f'font-family: "{family}"; src: url("/gradio_api/file={path}")' in css


# --------------------------------------------------------------------------------------------------- command line
def serve_error(capsys, argv):
    """Run serve.py's main in-process with loading forbidden; returns its one error line."""
    serve = load_serve()

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the problem was reported")

    serve.load_translator = no_loading
    code = serve.main([str(argument) for argument in argv])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    return one_error_line(err)


def test_bad_command_lines_are_refused_before_loading(folder, tiny_encoder_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XLM_SWCM_MODEL", raising=False)
    assert "give --model" in serve_error(capsys, [])
    assert "nowhere does not exist" in serve_error(capsys, ["--model", tmp_path / "nowhere"])
    assert "is a xlm-roberta model, not an XLM-SWCM folder" in serve_error(capsys, ["--model", tiny_encoder_dir])
    assert "--port must be between" in serve_error(capsys, ["--model", folder, "--port", 70000])
    assert "invalid choice" in serve_error(capsys, ["--model", folder, "--quantize", "int4"])
    assert "is not a language code" in serve_error(capsys, ["--model", folder, "--languages", "ug,Uyghur"])
    assert "missing.jsonl does not exist" in serve_error(
        capsys, ["--model", folder, "--examples", tmp_path / "missing.jsonl"]
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"--port {port} is not free" in serve_error(capsys, ["--model", folder, "--port", port])


def test_languages_the_model_was_not_trained_with_are_refused(folder, capsys):
    line = serve_error(capsys, ["--model", folder, "--languages", "fr,xx"])
    assert "fr, xx are not among the languages the model was trained with (bo, ug, kk, mn, zh)" in line, line
    assert "'ug: zh'" not in line and "is not a language code" in serve_error(
        capsys, ["--model", folder, "--languages", "ug: zh"]
    )
    assert load_serve().model_languages(folder, "ug,zh", "x") == ["ug", "zh"]


def test_the_page_names_the_model_without_its_local_path(folder, translator):
    serve = load_serve()
    config = json.dumps(serve.build_page(translator, str(folder), [], {}).config, default=repr)
    assert f"Model: `{folder.name}`" in config and str(folder.parent) not in config
    assert serve.display_name("someone/xlm-swcm-demo") == "someone/xlm-swcm-demo"
    assert serve.display_name(str(folder) + "/") == folder.name


def test_the_language_tag_pattern_is_the_package_s_own():
    from xlm_swcm_hf.translation import LANGUAGE_TAG

    stand_in = f"runpy.run_path({str(SERVE)!r})['LANGUAGE_CODE'].pattern"
    code = f"import runpy, sys; sys.modules['xlm_swcm_hf'] = None; print({stand_in})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert result.stdout.strip() == LANGUAGE_TAG.pattern


def broken_copy(folder, tmp_path, name, change):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    change(copy)
    return copy


def test_folders_that_cannot_serve_are_refused_before_loading(folder, tmp_path, capsys):
    def no_languages(path):
        card = (path / "README.md").read_text(encoding="utf-8")
        card = card.replace("target_languages:", "old_target_languages:").replace("language:", "old_language:")
        (path / "README.md").write_text(card, encoding="utf-8")

    def no_code(path):
        config = json.loads((path / "config.json").read_text())
        config.pop("auto_map")
        (path / "config.json").write_text(json.dumps(config))

    cases = {
        "no-languages": (no_languages, "names no target languages"),
        "no-code": (no_code, "does not carry its model code"),
        "no-tokenizer": (lambda path: (path / "tokenizer.json").unlink(), "has no tokenizer files"),
        "no-weights": (lambda path: (path / "model.safetensors").unlink(), "has no weights"),
        "cut-weights": (
            lambda path: (path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes()[:5000]),
            "corrupt or cut short",
        ),
    }
    for name, (change, fragment) in cases.items():
        line = serve_error(capsys, ["--model", broken_copy(folder, tmp_path, name, change)])
        assert fragment in line, (name, line)
    languages = broken_copy(folder, tmp_path, "given-languages", no_languages)
    serve = load_serve()
    assert serve.model_languages(languages, "ug,kk_Arab", "x") == ["ug", "kk_Arab"]


def test_without_the_package_bad_input_is_the_same_one_line_and_a_load_failure_too(folder, tmp_path):
    missing = run_without_package(SERVE, "--model", tmp_path / "nowhere")
    assert missing.returncode == 2 and "nowhere does not exist" in one_error_line(missing.stderr)
    int8 = run_without_package(SERVE, "--model", folder, "--quantize", "int8")
    assert int8.returncode == 2 and "--quantize int8 needs xlm_swcm_hf" in one_error_line(int8.stderr)
    # Weights cut short: xlm_swcm_hf's header check is absent here, so loading itself fails - still one line.
    cut = broken_copy(
        folder,
        tmp_path,
        "cut",
        lambda path: (path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes()[:5000]),
    )
    failed = run_without_package(SERVE, "--model", cut)
    assert failed.returncode == 2 and "failed to load" in one_error_line(failed.stderr), failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr


# --------------------------------------------------------------------------------------------------- the Space
def write_space(folder, space):
    return run_script("push_to_hub", ["--model", folder, "--repo-id", "user/tiny", "--dry-run", "--space-app", space])


def test_push_to_hub_writes_a_space_app_that_serves_the_model(folder, tmp_path, capsys):
    space = tmp_path / "space"
    assert write_space(folder, space) == 0
    assert "hf upload user/tiny-demo" in capsys.readouterr().out
    assert sorted(path.name for path in space.iterdir()) == [
        "README.md",
        "app.py",
        "examples.jsonl",
        "packages.txt",
        "requirements.txt",
    ]
    assert (space / "app.py").read_bytes() == SERVE.read_bytes()
    requirements = (space / "requirements.txt").read_text().split()
    assert "gradio==6.31.0" in requirements and any(line.startswith("transformers<6,>=") for line in requirements)
    assert "xlm" not in " ".join(requirements)
    assert (space / "packages.txt").read_text().split() == ["fonts-noto-core"]
    card = (space / "README.md").read_text()
    assert "sdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\nmodels:\n- user/tiny\n" in card
    rows = [json.loads(line) for line in (space / "examples.jsonl").read_text().splitlines()]
    assert {row["lang"] for row in rows} == {"ug", "zh", "kk", "fr"}
    # a second run does not replace the folder without --overwrite, and says so before validating
    assert write_space(folder, space) == 2
    assert "exists; pass --overwrite" in one_error_line(capsys.readouterr().err)


def test_the_space_app_serves_the_model_its_card_names(folder, tmp_path):
    space = tmp_path / "space"
    assert write_space(folder, space) == 0
    # Offline, the Hub id in the Space card cannot be fetched: one line naming it (the Hub path, tested offline).
    result = run_without_package(space / "app.py", cwd=space)
    assert result.returncode == 2 and "--model user/tiny: cannot fetch it from the Hub" in one_error_line(result.stderr)


def test_the_pinned_gradio_is_the_one_the_space_asks_for():
    import gradio

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'serve = ["gradio=={gradio.__version__}"]' in text


# --------------------------------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def server(folder, tmp_path_factory):
    """The app as a Space runs it (app.py beside its examples, xlm_swcm_hf not importable) on a free local port."""
    space = tmp_path_factory.mktemp("space-app") / "space"
    assert write_space(folder, space) == 0
    command = [sys.executable, "-c", WITHOUT_PACKAGE, str(space / "app.py"), "--model", str(folder)]
    with running_app(command, space.parent / "server.log", cwd=space, env=child_env()) as url:
        yield url


@pytest.fixture
def browser():
    """Debian's chromium, skipped only where it is not installed or cannot start here (the reason is shown)."""
    try:
        driver = chromium_driver()
    except BrowserUnavailable as error:
        pytest.skip(str(error)[:400])
    yield driver
    driver.quit()


def test_the_page_in_a_browser(server, browser, loaded, tmp_path):
    page = Page(browser, server)
    # the examples from examples.jsonl beside app.py, without their tags ("fr" is not a language of the model)
    assert [row.text.split("\n")[0] for row in page.examples()] == [
        "Argentine Austral",
        "Do you learn languages too?",
        SENTENCE,
    ]
    assert "not one of the model's languages" not in page.text("body")
    # the served web fonts load and cover their scripts (not the browser's boxes)
    for family, sample in (("XLM-SWCM Tibetan", "ཀ"), ("XLM-SWCM Mongolian", "ᠮ"), ("XLM-SWCM Arabic", "ئ")):
        faces = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            'document.fonts.load(`20px "${arguments[0]}"`, arguments[1]).then(f => done(f.length), e => done(-1));',
            family,
            sample,
        )
        assert faces == 1, family

    page.type(SENTENCE)
    page.pick_language("ug")
    output, status, stats = page.translate()
    assert output == reference(loaded, SENTENCE, "ug")
    assert page.find("#translation .swcm-output").get_attribute("dir") == "rtl"
    assert status == "" and "tokens/s" in stats

    page.pick_language("mn")
    page.open_decoding()
    page.set_number("#beams input[type=number]", 3)
    page.set_number("#max-new-tokens input[type=number]", 10)
    output, _, _ = page.translate()
    assert output == reference(loaded, SENTENCE, "mn", num_beams=3, max_new_tokens=10)
    assert output != reference(loaded, SENTENCE, "ug", num_beams=3, max_new_tokens=10)
    history = page.text("#history")
    assert "Uyghur (ug)" in history and "Mongolian (mn)" in history

    # traditional Mongolian typed into Gradio's own text box is written top to bottom, and back when it is gone
    def writing_mode(driver=None):
        return browser.execute_script("return getComputedStyle(document.querySelector('#source textarea')).writingMode")

    page.type("ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ")
    page.wait.until(lambda d: writing_mode() == "vertical-lr")
    page.type("")
    page.wait.until(lambda d: writing_mode() == "horizontal-tb")
    output, status, _ = page.translate()
    assert output == "" and status == "Type or paste a text to translate first."

    page.set_number("#max-new-tokens input[type=number]", LIMIT)
    page.set_number("#beams input[type=number]", 1)
    page.type(LONG_TEXT)
    output, status, _ = page.translate()
    assert f"only its first {LIMIT} tokens" in status
    assert output == reference(loaded, LONG_TEXT, "mn")

    page.examples()[0].click()  # an example fills in its text and language
    output, _, _ = page.translate()
    assert page.language() == "Uyghur (ug)" and output == reference(loaded, "Argentine Austral", "ug")
    screenshot = page.screenshot(tmp_path / "serve.png")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_requests_at_the_same_time_wait_in_the_queue_and_each_gets_its_answer(server, loaded):
    """Two clients at once: Gradio's queue serves one request at a time, and each gets what generate gives."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    client = Client(server, verbose=False)

    def ask(language):
        return client.predict(SENTENCE, language, 2, 20, False, 0, api_name="/translate")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ask, ["bo", "kk"]))
    for language, answer in zip(["bo", "kk"], answers):
        assert answer == reference(loaded, SENTENCE, language, num_beams=2, max_new_tokens=20)


def test_the_api_returns_the_translation_text_as_a_script_asks_for_it(server, loaded, translator):
    """`Client(url).predict(text, language, api_name="/translate")`: the plain translation (the page's defaults
    for the rest), keyword arguments too; a bad request raises the page's message; the page's own HTML rendering
    is another endpoint."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    page = load_serve().build_page(translator, "model", [], {})
    defaults = translator.defaults  # the page's, from the folder's generation config
    generation = {"num_beams": defaults["num_beams"], "max_new_tokens": defaults["max_new_tokens"]}
    assert client.predict(SENTENCE, "kk", api_name="/translate") == reference(loaded, SENTENCE, "kk", **generation)
    answer = client.predict(text=SENTENCE, language="ug", num_beams=2, max_new_tokens=20, api_name="/translate")
    assert answer == reference(loaded, SENTENCE, "ug", num_beams=2, max_new_tokens=20)
    with pytest.raises(AppError, match="Type or paste a text to translate first"):
        client.predict("  ", "kk", api_name="/translate")
    endpoints = {dependency.get("api_name") for dependency in page.config["dependencies"]}
    assert {"translate", "translate_page"} <= endpoints
