/* attn/lm_data.h: data for language models: a text file turned into one
 * stream of token ids, and the batches a decoder-only model trains on.
 *
 *   text      attn_lm_text_load reads a whole UTF-8 text file.
 *   vocab     attn_lm_vocab_learn builds the character or BPE vocabulary of
 *             text.h from the training text.
 *   tokens    attn_lm_tokenize encodes a text into one stream of ids.
 *   batches   attn_lm_batch draws B random windows of T + 1 consecutive
 *             tokens (inputs are the first T, targets the last T) as a pure
 *             function of (seed, step): a run can resume at any step and a
 *             script in another language can draw the same windows (the rule
 *             is written below). attn_lm_eval_batch walks the stream in
 *             consecutive windows for evaluation.
 *
 * The real corpus is data/fortunes/{train,valid}.txt (docs/data.md,
 * scripts/get_fortunes_data.sh). Nothing here prints; errors return a status
 * with attn_last_error() naming the function, the file or value, and what was
 * expected. */
#ifndef ATTN_LM_DATA_H
#define ATTN_LM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the file at `path` into a malloc'd, NUL-terminated buffer *text of
 * *len bytes (the NUL not counted); the caller frees it. The bytes must be
 * valid UTF-8 without NUL bytes. Errors: ATTN_ERR_INVALID_ARG (NULL
 * argument), ATTN_ERR_IO (cannot open or read), ATTN_ERR_FORMAT (invalid
 * UTF-8 or a NUL, naming the byte offset; empty file), ATTN_ERR_OOM. On error
 * *text is NULL. */
attn_status attn_lm_text_load(const char *path, char **text, size_t *len);

/* A vocabulary learned on text[0 .. len-1]: kind ATTN_VOCAB_CHAR (every code
 * point seen at least min_count times) or ATTN_VOCAB_BPE (at most bpe_merges
 * merges, text.h). The whole text is one training text of the learner.
 * Errors: those of attn_vocab_build_chars / attn_bpe_learn. */
attn_status attn_lm_vocab_learn(const char *text, size_t len, attn_vocab_kind kind, int bpe_merges,
                                int min_count, attn_vocab **out);

/* A stream of token ids. */
typedef struct attn_lm_tokens {
    int64_t n;      /* ids */
    int32_t *ids;   /* n ids; owned (malloc) */
    int64_t chars;  /* code points of the text that was encoded */
} attn_lm_tokens;

/* Encodes text[0 .. len-1] with `vocab` into *out (no <bos>/<eos> added).
 * Errors: ATTN_ERR_INVALID_ARG (NULL argument), ATTN_ERR_OOM. On error *out
 * is empty. */
attn_status attn_lm_tokenize(const attn_vocab *vocab, const char *text, size_t len,
                             attn_lm_tokens *out);

/* Frees and empties; safe on NULL, on an emptied struct and twice. */
void attn_lm_tokens_free(attn_lm_tokens *t);

/* The characters (code points) that ids[0 .. n-1] stand for: each token's
 * piece length in code points, specials 0 except <unk>, which counts as 1.
 * Bits per character = (sum of target losses in nats) / ln 2 / this count. */
int64_t attn_lm_token_chars(const attn_vocab *vocab, const int32_t *ids, int64_t n);

/* The start of window `row` of batch `step` (the sampler's rule):
 *   i = step * B + row + 1 (unsigned 64-bit arithmetic, wrapping)
 *   z = seed + i * 0x9E3779B97F4A7C15
 *   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *   z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *   z = z ^ (z >> 31)                      (SplitMix64's finaliser)
 *   start = z % (n - T)
 * so the window ids[start .. start + T] lies in the stream. Needs n > T >= 1,
 * B >= 1, step >= 0, 0 <= row < B; returns -1 otherwise. */
int64_t attn_lm_window_start(uint64_t seed, int64_t step, int64_t row, int64_t B, int64_t n,
                             int64_t T);

/* Batch `step` of the seeded sampler: for row r, with s its window start,
 * inputs[r*T + t] = ids[s + t] and targets[r*T + t] = ids[s + t + 1]
 * (t < T). inputs and targets hold B * T ids each (caller-owned).
 * Errors: ATTN_ERR_INVALID_ARG (NULL argument, B < 1, T < 1, step < 0,
 * a stream of n <= T ids). */
attn_status attn_lm_batch(const attn_lm_tokens *tok, uint64_t seed, int64_t step, int64_t B,
                          int64_t T, int32_t *inputs, int32_t *targets);

/* The number of evaluation windows of a stream: floor((n - 1) / T); window w
 * predicts ids[w*T + 1 .. w*T + T] from ids[w*T .. w*T + T - 1], so the
 * windows cover every id but the first once. 0 when n < T + 1. */
int64_t attn_lm_eval_windows(const attn_lm_tokens *tok, int64_t T);

/* Windows first .. first + B - 1 of the evaluation walk (rows past the last
 * window are not written); *rows receives how many were written. Errors:
 * ATTN_ERR_INVALID_ARG (NULL argument, B < 1, T < 1, first < 0). */
attn_status attn_lm_eval_batch(const attn_lm_tokens *tok, int64_t T, int64_t first, int64_t B,
                               int32_t *inputs, int32_t *targets, int64_t *rows);

#ifdef __cplusplus
}
#endif
#endif
