#!/usr/bin/env python3
"""check_layers.py: no #include in src/ or include/ may point upward.

The layers of the library, lowest first (docs/design.md, "Layers"):

    rank 0  core    src/core/     context, tape, op table, GEMM, RNG, strings
    rank 1  io      src/io/       file formats (safetensors), SVG, logs: core only
    rank 2  ops     src/ops/      the graph ops
    rank 3  nn      src/nn/       parameters, optimizers, layers
    rank 4  data    src/data/     data sets, tokenisers, batches
            eval    src/eval/     metrics
            train   src/train/    checkpoints (parameters + optimizer <-> io)
    rank 5  models  src/models/   the model families
    rank 6  api     include/attn/attn.h, which includes every header

A file may include a file of its own layer or of a lower rank. Layers that
share a rank are independent: none includes another. A public header
belongs to the layer that implements it (table below); a header missing
from the table is an error, so a new header is placed on purpose.

Usage: python3 tools/check_layers.py [repository root]; exit status 1 with
one line per upward include ("file:line: includes X (layer) from layer").
"""
import os
import re
import sys

RANK = {"core": 0, "io": 1, "ops": 2, "nn": 3, "data": 4, "eval": 4, "train": 4,
        "models": 5, "api": 6}

PUBLIC = {
    "status.h": "core", "tensor.h": "core", "context.h": "core", "rng.h": "core",
    "info.h": "core",
    "safetensors.h": "io", "progress.h": "io", "viz.h": "io", "explorer.h": "io", "png.h": "io",
    "ops.h": "ops", "sdpa.h": "ops", "sparse.h": "ops", "positions.h": "ops", "long_context.h": "ops", "reformer.h": "ops", "conv.h": "ops", "graph_attention.h": "ops", "deb_graph.h": "data", "node_classifier.h": "models",
    "params.h": "nn", "optim.h": "nn", "rnn.h": "nn", "rnn_attention.h": "nn", "rnn_cell.h": "ops",
    "lstmn.h": "ops",
    "transformer.h": "nn", "reversible.h": "nn", "vision_attention.h": "nn", "synthesizer.h": "nn", "sha_rnn.h": "nn", "lama.h": "nn", "linformer.h": "nn",
    "transformer.h": "nn", "reversible.h": "nn", "vision_attention.h": "nn", "synthesizer.h": "nn", "linformer.h": "nn", "sinkhorn.h": "nn", "routing.h": "nn",
    "vision_modules.h": "nn",
    "idx.h": "data", "text.h": "data", "s2s_data.h": "data", "s2s_types.h": "data",
    "lm_data.h": "data", "bert_corpus.h": "data", "wordpiece.h": "data", "scenes.h": "data",
    "eval.h": "eval", "fid.h": "eval",
    "checkpoint.h": "train",
    "seq2seq.h": "models", "transformer_s2s.h": "models", "gpt.h": "models", "txl.h": "models",
    "cnn.h": "models", "lstmn_lm.h": "models", "sha_lstm.h": "models", "gru_classifier.h": "models", "bert.h": "models", "minilm.h": "models", "caption.h": "models", "gan.h": "models",
    "seq2seq.h": "models", "transformer_s2s.h": "models", "gpt.h": "models", "txl.h": "models", "reformer_lm.h": "models",
    "cnn.h": "models", "lstmn_lm.h": "models", "bert.h": "models", "minilm.h": "models", "caption.h": "models", "gan.h": "models",
    "cnn.h": "models", "mask_head.h": "models", "lstmn_lm.h": "models", "bert.h": "models", "minilm.h": "models", "caption.h": "models", "gan.h": "models",
    "wavenet.h": "models", "word2vec.h": "models",
    "attn.h": "api",
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+(["<])([^">]+)[">]')


def layer_of(root, path):
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    parts = rel.split("/")
    if parts[0] == "include" and len(parts) == 3 and parts[1] == "attn":
        return PUBLIC.get(parts[2])
    if parts[0] == "src" and len(parts) == 3:
        return parts[1] if parts[1] in RANK else None
    return None


def allowed(src, dst):
    if src == dst:
        return True
    return RANK[dst] < RANK[src]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    files = []
    for top in ("src", "include"):
        for d, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h"))]
    bad = []
    for f in sorted(files):
        rel = os.path.relpath(f, root)
        me = layer_of(root, f)
        if me is None:
            bad.append("%s: not in any layer (add its directory or header to "
                       "tools/check_layers.py)" % rel)
            continue
        with open(f, encoding="utf-8") as fp:
            for n, line in enumerate(fp, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                inc = m.group(2)
                if m.group(1) == "<" and not inc.startswith("attn/"):
                    continue  # a system header
                if inc.startswith("attn/"):
                    target = os.path.join(root, "include", inc)
                else:
                    target = os.path.normpath(os.path.join(os.path.dirname(f), inc))
                if not os.path.exists(target):
                    bad.append('%s:%d: includes "%s", which does not exist' % (rel, n, inc))
                    continue
                it = layer_of(root, target)
                if it is None:
                    bad.append('%s:%d: includes "%s", outside the layers' % (rel, n, inc))
                elif not allowed(me, it):
                    bad.append('%s:%d: includes "%s" (layer %s) from layer %s: upward' %
                               (rel, n, inc, it, me) if RANK[it] > RANK[me] else
                               '%s:%d: includes "%s" (layer %s) from layer %s: the two '
                               'share a rank and must stay independent' % (rel, n, inc, it, me))
    for b in bad:
        print(b)
    if bad:
        print("check_layers: %d include(s) break the layer order (docs/design.md)" % len(bad))
        return 1
    print("check_layers: %d files, every include points down" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
