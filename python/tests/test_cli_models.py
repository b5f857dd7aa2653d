"""Models trained by the CLI, used from Python: a GPT of `attn gpt train`
samples the same text as `attn gpt sample` (same seed, temperature, top-p;
and greedy), and a BERT classifier of `attn bert finetune` gets, through
BERT.predict on the test texts, the test accuracy the CLI reported. Needs
the CLI (ATTN_CLI, or build/attn; a counted skip without it). Tiny models,
a few seconds."""
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

import attn

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = os.environ.get("ATTN_CLI", str(ROOT / "build" / "attn"))
pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"no attn CLI at {CLI}")

FORTUNES = "the cat sat on the mat.\n%\na dog ran in the fog.\n%\nsix hens fed ten chicks.\n%\n"


def run(*args):
    return subprocess.run([CLI, *map(str, args)], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory):
    t = tmp_path_factory.mktemp("gptcli")
    (t / "data").mkdir()
    (t / "data" / "train.txt").write_text(FORTUNES * 40)
    (t / "data" / "valid.txt").write_text(FORTUNES * 4)
    run("gpt", "train", "--data", t / "data", "--layers", 1, "--heads", 2, "--d-model", 16, "--ctx", 16,
        "--batch", 4, "--threads", 1, "--eval-every", 0, "--log-every", 100, "--steps", 60, "--quiet",
        "--out", t / "run")
    return t / "run"


@pytest.mark.parametrize("temperature,top_p", [(0.8, 0.95), (0.0, 1.0), (1.3, 1.0)])
def test_gpt_generates_what_the_cli_samples(gpt_dir, temperature, top_p):
    cli = run("gpt", "sample", "--model", gpt_dir, "--prompt", "the ", "--tokens", 40, "--temperature",
              temperature, "--top-p", top_p, "--seed", 3, "--threads", 1).stdout
    m = attn.GPT.load(gpt_dir)
    text = m.generate("the ", 40, temperature=temperature, top_p=top_p if top_p < 1 else 0.0, seed=3,
                      threads=1)
    assert cli == "the " + text + "\n"
    assert len(text) > 0


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    t = tmp_path_factory.mktemp("bertcli")
    lab = t / "lab"
    lab.mkdir()
    (lab / "classes").write_text("cats\ndogs\n")
    for split in ("train", "valid", "test"):
        texts, labels = [], []
        for i in range(1, 13):
            texts += [f"the cat sat on the mat {i}.\n%\n", f"a dog ran in the fog {i}.\n%\n"]
            labels += ["0", "1"]
        (lab / f"{split}.txt").write_text("".join(texts))
        (lab / f"{split}.labels").write_text("\n".join(labels) + "\n")
    (lab / "pretrain.txt").write_text(FORTUNES * 40)
    out = run("bert", "finetune", "--data", lab, "--tok", "char", "--layers", 1, "--heads", 2,
              "--d-model", 16, "--max-len", 32, "--batch", 8, "--threads", 1, "--eval-every", 0,
              "--log-every", 1000, "--steps", 300, "--lr", "3e-3", "--out", t / "run").stdout
    acc = re.search(r"test accuracy [0-9.]+ \((\d+)/(\d+)\)", out)
    assert acc, out
    return t / "run", lab, int(acc.group(1)), int(acc.group(2))


def test_bert_classifier_agrees_with_the_cli(bert_run):
    run_dir, lab, correct, total = bert_run
    m = attn.BERT.load(run_dir)
    # the corpus format: texts separated by "%" lines, each without its last newline
    texts = [t[:-1] for t in (lab / "test.txt").read_text().split("%\n")[:-1]]
    labels = np.array((lab / "test.labels").read_text().split(), dtype=int)
    assert len(texts) == total
    pred = m.predict(texts)
    assert int((pred == labels).sum()) == correct
    assert correct > total * 0.75  # the model learned something: the check has teeth
    e = m.embed(texts)
    assert e.shape == (total, m.config["d_model"])
