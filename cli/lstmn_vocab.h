/* lstmn_vocab.h: the words of `attn lstmn` (cli/cmd_lstmn.c): a verse text
 * split into words, the vocabulary (a string -> id table with counts),
 * encoding a split with it, and its file (one word per line in id order).
 * Private to the CLI. */
#ifndef ATTN_CLI_LSTMN_VOCAB_H
#define ATTN_CLI_LSTMN_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"
#include "attn/lm_data.h"

#define LSTMN_UNK 0 /* the ids of <unk> and <eos> */
#define LSTMN_EOS 1
#define LSTMN_MAX_WORD 64 /* longer words are cut */

/* A string -> id table (open addressing, FNV-1a) with counts. */
typedef struct lstmn_vocab {
    char **words;
    int64_t *count;
    int32_t *slot; /* -1 empty, else index into words */
    int64_t n, cap, nslot;
    int oom;
} lstmn_vocab;

/* One text's words: a verse line (optional blanks, the verse number, the
 * text) gives its words in lower case (ASCII letters, with an apostrophe
 * between two letters kept: "aaron's"), each of . , ; : ? ! ( ) as a token of
 * its own, and <eos> at its end. Lines that do not start with a blank (the
 * "Book N" headings) and blank lines give nothing. fn(word, len, user) is
 * called per token ("<eos>" for the end); it returns 0, or nonzero to stop.
 * Returns 0, or fn's nonzero value. */
int lstmn_word_split(const char *text, size_t n, int (*fn)(const char *, size_t, void *),
                     void *user);

/* Frees the table's words and slots. */
void lstmn_vocab_free(lstmn_vocab *t);

/* The id of w (inserted with count 0 when add and absent), -1 if absent. */
int64_t lstmn_vocab_find(lstmn_vocab *t, const char *w, size_t len, int add);

/* The vocabulary: <unk>, <eos>, then the max_words - 2 most frequent words
 * of text (ties by byte order). */
int lstmn_vocab_learn(const char *text, size_t n, int64_t max_words, lstmn_vocab *v);

/* Reads DIR/NAME and encodes it; *unk receives the out-of-vocabulary count. */
int lstmn_encode_file(const char *dir, const char *name, lstmn_vocab *v, attn_lm_tokens *out,
                      int64_t *unk);

/* The vocabulary file: one word per line in id order. 0, or 1 (message printed). */
int lstmn_vocab_save(const lstmn_vocab *v, const char *path);

int lstmn_vocab_load(const char *path, lstmn_vocab *v);

#endif
