/* vision_cmd.h: what `attn vision`'s subcommands share (cmd_vision.c,
 * cmd_vision_maps.c): the Fashion-MNIST splits and the model loading. CLI
 * only; every function prints its own message on failure.
 */
#ifndef ATTN_CLI_VISION_CMD_H
#define ATTN_CLI_VISION_CMD_H

#include <stdint.h>

#include "attn/attn.h"

/* images at the end of the training file kept as the validation set */
#define N_VALID 5000

typedef struct fmnist {
    attn_idx train_x, train_y, test_x, test_y;
    int64_t n_train; /* images used for training: all but the last N_VALID */
} fmnist;

/* Loads the four IDX files of dir and checks their shapes and labels; 0 or
 * 1 (message printed). */
int vision_fmnist_load(const char *dir, fmnist *d);
void vision_fmnist_free(fmnist *d);

/* Image i of x (28x28 bytes) into out[784] in [0, 1], shifted by (dy, dx)
 * (zero fill) and mirrored left-right when flip. */
void vision_load_image(const attn_idx *x, int64_t i, float *out, int dy, int dx, int flip);

/* Loads DIR/model.safetensors into new parameters and a model that reads
 * Fashion-MNIST; 0 or 1 (printed). */
int vision_load_model(const char *dir, attn_params **ps, attn_cnn **m);

/* 1 for the blocks of vision_attention.h (they have a gamma to report), 0
 * without attention and for the modules of vision_modules.h. */
int vision_has_gamma(const attn_cnn *m);

/* attn vision maps (cli/cmd_vision_maps.c). */
int cmd_vision_maps(int argc, char **argv);

#endif
