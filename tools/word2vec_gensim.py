#!/usr/bin/env python3
"""word2vec_gensim.py: the gensim oracle of attn's word2vec (issue 16 part 3).

    PYTHONPATH=/opt/gensim python3 tools/word2vec_gensim.py train --text data/word2vec/train.txt \
        --out runs/w2v_gensim [--cbow] [--dim 100] [--window 5] [--negative 5] [--min-count 5] \
        [--epochs 5] [--lr 0.025] [--sample 1e-3] [--seed 1] [--eval-dir data/word2vec]
    PYTHONPATH=/opt/gensim python3 tools/word2vec_gensim.py eval --vectors FILE [--eval-dir DIR]

train: gensim.models.Word2Vec with workers=1 and the settings of `attn word2vec train` (hs=0,
negative sampling, ns_exponent 0.75, cbow_mean=1, min_alpha = lr * 1e-4 as the reference's floor,
sentences = the lines of the text, split on whitespace, as gensim's LineSentence), then saves
OUT/vectors.txt (save_word2vec_format, text) and prints one JSON line: the training wall and CPU
seconds, words/s (raw corpus words of all epochs / seconds, the figure attn prints), and the
evaluations.

eval: gensim's own evaluators (evaluate_word_analogies with restrict_vocab 300,000,
evaluate_word_pairs; both case-insensitive) on any text-format vectors (attn's vectors.txt
included), so both libraries' vectors can be scored by the same code.

gensim is a development-only dependency: pip install --target /opt/gensim gensim==4.4.0.
"""
import argparse
import json
import os
import sys
import time


def evaluate(kv, eval_dir):
    import logging
    logging.disable(logging.WARNING)
    res = {}
    q = os.path.join(eval_dir, "questions-words.txt")
    if os.path.exists(q):
        score, sections = kv.evaluate_word_analogies(q, restrict_vocab=300000)
        total = [s for s in sections if s["section"] == "Total accuracy"][0]
        n = len(total["correct"]) + len(total["incorrect"])
        with open(q) as f:
            questions = sum(1 for line in f if line.strip() and not line.startswith(":"))
        res["analogy_accuracy"] = 100.0 * score
        res["analogy_covered"] = n
        res["analogy_questions"] = questions
    for name in ("wordsim353.tsv", "simlex999.txt"):
        p = os.path.join(eval_dir, name)
        if not os.path.exists(p):
            continue
        pearson, spearman, oov = kv.evaluate_word_pairs(p)
        with open(p) as f:
            pairs = sum(1 for line in f if line.strip() and not line.startswith("#"))
        key = name.split(".")[0]
        res[key + "_spearman"] = float(spearman[0])
        res[key + "_covered"] = int(round(pairs * (100.0 - oov) / 100.0))
        res[key + "_pairs"] = pairs
    return res


class Lines:
    """The text's lines split on whitespace (what LineSentence does), kept in memory."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.lines = [line.split() for line in f]
        self.lines = [s for s in self.lines if s]

    def __iter__(self):
        return iter(self.lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "eval"])
    ap.add_argument("--text")
    ap.add_argument("--out")
    ap.add_argument("--vectors")
    ap.add_argument("--cbow", action="store_true")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negative", type=int, default=5)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-dir", default="data/word2vec")
    ap.add_argument("--no-eval", action="store_true", help="train only (timing runs)")
    ap.add_argument("--no-save", action="store_true", help="do not write OUT/vectors.txt")
    a = ap.parse_args()
    import gensim
    from gensim.models import KeyedVectors, Word2Vec
    if a.cmd == "eval":
        kv = KeyedVectors.load_word2vec_format(a.vectors, binary=False)
        print(json.dumps(evaluate(kv, a.eval_dir)))
        return 0
    lr = a.lr if a.lr is not None else (0.05 if a.cbow else 0.025)
    sentences = Lines(a.text)
    raw_words = sum(len(s) for s in sentences)
    model = Word2Vec(vector_size=a.dim, window=a.window, min_count=a.min_count, workers=1, sg=0 if a.cbow else 1,
                     hs=0, negative=a.negative, ns_exponent=0.75, cbow_mean=1, alpha=lr, min_alpha=lr * 1e-4,
                     sample=a.sample, seed=a.seed, epochs=a.epochs)
    model.build_vocab(sentences)
    t0, c0 = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=model.corpus_count, epochs=a.epochs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    in_vocab = sum(1 for s in sentences for w in s if w in model.wv.key_to_index)
    if not a.no_save:
        os.makedirs(a.out, exist_ok=True)
        model.wv.save_word2vec_format(os.path.join(a.out, "vectors.txt"), binary=False)
    res = {"gensim": gensim.__version__, "fast_version": gensim.models.word2vec.FAST_VERSION,
           "model": "cbow" if a.cbow else "skipgram", "vocab": len(model.wv), "raw_words": raw_words,
           "in_vocab_words": in_vocab, "epochs": a.epochs, "train_s": wall, "cpu_s": cpu,
           "words_per_s": in_vocab * a.epochs / wall, "words_per_cpu_s": in_vocab * a.epochs / cpu}
    if not a.no_eval:
        res.update(evaluate(model.wv, a.eval_dir))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
