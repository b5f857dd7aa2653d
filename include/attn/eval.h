/* attn/eval.h: evaluation of generated text: BLEU, exact match, character
 * error rate.
 *
 * BLEU is computed exactly as sacrebleu (2.x) computes it by default, so the
 * numbers attn reports can be compared with published ones:
 *
 *   - tokenisation "13a" (mteval-v13a, the WMT standard), applied to each
 *     hypothesis and reference after removing trailing whitespace;
 *   - n-grams of orders 1..4 over the tokens; the matches of an n-gram are
 *     clipped by its count in the reference (one reference per sentence);
 *   - corpus statistics are sums over the sentences (not a mean of sentence
 *     scores): sys_len and ref_len are the total token counts, correct[n]
 *     and total[n] the total clipped matches and hypothesis n-grams;
 *   - precision p_n = 100 * correct[n] / total[n]; an order with no match is
 *     smoothed with sacrebleu's default "exp" method (Chen & Cherry 2014,
 *     method 3, as in mteval-v13a.pl): the k-th such order gets
 *     p_n = 100 / (2^k * total[n]);
 *   - BLEU = BP * exp(mean over the orders of log p_n), in 0..100, with the
 *     brevity penalty BP = exp(1 - ref_len / sys_len) when sys_len < ref_len,
 *     else 1 (0 when sys_len is 0);
 *   - no match of any order at all gives 0. An order whose total is 0 (every
 *     hypothesis shorter than n tokens) gives 0 at the corpus level; at the
 *     sentence level ("effective order", sacrebleu.sentence_bleu's default)
 *     the mean runs only over the leading orders whose total is non-zero.
 *
 * Corpus BLEU equals sacrebleu.corpus_bleu(hyps, [refs]).score and sentence
 * BLEU equals sacrebleu.sentence_bleu(hyp, [ref]).score (tests/test_eval.c
 * holds the values sacrebleu 2.6.0 gives, to 1e-9).
 *
 * Text is UTF-8. Tokens are compared byte by byte; a byte that is not part of
 * valid UTF-8 is kept as it is (never an error). Whitespace is what Python's
 * str.split() splits on (ASCII \t \n \v \f \r, space, \x1c-\x1f and the
 * Unicode spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000), so that the token counts match sacrebleu's.
 *
 * Nothing here prints; errors (only NULL arguments and out of memory) are
 * returned as attn_status with attn_last_error() naming the function.
 */
#ifndef ATTN_EVAL_H
#define ATTN_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_BLEU_ORDER 4 /* n-gram orders 1..4 */

/* The sufficient statistics of BLEU: everything a score is computed from.
 * Statistics of disjoint sets of sentences add up elementwise. */
typedef struct attn_bleu_stats {
    int64_t sys_len;                  /* hypothesis tokens */
    int64_t ref_len;                  /* reference tokens */
    int64_t correct[ATTN_BLEU_ORDER]; /* clipped n-gram matches, order n = index + 1 */
    int64_t total[ATTN_BLEU_ORDER];   /* hypothesis n-grams */
} attn_bleu_stats;

/* A BLEU score with its parts (sacrebleu's BLEUScore). */
typedef struct attn_bleu_score {
    double score;                       /* 0..100 */
    double precision[ATTN_BLEU_ORDER];  /* p_n in percent, after smoothing (0 where unused) */
    double bp;                          /* brevity penalty, 0..1 */
    double ratio;                       /* sys_len / ref_len (0 if ref_len is 0) */
    attn_bleu_stats stats;
} attn_bleu_score;

/* Tokenises one line with sacrebleu's 13a tokenizer, after removing trailing
 * whitespace as sacrebleu does. On success *out is a new NUL-terminated
 * string, the tokens separated by single spaces (no leading or trailing
 * space; "" when there are none), which the caller frees with free().
 * Errors: ATTN_ERR_INVALID_ARG (NULL line or out), ATTN_ERR_OOM. */
attn_status attn_tokenize_13a(const char *line, char **out);

/* Adds the statistics of one hypothesis/reference pair (raw text, tokenised
 * here with 13a) to *stats. On error *stats is unchanged.
 * Errors: ATTN_ERR_INVALID_ARG (a NULL argument), ATTN_ERR_OOM. */
attn_status attn_bleu_stats_add(attn_bleu_stats *stats, const char *hyp, const char *ref);

/* The score of the statistics. effective_order = 0 is corpus BLEU, 1 is
 * sentence BLEU (see above). Never fails on valid statistics: a NULL pointer
 * or negative counts give ATTN_ERR_INVALID_ARG and a zeroed *out. */
attn_status attn_bleu_compute(const attn_bleu_stats *stats, int effective_order,
                              attn_bleu_score *out);

/* Sentence BLEU of one pair (= sacrebleu.sentence_bleu(hyp, [ref])). */
attn_status attn_sentence_bleu(const char *hyp, const char *ref, attn_bleu_score *out);

/* Character edit distance: the Levenshtein distance (insertions, deletions,
 * substitutions, each costing 1) between a and b counted in Unicode code
 * points (an invalid UTF-8 byte counts as one character). *n_ref_chars
 * receives the number of characters of b (may be NULL). Memory is
 * O(min length); time O(|a| * |b|).
 * Errors: ATTN_ERR_INVALID_ARG (NULL a, b or dist), ATTN_ERR_OOM. */
attn_status attn_char_edit_distance(const char *a, const char *b, int64_t *dist,
                                    int64_t *n_ref_chars);

/* ---- the streaming accumulator ------------------------------------------------ */

/* Collects the statistics of a test set one pair at a time, so that a decoder
 * can stream its outputs; no memory is held between calls (a plain value:
 * copy it, or add two with attn_eval_merge, e.g. one per thread).
 *
 *   attn_eval ev;
 *   attn_eval_init(&ev);
 *   for each sentence: attn_eval_add(&ev, hypothesis, reference);
 *   attn_bleu_score s; attn_eval_bleu(&ev, &s);       s.score is corpus BLEU
 *   attn_eval_exact_match(&ev), attn_eval_cer(&ev)
 */
typedef struct attn_eval {
    int64_t n;          /* pairs added */
    int64_t exact;      /* pairs whose hypothesis equals the reference byte for byte */
    int64_t char_edits; /* sum of the character edit distances */
    int64_t ref_chars;  /* sum of the reference lengths in characters */
    attn_bleu_stats bleu;
} attn_eval;

/* Empties the accumulator. */
void attn_eval_init(attn_eval *ev);

/* Adds one pair. Exact match compares the strings byte for byte (normalise
 * case or whitespace before, if that is wanted). On error *ev is unchanged.
 * Errors: ATTN_ERR_INVALID_ARG (a NULL argument), ATTN_ERR_OOM. */
attn_status attn_eval_add(attn_eval *ev, const char *hyp, const char *ref);

/* dst += src (all counts). */
void attn_eval_merge(attn_eval *dst, const attn_eval *src);

/* Corpus BLEU of the pairs added (sacrebleu.corpus_bleu). */
attn_status attn_eval_bleu(const attn_eval *ev, attn_bleu_score *out);

/* Fraction of exact matches, 0..1 (0 when no pair was added). */
double attn_eval_exact_match(const attn_eval *ev);

/* Corpus character error rate: char_edits / ref_chars, summed over the pairs
 * (not a mean of sentence rates). It can exceed 1 when hypotheses are longer
 * than references. When the references hold no characters at all the
 * denominator is taken as 1 (so the rate is 0 for empty hypotheses and the
 * number of inserted characters otherwise). */
double attn_eval_cer(const attn_eval *ev);

#ifdef __cplusplus
}
#endif
#endif
