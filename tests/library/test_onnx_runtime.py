"""xlm_swcm_hf.onnx_runtime and the `--backend` of translate.py / evaluate_model.py.

- `export_onnx` (torch.onnx.export, dynamo) of a tiny model with both decoder layer kinds: every dynamic dimension
  stays symbolic in the graphs; `OnnxRuntimeXLMSWCM.generate` gives the PyTorch model's exact tokens for greedy, beam
  search and seeded sampling on a padded batch, and the same loss with labels (teacher forcing through one graph).
- int8 graphs: smaller, logits close to float32's, generation runs.
- translate.py `--backend onnxruntime`: each line what the PyTorch model's `generate` gives; the export is cached and
  a second run does not export again; bad backend arguments are one error line before anything loads.
"""

import pytest
import torch
from conftest import padded_batch, run_script, tiny_model

from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer


pytest.importorskip("onnxruntime", reason="onnxruntime (dev and onnx extras) runs the exported graphs")
pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (dev and onnx extras)")

from xlm_swcm_hf.onnx_runtime import GRAPH_FILES, OnnxRuntimeXLMSWCM, export_onnx  # noqa: E402


LAYOUT = dict(num_hidden_layers=2, normal_layer_interval=1, initializer_range=0.3)  # decoder: custom, normal, custom
GENERATION_MODES = {
    "greedy": dict(do_sample=False, num_beams=1),
    "beam_search": dict(do_sample=False, num_beams=3, num_return_sequences=2, early_stopping=False),
    "sampling": dict(do_sample=True, num_beams=1, top_k=20, temperature=1.5),
}


@pytest.fixture(scope="module")
def model():
    return tiny_model(**LAYOUT)


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    for quantize in (None, "int8"):
        export_onnx(model, root / str(quantize), quantize=quantize)
    return root


def generate(model, mode, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(**padded_batch(), max_new_tokens=8, min_new_tokens=8, **GENERATION_MODES[mode])


def test_graphs_keep_every_varying_dimension_symbolic(exports):
    import onnxruntime

    for name in GRAPH_FILES.values():
        session = onnxruntime.InferenceSession(str(exports / "None" / name), providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        expected = {"encoder.onnx": 2, "cross_attention.onnx": 1, "decoder.onnx": 2 + 4 * 3, "head.onnx": 1}[name]
        assert len(inputs) == expected, [node.name for node in inputs]  # none folded into a constant or merged
        for node in inputs:
            assert isinstance(node.shape[0], str), (name, node.name, node.shape)  # batch
            if name == "decoder.onnx" and node.name.startswith("past"):
                assert all(isinstance(node.shape[d], str) for d in (0, 2)), (node.name, node.shape)


@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_onnx_runtime_generates_the_pytorch_models_tokens(model, exports, mode):
    onnx_model = OnnxRuntimeXLMSWCM.from_exported(exports / "None")
    expected = generate(model, mode)
    assert expected.shape[0] == 2 * GENERATION_MODES[mode].get("num_return_sequences", 1)
    torch.testing.assert_close(generate(onnx_model, mode), expected, rtol=0, atol=0)


def test_loss_and_logits_with_labels_match_pytorch(model, exports):
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100]])
    with torch.no_grad():
        expected = model(**padded_batch(), labels=labels)
        got = OnnxRuntimeXLMSWCM.from_exported(exports / "None")(**padded_batch(), labels=labels)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.loss, expected.loss, atol=1e-5, rtol=1e-5)


def test_int8_graphs_are_smaller_and_close_to_float32(model, exports):
    import onnx

    nodes = [
        node for name in ("decoder.onnx", "head.onnx") for node in onnx.load(str(exports / "int8" / name)).graph.node
    ]
    integer_products = [node for node in nodes if node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    linear_layers = [m for m in [*model.get_decoder().modules(), model.lm_head] if isinstance(m, torch.nn.Linear)]
    # every decoder Linear and the head (cross-attention k/v live in cross_attention.onnx, not in this graph)
    assert len(integer_products) == len(linear_layers) - 2 * len(model.get_decoder().layers)
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])
    with torch.no_grad():
        expected = model(**padded_batch(), labels=labels).logits
        got = OnnxRuntimeXLMSWCM.from_exported(exports / "int8")(**padded_batch(), labels=labels).logits
    assert not torch.equal(got, expected)  # the int8 graphs really are another computation
    assert (got - expected).abs().max() < 0.1 * expected.abs().max()
    assert generate(OnnxRuntimeXLMSWCM.from_exported(exports / "int8"), "beam_search").shape == (4, 9)


