/* attn/word2vec.h: word2vec (Mikolov et al. 2013): skip-gram and CBOW with
 * negative sampling, trained Hogwild-style, and the tools to use the vectors
 * (nearest neighbours, analogies, word-similarity evaluation).
 *
 * The method is that of the reference tool (word2vec.c): a vocabulary of the
 * words seen at least min_count times, sorted by count; frequent words
 * dropped at random (subsampling); for every kept word, a window shrunk at
 * random to b in [1, window]; each (input, target) pair updated with one
 * positive and `negative` negative targets drawn from a table of the
 * unigram distribution raised to 3/4; a learning rate that falls linearly
 * from alpha to alpha * min_alpha_ratio over all the epochs. The math and
 * the choices are in docs/word2vec.md.
 *
 * Legend: V the vocabulary size, D the vector size (dim).
 *
 * The text: bytes, words separated by ASCII whitespace (space, tab, \r, \v,
 * \f), sentences by '\n'. A window never crosses a sentence end; a sentence
 * longer than max_sentence words is cut into pieces of max_sentence (gensim
 * cuts at 10,000 too). Words are compared as bytes (no case folding: the
 * data scripts lower-case the corpus); a word longer than
 * ATTN_W2V_MAX_WORD bytes is an error.
 *
 * Threads: n_threads > 1 splits each epoch's words into n_threads
 * contiguous parts updated at the same time without locks (Hogwild, as the
 * reference): results then vary from run to run. n_threads == 1 is
 * deterministic: the same config, seed and text give bitwise the same
 * vectors.
 *
 * Errors: every function returns an attn_status, and attn_last_error() has
 * a message naming the function and the value at fault.
 */
#ifndef ATTN_WORD2VEC_H
#define ATTN_WORD2VEC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_W2V_MAX_WORD 100      /* bytes per word (the reference's MAX_STRING) */
#define ATTN_W2V_MAX_DIM 4096
#define ATTN_W2V_MAX_WINDOW 1000
#define ATTN_W2V_MAX_NEGATIVE 1000

typedef struct attn_w2v_config {
    int cbow;               /* 0 skip-gram, 1 CBOW (mean of the context vectors) */
    int dim;                /* D, 1 .. ATTN_W2V_MAX_DIM (default 100) */
    int window;             /* the largest window radius, 1 .. ATTN_W2V_MAX_WINDOW (5) */
    int negative;           /* negatives per positive, 1 .. ATTN_W2V_MAX_NEGATIVE (5) */
    int64_t min_count;      /* words seen fewer times are dropped, >= 1 (5) */
    int epochs;             /* passes over the text, 1 .. 10,000 (5) */
    double alpha;           /* the starting learning rate, (0, 10] (0.025; CBOW: 0.05 is usual) */
    double min_alpha_ratio; /* the rate never falls below alpha * this, [0, 1] (1e-4) */
    double sample;          /* subsampling threshold t, [0, 1] (1e-3; 0: no subsampling) */
    int64_t table_size;     /* entries of the negative table, 1,000 .. 2^30, or 0 (the
                               default): 100 per vocabulary word, clamped to
                               [10^6, 10^8] (the reference: always 10^8; a table
                               that fits the cache is the faster, see docs) */
    int max_sentence;       /* words per sentence piece, 1 .. 10^6 (10,000) */
    int exact_sigmoid;      /* 0: the reference's table of 1,000 values of sigma on
                               [-6, 6] (beyond it sigma is taken as 0 or 1);
                               1: the exact sigma (the tests' gradient checks) */
    int skip_saturated;     /* 0: the reference's rule above; 1: gensim's, a target whose
                               |x . out| >= 6 is skipped (no update from it) */
    double init_scale;      /* in[] starts uniform in [-init_scale / D, init_scale / D),
                               (0, 100] (0.5, the reference; gensim uses 1) */
    int n_threads;          /* >= 1 (1) */
    uint64_t seed;          /* the random streams' seed (1) */
} attn_w2v_config;

/* The defaults written above (skip-gram). */
void attn_w2v_config_default(attn_w2v_config *cfg);
/* ATTN_OK, or ATTN_ERR_INVALID_ARG naming the first field out of range
 * (NaN included). */
attn_status attn_w2v_config_check(const attn_w2v_config *cfg);

/* A vocabulary and its two tables of vectors: in[V, D] (the word vectors,
 * what is saved and queried) and out[V, D] (the negative-sampling output
 * vectors; zero after init, absent from loaded files). */
