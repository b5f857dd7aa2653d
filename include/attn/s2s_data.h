/* attn/s2s_data.h: minibatches for sequence-to-sequence models.
 *
 * Three parts:
 *
 *   attn_s2s_data     (source, target) pairs tokenised once into int32 ids
 *                     (text.h vocabularies), stored in one growable block.
 *   attn_s2s_batch_make
 *                     turns a list of example indices into the four tensors
 *                     of an attn_s2s_batch (s2s_types.h), padded, in a
 *                     context's arena (no heap allocation).
 *   attn_s2s_sampler  the order of training: length-bucketed, shuffled
 *                     minibatches that cover every example exactly once per
 *                     epoch, a pure function of (data, batch size, pool
 *                     size, seed, epoch), so a run can resume at any batch.
 *
 * Token conventions (the same as seq2seq.h): sources and targets are stored
 * without <bos>/<eos>; the batch adds them. For an example with source
 * s_0 .. s_{m-1} and target y_0 .. y_{n-1} (n may be 0), in a batch of
 * width S (longest source) and T (longest target + 1):
 *
 *   src     [B, S]  s_0 .. s_{m-1}, then pad_id
 *   src_len [B]     m (>= 1: a source is never empty)
 *   tgt_in  [B, T]  bos_id, y_0 .. y_{n-1}, then pad_id
 *   tgt_out [B, T]  y_0 .. y_{n-1}, eos_id, then pad_id
 *
 * so tgt_out[t] is what the decoder must predict after reading tgt_in[t],
 * and the pad_id positions of tgt_out are ignored by the loss.
 *
 * Nothing here prints. Errors return a status with attn_last_error() naming
 * the function and the offending value.
 */
#ifndef ATTN_S2S_DATA_H
#define ATTN_S2S_DATA_H

#include <stdint.h>

#include "context.h"
#include "rng.h"
#include "s2s_types.h"
#include "status.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tokenised pairs --------------------------------------------------------- */

/* Example i's source is ids[src_off[i] .. src_off[i] + src_len[i]), its
 * target ids[tgt_off[i] .. tgt_off[i] + tgt_len[i]). Read the fields; change
 * them only through the functions below (the special ids may be set right
 * after attn_s2s_data_init). */
typedef struct attn_s2s_data {
    int64_t n;                        /* examples */
    int32_t *ids;                     /* every token; owned */
    int64_t *src_off, *tgt_off;       /* [n] each; owned */
    int32_t *src_len, *tgt_len;       /* [n] each; owned */
    int32_t max_src_len, max_tgt_len; /* over the n examples (0 when n is 0) */
    int64_t src_tokens, tgt_tokens;   /* sums of src_len and tgt_len */
    int32_t pad_id, bos_id, eos_id;   /* init: ATTN_TOKEN_PAD, _BOS, _EOS */
    int64_t n_ids_;                   /* ids in use */
    int64_t cap_ids_, cap_n_;         /* capacities (kept by truncate) */
} attn_s2s_data;

/* Empties *d (no memory held) and sets the special ids to text.h's. */
void attn_s2s_data_init(attn_s2s_data *d);

/* Frees the storage and re-initialises *d. Safe on NULL, on an initialised
 * or emptied struct, and twice. */
void attn_s2s_data_free(attn_s2s_data *d);

/* Appends one example given as ids (copied): src [n_src] with n_src >= 1,
 * tgt [n_tgt] with n_tgt >= 0 (tgt may be NULL when n_tgt is 0: an input to
 * translate). Ids are not checked against a vocabulary, but the special ids
 * pad, bos and eos may not appear (they would corrupt the padding). Amortised
 * O(n_src + n_tgt); storage grows by doubling.
 * Errors: ATTN_ERR_INVALID_ARG (NULL d or src, n_src < 1 or n_src > 2^30,
 * n_tgt < 0 or > 2^30, tgt NULL with n_tgt > 0, a special id in src or tgt),
 * ATTN_ERR_OOM. On error *d is unchanged. */
attn_status attn_s2s_data_add_ids(attn_s2s_data *d, const int32_t *src, int64_t n_src,
                                  const int32_t *tgt, int64_t n_tgt);

/* Encodes the NUL-terminated texts with the vocabularies (text.h: no
 * <bos>/<eos> added; unknown code points become <unk>) and appends the
 * example. tgt may be NULL (no target; tgt_vocab is then unused and may be
 * NULL). Errors: those of attn_s2s_data_add_ids (a source text that encodes
 * to no token is ATTN_ERR_INVALID_ARG), those of attn_vocab_encode. */
attn_status attn_s2s_data_add(attn_s2s_data *d, const attn_vocab *src_vocab, const char *src,
                              const attn_vocab *tgt_vocab, const char *tgt);

/* Keeps the first n examples (0 <= n <= d->n; a larger n changes nothing)
 * and recomputes the maxima and sums. The storage is kept, so refilling is
 * free of allocations up to the previous size: a training loop that draws
 * fresh examples every step calls attn_s2s_data_truncate(d, 0) and adds. */
