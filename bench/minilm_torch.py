#!/usr/bin/env python3
"""sentence-transformers' side of bench/bench_minilm.sh: embeds the lines of a
file with all-MiniLM-L6-v2 on the CPU (tokenisation included, as attn embed
does), prints one line "sentences/s N cpu M" (M: sentences per second of
process CPU time). Development only:

    PYTHONPATH=/opt/st /opt/torch2/bin/python bench/minilm_torch.py MODEL_DIR FILE THREADS BATCH
"""
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, path, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
lines = open(path, encoding='utf-8').read().split('\n')
if lines and lines[-1] == '':
    lines.pop()
model = SentenceTransformer(model_dir, device='cpu')
model.encode(lines[:batch], batch_size=batch)  # warm-up, untimed
t0, c0 = time.perf_counter(), time.process_time()
with torch.inference_mode():
    model.encode(lines, batch_size=batch, convert_to_numpy=True)
dt, dc = time.perf_counter() - t0, time.process_time() - c0
print('sentences/s %.2f cpu %.2f (%d sentences, %.3f s, process CPU time %.3f s, torch %s, %d threads)'
      % (len(lines) / dt, len(lines) / dc, len(lines), dt, dc, torch.__version__, torch.get_num_threads()))