typedef struct attn_w2v {
    attn_w2v_config cfg;
    int64_t V;
    int D;
    char **words;      /* V NUL-terminated words, most frequent first */
    int64_t *counts;   /* V counts in the training text (0 when loaded from the text format) */
    int64_t train_words; /* sum of counts */
    float *in, *out;   /* [V, D] each; out may be NULL (a loaded model) */
    int *table;        /* the negative table (table_entries entries), or NULL */
    int64_t table_entries;
    void *hash;        /* private: the word -> index table */
} attn_w2v;

/* Counts the words of text[0 .. len), keeps those seen >= cfg->min_count
 * times, sorted by count (descending; ties by the bytes of the word), and
 * allocates in (uniform in [-s/D, s/D), s = cfg->init_scale, from
 * cfg->seed) and out
 * (zeros). Errors: ATTN_ERR_INVALID_ARG (bad config, NULL), ATTN_ERR_FORMAT
 * (a word longer than ATTN_W2V_MAX_WORD bytes, a NUL byte), ATTN_ERR_SHAPE
 * (no word reaches min_count: "empty vocabulary"), ATTN_ERR_OOM. */
attn_status attn_w2v_build(attn_w2v **out, const attn_w2v_config *cfg, const char *text, size_t len);

void attn_w2v_free(attn_w2v *m); /* NULL is fine */

/* The index of word (NUL-terminated), or -1 if absent. */
int64_t attn_w2v_find(const attn_w2v *m, const char *word);

/* The probability that one occurrence of word i is kept by subsampling:
 * min(1, (sqrt(c / (t N)) + 1) t N / c) with c its count, N train_words and
 * t cfg.sample (1 when t is 0). */
double attn_w2v_keep_prob(const attn_w2v *m, int64_t i);

/* (Re)builds the negative table: cfg.table_size entries (0: 100 V clamped
 * to [10^6, 10^8]) in m->table_entries, word i filling a
 * share count_i^0.75 / sum_j count_j^0.75 of them (the reference's fill).
 * attn_w2v_build calls it. Errors: ATTN_ERR_STATE (counts all zero: a
 * loaded model), ATTN_ERR_OOM. */
attn_status attn_w2v_build_table(attn_w2v *m);

/* What the progress callback sees. */
typedef struct attn_w2v_progress {
    int64_t words_done;   /* corpus words (in the vocabulary) processed so far, all epochs */
    int64_t words_total;  /* epochs * the corpus's in-vocabulary words */
    int epoch;            /* 0-based, of the calling thread */
    double alpha;         /* the current learning rate */
} attn_w2v_progress;

/* Called by thread 0 about every 10,000 words; a non-zero return stops
 * every thread after its current sentence (attn_w2v_train then returns
 * ATTN_OK with *stopped = 1). It must not call back into the model. */
typedef int (*attn_w2v_progress_fn)(void *user, const attn_w2v_progress *p);

/* Trains m on text[0 .. len) (the words out of the vocabulary are skipped)
 * with m->cfg (its alpha, epochs, threads... may be changed between build
 * and train; dim and table_size may not). progress may be NULL. *stopped
 * (may be NULL) is 1 when the callback stopped the run. Errors:
 * ATTN_ERR_INVALID_ARG (bad config or arguments), ATTN_ERR_STATE (m has no
 * output vectors or table: a loaded model), ATTN_ERR_FORMAT (as build),
 * ATTN_ERR_SHAPE (no word of the text is in the vocabulary), ATTN_ERR_OOM,
 * ATTN_ERR_NUMERIC (a vector became NaN or Inf: the learning rate is too
 * large). */
attn_status attn_w2v_train(attn_w2v *m, const char *text, size_t len, attn_w2v_progress_fn progress,
                           void *user, int *stopped);

/* One update of the reference's inner step, exposed for the tests: input
 * vector x = in[input] (skip-gram: the context word's vector; n_inputs > 1
 * is CBOW: x = the mean of in[inputs[k]]), targets[0] the positive target
 * and targets[1 .. n_targets) the negatives; for each target t with label
 * l (1 for the first, 0 after): g = alpha (l - sigma(x . out[t])),
 * e += g out[t], out[t] += g x; then each in[inputs[k]] += e. Targets equal
 * to targets[0] after the first are skipped (as the reference). Uses the
 * config's sigmoid (exact or table) and skip_saturated rule (a skipped
 * target counts in the loss, not in the update). Returns the loss before
 * the update:
 * -log sigma(x . out[t0]) - sum log sigma(-x . out[t]). Errors:
 * ATTN_ERR_INVALID_ARG (an index out of range, NULL), ATTN_ERR_STATE. */
attn_status attn_w2v_update(attn_w2v *m, const int64_t *inputs, int n_inputs, const int64_t *targets,
                            int n_targets, float alpha, double *loss);

/* ---- files ---------------------------------------------------------------------------- */

