/* caption_cmd.h: what the files of `attn caption` share (private to the
 * CLI): cmd_caption.c (train, eval, describe), caption_scenes.c (the frozen
 * encoder, the scene sets and their annotations, the held-out metrics) and
 * caption_picture.c (a scene with one attention panel per word, PNG). */
#ifndef ATTN_CLI_CAPTION_CMD_H
#define ATTN_CLI_CAPTION_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"
#include "attn/cnn.h"

/* The longest caption in tokens (the words and the end token). */
#define CAP_MAX_LEN (ATTN_SCENE_MAX_WORDS + 1)

/* The CNN's features say what is at a location, not where it is (a
 * convolution is translation-equivariant), and the captions name positions:
 * each annotation vector gets the location's coordinates x, y in (-1, 1)
 * as two more channels (as CoordConv does). docs/caption.md, "Decisions". */
#define CAP_POS_CHANNELS 2

typedef struct cap_encoder {
    attn_params *ps;
    attn_cnn *cnn;
    int stage;
    char path[1024];
} cap_encoder;

typedef struct cap_scenes {
    attn_scenes s;
    float *annot; /* [n, L, D] */
    int64_t L, D;
} cap_scenes;

typedef struct cap_eval_out {
    double bleu, exact, att_acc, loss;
    double bleu_novel, exact_novel, att_acc_novel;
    int64_t n, n_novel, att_words, att_words_novel;
    double seconds;
} cap_eval_out;

void cap_encoder_free(cap_encoder *e);

/* Loads the CNN (a file, or a directory holding model.safetensors) frozen;
 * stage < 0 picks the first stage whose map is 14x14. 0 or 1 (printed). */
int cap_encoder_load(const char *prog, const char *path, int stage, cap_encoder *e);

/* Annotations of scenes: out [n, L, D] floats (malloc'ed), D = C + 2. */
int cap_annotate(const char *prog, attn_ctx *ctx, const cap_encoder *e, const uint8_t *pixels, int64_t n,
                 float **out, int64_t *L_out, int64_t *D_out);

void cap_scenes_free(cap_scenes *s);

/* Makes n scenes of a split and their annotations (from the cache when
 * cache_dir holds them). */
int cap_make_scenes(const char *prog, attn_ctx *ctx, const cap_encoder *e, const char *data, attn_scene_split split,
                    int64_t n, uint64_t seed, const char *cache_dir, cap_scenes *out);

/* Tokens of scenes idx[0..B): [B, T + 1] (BOS words EOS PAD..); returns T + 1. */
int64_t cap_batch_tokens(const cap_scenes *s, const int64_t *idx, int64_t B, int32_t *tok);

attn_tensor *cap_batch_annot(attn_ctx *ctx, const cap_scenes *s, const int64_t *idx, int64_t B);

/* BLEU-4 and exact match of greedy captions; attention accuracy and loss
 * teacher-forced on the reference captions; the same on the novel scenes.
 * max_n > 0 evaluates the first max_n scenes only. */
int cap_eval_scenes(const char *prog, attn_ctx *ctx, attn_caption *m, const cap_scenes *s, int64_t max_n,
                    attn_caption_decode decode, cap_eval_out *o);

/* The picture of one scene: a title (generated and reference captions),
 * then the scene and one panel per generated word. */
int cap_write_picture(const char *prog, const char *path, const uint8_t *img, const int32_t *ids, const float *alphas,
                      int64_t L, const char *ref);

#endif
