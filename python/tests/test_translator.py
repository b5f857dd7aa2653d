"""attn.Translator against the CLI: tiny models of `attn transformer train`
and `attn seq2seq train` (the dates task, 30 steps: their outputs are poor
but deterministic) must translate exactly as `attn transformer|seq2seq
translate` do, greedy and by beam search. Needs the CLI (ATTN_CLI, or
build/attn of the repository; a counted skip without it)."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import attn

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = os.environ.get("ATTN_CLI", str(ROOT / "build" / "attn"))
# an unknown character, and a source longer than location attention reads
# (cut there by both)
INPUTS = ["July 4 2000", "12/25/1999", "Tuesday, March 3, 1987", "3 Jan 2011", "x\u03a9y 2001",
          "Wednesday, September 30, 1987 and Thursday, October 1, 1987, 12:00"]

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"no attn CLI at {CLI}")


FAMILIES = {  # label: (command, model options)
    "transformer": ("transformer", ["--d-model", "16", "--heads", "2", "--layers", "1"]),
    "transformer-learned": ("transformer", ["--d-model", "16", "--heads", "2", "--layers", "1",
                                            "--pos", "learned"]),
    "seq2seq": ("seq2seq", ["--emb", "8", "--hidden", "16", "--attention", "bahdanau"]),
    "seq2seq-location": ("seq2seq", ["--emb", "8", "--hidden", "16", "--attention", "location"]),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_run(request, tmp_path_factory):
    fam, opts = FAMILIES[request.param]
    d = tmp_path_factory.mktemp(request.param) / "run"
    subprocess.run([CLI, fam, "train", "--task", "dates", *opts, "--batch", "8", "--threads",
                    "1", "--eval-every", "0", "--log-every", "100", "--steps", "30", "--quiet", "--out",
                    str(d)], check=True, capture_output=True)
    return fam, d


@pytest.fixture(scope="module")
def run_dir(family_run):
    return family_run[1]


def cli_translate(fam, run_dir, *extra):
    r = subprocess.run([CLI, fam, "translate", "--model", str(run_dir), "--threads", "1",
                        *extra, *INPUTS], check=True, capture_output=True, text=True)
    return r.stdout.split("\n")[: len(INPUTS)]


@pytest.mark.parametrize("beam", [1, 3])
def test_translations_equal_the_cli(family_run, beam):
    fam, run_dir = family_run
    t = attn.Translator(run_dir)
    assert t.family == fam
    want = cli_translate(fam, run_dir, "--beam", str(beam), "--alpha", "0.6")
    got = t.translate(INPUTS, beam=beam, alpha=0.6, threads=1)
    assert got == want
    assert any(want)  # not every output empty: the comparison has content


def test_translator_config_and_errors(run_dir, tmp_path):
    t = attn.Translator.load(run_dir)
    assert t.config["enc_layers"] == 1 and t.config["parameters"] > 0
    assert t.translate("") == ""
    ids = t.translate_ids(t.src_vocab.encode("July 4 2000"), max_len=3)
    assert len(ids) <= 3
    with pytest.raises(attn.AttnError):
        t.translate_ids(np.array([10 ** 6], dtype=np.int32))
    with pytest.raises(ValueError):
        attn.Translator(tmp_path / "nothing")
    gpt = attn.GPT.new(vocab=10, ctx_len=8, n_layers=1, n_heads=1, d_model=8)
    (tmp_path / "g").mkdir()
    gpt.save(tmp_path / "g" / "model.safetensors")
    with pytest.raises(attn.AttnError, match="translator|metadata"):
        attn.Translator(tmp_path / "g")