/* The word vectors in[V, D] to path, atomically:
 *   ATTN_W2V_TEXT: the classic format of word2vec.c and gensim:
 *     "V D\n" then one line per word, "word v_1 ... v_D\n" (each value
 *     with 9 significant digits, so it reads back to the same float);
 *   ATTN_W2V_SAFETENSORS: tensor "vectors" F32 [V, D], metadata
 *     format "attn-word2vec", version "1", "words" (the words joined by
 *     '\n'), "counts" (the counts, decimal, joined by ' ').
 * Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO, ATTN_ERR_OOM. */
typedef enum attn_w2v_format { ATTN_W2V_TEXT = 0, ATTN_W2V_SAFETENSORS = 1 } attn_w2v_format;
attn_status attn_w2v_save(const attn_w2v *m, const char *path, attn_w2v_format format);

/* Reads a file written by attn_w2v_save (or by word2vec.c -binary 0, or
 * gensim's save_word2vec_format binary=False): safetensors when it begins
 * like one, else the text format. The model has in[] only (out NULL,
 * counts 0 for the text format). Errors: ATTN_ERR_IO, ATTN_ERR_FORMAT (a
 * bad header, a short line, a number that does not parse or is not
 * finite, a repeated word, trailing data; named with the line), ATTN_ERR_OOM. */
attn_status attn_w2v_load(attn_w2v **out, const char *path);

/* ---- queries ------------------------------------------------------------------------------ */

/* The k words nearest to vec[D] by cosine, best first, skipping the n_skip
 * indices of skip (may be NULL). idx[k], sim[k] receive them; *found (may
 * be NULL) how many there were (< k when the vocabulary is small). Only the
 * first `restrict_to` words are searched when it is > 0 (0: all). Errors:
 * ATTN_ERR_INVALID_ARG. */
attn_status attn_w2v_nearest(const attn_w2v *m, const float *vec, const int64_t *skip, int n_skip,
                             int64_t restrict_to, int k, int64_t *idx, float *sim, int *found);

/* The k nearest neighbours of word (itself excluded). Errors:
 * ATTN_ERR_INVALID_ARG ("word 'x' is not in the vocabulary"). */
attn_status attn_w2v_similar(const attn_w2v *m, const char *word, int k, int64_t *idx, float *sim,
                             int *found);

/* a : b :: c : ?, by 3CosAdd: the words nearest by cosine to
 * unit(b) - unit(a) + unit(c), a, b and c excluded. Errors as similar. */
attn_status attn_w2v_analogy(const attn_w2v *m, const char *a, const char *b, const char *c,
                             int64_t restrict_to, int k, int64_t *idx, float *sim, int *found);

/* Cosine of two words' vectors. Errors as similar. */
attn_status attn_w2v_cosine(const attn_w2v *m, const char *a, const char *b, double *cos);

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Spearman's rank correlation of x[n] and y[n] (ties get their mean rank;
 * the Pearson correlation of the ranks). NaN when n < 2 or a side is
 * constant. */
double attn_spearman(const double *x, const double *y, int64_t n);

typedef struct attn_w2v_analogy_result {
    int64_t questions;  /* lines "a b c d" in the file */
    int64_t covered;    /* of them, with the four words in the (restricted) vocabulary */
    int64_t correct;    /* covered questions whose best answer is d */
} attn_w2v_analogy_result;

/* The analogy questions of path (the questions-words.txt format: lines
 * ": section" and "a b c d"), words lower-cased before lookup, the search
 * restricted to the first restrict_to words (0: all; gensim uses 300,000).
 * Errors: ATTN_ERR_IO, ATTN_ERR_FORMAT (a line of other than 4 words), OOM. */
attn_status attn_w2v_eval_analogies(const attn_w2v *m, const char *path, int64_t restrict_to,
                                    attn_w2v_analogy_result *r);

typedef struct attn_w2v_similarity_result {
    int64_t pairs;      /* pairs in the file */
    int64_t covered;    /* pairs with both words in the vocabulary */
    double spearman;    /* between the file's scores and the cosines, over the covered pairs */
} attn_w2v_similarity_result;

/* A word-similarity set (WordSim-353, SimLex-999 as gensim ships them):
 * lines "word1 word2 score" separated by tabs or spaces, lines starting
 * with '#' skipped, a first line whose third field is not a number skipped
 * (a header); words lower-cased. Errors: ATTN_ERR_IO, ATTN_ERR_FORMAT
 * (a line without three fields, a score that is not a finite number). */
attn_status attn_w2v_eval_similarity(const attn_w2v *m, const char *path,
                                     attn_w2v_similarity_result *r);

#ifdef __cplusplus
}
#endif
#endif