void attn_s2s_data_truncate(attn_s2s_data *d, int64_t n);

/* ---- batches ------------------------------------------------------------------- */

/* Sizes of a batch made by attn_s2s_batch_make. */
typedef struct attn_s2s_batch_info {
    int64_t batch;      /* B */
    int64_t src_width;  /* S: the longest source of the batch */
    int64_t tgt_width;  /* T: the longest target of the batch + 1 */
    int64_t src_tokens; /* sum of the source lengths (non-pad entries of src) */
    int64_t tgt_tokens; /* sum of the target lengths + B (non-pad entries of tgt_out) */
} attn_s2s_batch_info;

/* Builds the batch of examples idx[0 .. b) (in that order; an index may
 * repeat) as new I32 tensors in ctx's arena, laid out as described at the
 * top of this file; the tensors do not require gradients. info may be NULL.
 * The only memory used is the arena: about 4 * b * (S + 2 T + 1) bytes.
 * Errors: ATTN_ERR_INVALID_ARG (NULL ctx, d, idx or out; b < 1; an index
 * outside [0, d->n)), ATTN_ERR_OOM (arena full), also recorded in the
 * context. On error *out is zeroed. */
attn_status attn_s2s_batch_make(attn_ctx *ctx, const attn_s2s_data *d, const int64_t *idx,
                                int64_t b, attn_s2s_batch *out, attn_s2s_batch_info *info);

/* ---- the sampler ----------------------------------------------------------------- */

/* Epoch e (0, 1, ...) of a sampler over n examples, with batch size B and
 * pool size P = B * pool_batches:
 *   1. the examples 0 .. n-1 are shuffled (Fisher-Yates, the generator
 *      seeded with `seed`, its counter starting at e * 2^32, so epochs draw
 *      disjoint random words);
 *   2. each run of P consecutive examples of that order (the last one may be
 *      shorter) is sorted by (source length, target length), stably: examples
 *      of similar lengths share a batch, and padding is small;
 *   3. the order is cut into n_batches = ceil(n / B) batches of B consecutive
 *      examples (the last one has n - (n_batches - 1) B); since P is a
 *      multiple of B, a batch never spans two pools;
 *   4. the batches are shuffled (Fisher-Yates, the same generator), so long
 *      and short batches alternate.
 * Every example is in exactly one batch of every epoch. pool_batches = 1
 * gives plain shuffled minibatches (no bucketing); a pool_batches with
 * P >= n sorts the whole epoch by length before cutting it.
 *
 * The sampler reads the example lengths from `data`, which must stay alive
 * and keep its first n examples while the sampler is used. Its memory (2n +
 * n_batches int64) is allocated by attn_s2s_sampler_init; drawing batches
 * allocates nothing. */
typedef struct attn_s2s_sampler {
    const attn_s2s_data *data; /* not owned */
    int64_t n;                 /* examples (data->n at init) */
    int64_t batch_size;        /* B */
    int64_t pool_batches;      /* P / B */
    uint64_t seed;
    int64_t n_batches;         /* per epoch: ceil(n / B) */
    int64_t epoch;             /* the epoch planned in order/batch_order (-1: none yet) */
    int64_t position;          /* batches handed out since epoch 0, batch 0 */
    int64_t *order;            /* [n]: examples of the planned epoch, batch after batch */
    int64_t *batch_order;      /* [n_batches]: batch k of the epoch is number batch_order[k] */
    int64_t *scratch_;         /* [n]: the merge buffer of the length sort */
} attn_s2s_sampler;

/* Prepares a sampler over data's first data->n examples (n >= 1). No epoch
 * is planned yet: the first attn_s2s_sampler_next plans epoch 0.
 * Errors: ATTN_ERR_INVALID_ARG (NULL pointer, no example, batch_size < 1,
 * pool_batches < 1), ATTN_ERR_OOM. On error *s is zeroed. */
attn_status attn_s2s_sampler_init(attn_s2s_sampler *s, const attn_s2s_data *data,
                                  int64_t batch_size, int64_t pool_batches, uint64_t seed);

/* Frees and zeroes *s; safe on NULL, on a zeroed struct, and twice. */
void attn_s2s_sampler_free(attn_s2s_sampler *s);

/* The next batch of an initialised sampler: *idx receives a pointer to its *b example indices (into
 * s->order: valid until the next call that plans another epoch), and the
 * position advances; a new epoch is planned when the previous one is
 * exhausted. Returns the epoch the batch belongs to; -1 (with *idx NULL and
 * *b 0 where given) for a NULL argument or a sampler not initialised. */
int64_t attn_s2s_sampler_next(attn_s2s_sampler *s, const int64_t **idx, int64_t *b);

/* Sets the position: the next batch is number position % n_batches of epoch
 * position / n_batches, exactly as if `position` batches had been drawn
 * (resuming a run at its step). A negative position counts as 0; a NULL
 * sampler is left alone. */
void attn_s2s_sampler_seek(attn_s2s_sampler *s, int64_t position);

#ifdef __cplusplus
}
#endif
#endif