def test_refusals(model, exports, tmp_path):
    from xlm_swcm_hf.checks import InputError

    with pytest.raises(InputError, match="exists already"):
        export_onnx(model, exports / "None")
    with pytest.raises(InputError, match="quantize must be one of"):
        export_onnx(model, tmp_path / "x", quantize="int4")
    with pytest.raises(InputError, match="is not an ONNX export of XLM-SWCM"):
        OnnxRuntimeXLMSWCM.from_exported(tmp_path)
    assert not (tmp_path / "x").exists()


def test_lengths_follow_the_pytorch_models_rules(model, exports, caplog):
    onnx_model = OnnxRuntimeXLMSWCM.from_exported(exports / "None")
    onnx_model.generation_config.max_length = 12  # a stored default, as a saved folder has
    with caplog.at_level("WARNING"):
        out = onnx_model.generate(**padded_batch(), max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape[1] == 1 + 3  # the caller's length beats the stored one, without a "both are set" warning
    assert "seem to have been set" not in caplog.text
    too_long = model.config.max_position_embeddings + 10
    with pytest.raises(ValueError, match="shared position table"):  # refused before decoding, as PyTorch refuses
        onnx_model.generate(**padded_batch(), max_new_tokens=too_long)
    with pytest.raises(ValueError, match="shared position table"):
        model.generate(**padded_batch(), max_new_tokens=too_long)


# --------------------------------------------------------------------------------------------- translate.py


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("translate-onnx") / "model"
    model.save_pretrained(path)
    build_tiny_xlmr_tokenizer().save_pretrained(path)
    return path


TEXTS = ["We learn languages.", "", "Bonjour tout le monde, comment allez-vous ?", "Привет"]


def translate(folder, tmp_path, name, *extra):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    argv = ["--model", folder, "--input", tmp_path / "in.txt", "--output", tmp_path / name, "--max-new-tokens", 6]
    code = run_script("translate", [*argv, "--no-progress", "--onnx-cache", tmp_path / "cache", *extra])
    return code, (tmp_path / name).read_text("utf-8").split("\n")[:-1] if code == 0 else None


def test_translate_with_onnx_runtime_gives_the_pytorch_lines_and_reuses_its_export(folder, tmp_path, monkeypatch):
    code, torch_lines = translate(folder, tmp_path, "torch.txt", "--backend", "torch")
    assert code == 0 and torch_lines[1] == "" and all(torch_lines[i] for i in (0, 2, 3))
    code, onnx_lines = translate(folder, tmp_path, "onnx.txt", "--backend", "onnxruntime")
    assert code == 0 and onnx_lines == torch_lines
    assert len(list((tmp_path / "cache").iterdir())) == 1

    import xlm_swcm_hf.onnx_runtime as onnx_runtime

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the folder did not change")

    monkeypatch.setattr(onnx_runtime, "export_onnx", no_export)
    code, again = translate(folder, tmp_path, "again.txt", "--backend", "onnxruntime")
    assert code == 0 and again == torch_lines


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--backend", "onnxruntime", "--quantize", "int8"], "cannot go with --backend onnxruntime"),
        (["--backend", "tensorrt"], "invalid choice"),
    ],
)
@pytest.mark.parametrize("script", ["translate", "evaluate_model"])
def test_bad_backend_arguments_are_one_error_line(folder, tmp_path, capsys, script, extra, fragment):
    (tmp_path / "in.jsonl").write_text('{"source": "a", "target": "b"}\n', encoding="utf-8")
    io = ["--input", tmp_path / "in.jsonl"] if script == "translate" else ["--data", tmp_path / "in.jsonl"]
    code = run_script(script, ["--model", folder, *io, "--output", tmp_path / "out", *extra])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
