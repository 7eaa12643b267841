"""Load a saved folder as a user without this package would, in a fresh interpreter (`python remote_check.py ...`).

Run as a script, never imported by the package: it blocks `xlm_swcm_hf` first, so only the folder's own remote code
can serve. It loads the config, the model through `AutoModelForSeq2SeqLM` and `AutoModel` (trust_remote_code=True)
and the tokenizer through `AutoTokenizer` (a saved folder's tokenizer must be the stock XLM-R one). Optionally it
translates sources and computes logits for given ids, writing a JSON answer.
"""

import json
import os
import sys


sys.modules["xlm_swcm_hf"] = None  # noqa: E402  only the folder's code may load


def main(argv: list[str]) -> int:
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    folder, request_path, answer_path = argv
    request = json.loads(open(request_path, encoding="utf-8").read())
    adapter_config = os.path.join(folder, "adapter_config.json")
    if os.path.isfile(adapter_config):  # a peft adapter: its base model (remote code) with the adapter on top
        from peft import PeftModel
        from transformers import GenerationConfig

        base = json.loads(open(adapter_config, encoding="utf-8").read())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base, trust_remote_code=True), folder)
        model.base_model.model.generation_config = GenerationConfig.from_pretrained(folder)
        model.eval()
        answer = {"model_class": type(model).__name__}
    else:
        AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
        answer = {"model_class": type(model).__name__}
        if request.get("base_model", True):
            answer["base_model_class"] = type(AutoModel.from_pretrained(folder, trust_remote_code=True)).__name__
    if request.get("tokenizer", True):
        # AutoTokenizer reads config.json first; trust_remote_code spares the prompt, the class stays the stock one.
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        answer["tokenizer_class"] = type(tokenizer).__name__
        if request.get("sources"):
            batch = tokenizer(request["sources"], return_tensors="pt", padding=True)
            with torch.no_grad():
                output = model.generate(**batch, **request.get("generation", {}))
            answer["predictions"] = [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]
    if request.get("logits_inputs"):
        inputs = {key: torch.tensor(value) for key, value in request["logits_inputs"].items()}
        with torch.no_grad():
            answer["logits"] = model(**inputs).logits.tolist()
    with open(answer_path, "w", encoding="utf-8") as handle:
        json.dump(answer, handle, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
