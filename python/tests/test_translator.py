"""attn.Translator against the CLI: a tiny model of `attn transformer train`
(the dates task, 30 steps: its outputs are poor but deterministic) must
translate exactly as `attn transformer translate` does, greedy and by beam
search. Needs the CLI (ATTN_CLI, or build/attn of the repository; a counted
skip without it)."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import attn

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = os.environ.get("ATTN_CLI", str(ROOT / "build" / "attn"))
INPUTS = ["July 4 2000", "12/25/1999", "Tuesday, March 3, 1987", "3 Jan 2011", "x\u03a9y 2001"]

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"no attn CLI at {CLI}")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("t2t") / "run"
    subprocess.run([CLI, "transformer", "train", "--task", "dates", "--d-model", "16", "--heads", "2",
                    "--layers", "1", "--batch", "8", "--threads", "1", "--eval-every", "0",
                    "--log-every", "100", "--steps", "30", "--quiet", "--out", str(d)],
                   check=True, capture_output=True)
    return d


def cli_translate(run_dir, *extra):
    r = subprocess.run([CLI, "transformer", "translate", "--model", str(run_dir), "--threads", "1",
                        *extra, *INPUTS], check=True, capture_output=True, text=True)
    return r.stdout.split("\n")[: len(INPUTS)]


@pytest.mark.parametrize("beam", [1, 3])
def test_translations_equal_the_cli(run_dir, beam):
    t = attn.Translator(run_dir)
    want = cli_translate(run_dir, "--beam", str(beam), "--alpha", "0.6")
    got = t.translate(INPUTS, beam=beam, alpha=0.6, threads=1)
    assert got == want
    assert any(want)  # not every output empty: the comparison has content


def test_translator_config_and_errors(run_dir, tmp_path):
    t = attn.Translator.load(run_dir)
    assert t.config["d_model"] == 16 and t.config["enc_layers"] == 1
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
    with pytest.raises(attn.AttnError, match="attn-transformer|metadata"):
        attn.Translator(tmp_path / "g")
