/* attn/bert_corpus.h: the data of the BERT-style encoder (bert.h): token
 * sequences read from a file in the fortune format (one per text, or per
 * piece of one), optionally labelled for classification, padded [CLS]
 * batches of them, and the seeded sampler of training rows.
 */
#ifndef ATTN_BERT_CORPUS_H
#define ATTN_BERT_CORPUS_H

#include <stdint.h>

#include "status.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The [CLS] token of attn's vocabularies: the <bos> special (text.h). */
#define ATTN_BERT_CLS ATTN_TOKEN_BOS

/* Token sequences (one per fortune, or per piece of one), optionally
 * labelled. */
typedef struct attn_bert_corpus {
    int64_t n;          /* sequences */
    int64_t *offsets;   /* [n + 1]: sequence i is ids[offsets[i] .. offsets[i+1]) */
    int32_t *ids;       /* offsets[n] ids (no [CLS]) */
    int32_t *labels;    /* [n] or NULL */
    int64_t texts;      /* fortunes read */
} attn_bert_corpus;

/* Reads a file in the fortune format (texts separated by lines that are
 * exactly '%'; the data of scripts/get_fortunes_data.sh and
 * get_fortunes_labels.sh), encodes each text with `vocab`, and keeps at
 * most max_tokens ids of it: the first max_tokens (chunk == 0), or every
 * consecutive piece of max_tokens ids (chunk != 0; the last piece may be
 * shorter). Empty texts are skipped. With labels_path non-NULL, the file
 * there has one integer label a line, one per text, each in [0,
 * n_classes) (a chunked text gives its label to every piece).
 * Errors: ATTN_ERR_INVALID_ARG (NULL, max_tokens < 1), ATTN_ERR_IO,
 * ATTN_ERR_FORMAT (invalid UTF-8, no text, a label line that is not a
 * number in range, a label count that differs from the text count),
 * ATTN_ERR_OOM. On error *out is empty. */
attn_status attn_bert_corpus_load(const attn_vocab *vocab, const char *path,
                                  const char *labels_path, int n_classes, int64_t max_tokens,
                                  int chunk, attn_bert_corpus *out);
void attn_bert_corpus_free(attn_bert_corpus *c); /* frees and empties; NULL is fine */

/* Keeps, in their order, the first per_class sequences of each class of a
 * labelled corpus and drops the rest, in place (a class with fewer keeps
 * all of its own). The fortune labels' training file is ordered by hash,
 * so the first N of a class are a fixed, deterministic subset of it (the
 * low-label runs of attn bert finetune --train-per-class). c->texts
 * becomes the number kept when it equalled c->n (an unchunked corpus),
 * otherwise it is left alone. The arrays are not shrunk.
 * Errors: ATTN_ERR_INVALID_ARG (NULL, an unlabelled corpus, n_classes < 1,
 * per_class < 1, a label outside [0, n_classes); c is then unchanged),
 * ATTN_ERR_OOM. */
attn_status attn_bert_corpus_per_class(attn_bert_corpus *c, int n_classes, int64_t per_class);

/* A padded batch of the corpus's sequences rows[0 .. B-1]: row r of ids
 * [B, T] is [CLS], then the sequence's first T - 1 ids, then padding
 * (ATTN_TOKEN_PAD); lengths[r] is 1 + the ids kept; labels[r] (labels may be
 * NULL; needs a labelled corpus otherwise) is the sequence's label.
 * Errors: ATTN_ERR_INVALID_ARG (NULL, B < 1, T < 2, a row outside [0, n),
 * labels asked of an unlabelled corpus). */
attn_status attn_bert_batch(const attn_bert_corpus *c, const int64_t *rows, int64_t B, int64_t T,
                            int32_t *ids, int32_t *lengths, int32_t *labels);

/* The seeded sampler of training rows: row r of batch `step` is
 *   z = SplitMix64 finaliser of (seed + (step B + r + 1) 0x9E3779B97F4A7C15)
 *   rows[r] = z % n
 * (the rule of attn_lm_window_start, lm_data.h). Needs n >= 1, B >= 1,
 * step >= 0; does nothing otherwise. */
void attn_bert_sample_rows(uint64_t seed, int64_t step, int64_t B, int64_t n, int64_t *rows);

#ifdef __cplusplus
}
#endif
#endif
