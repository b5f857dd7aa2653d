/* attn/wordpiece.h: BERT's uncased WordPiece tokenizer (the tokenizer of
 * all-MiniLM-L6-v2 and bert-base-uncased), the same token ids as Hugging
 * Face's BertTokenizerFast with do_lower_case. docs/minilm.md has the rules.
 *
 * A text (UTF-8) becomes [CLS] pieces [SEP]:
 *   0. the special tokens [PAD], [UNK], [CLS], [SEP], [MASK] found in the
 *      text as they are (exact case, anywhere) are kept as single tokens
 *      (Hugging Face's added tokens); the rest goes through steps 1-2;
 *   1. basic tokenizer, character by character: U+0000, U+FFFD and control
 *      characters (categories Cc, Cf, Cs, Co but TAB, LF, CR; unassigned
 *      code points are kept) are dropped; whitespace (TAB, LF, CR, Zs,
 *      U+2028, U+2029) separates words; a CJK ideograph is a word of its
 *      own; every other character is decomposed (NFD), its nonspacing marks
 *      (Mn) dropped and the rest lower-cased; a punctuation character
 *      (ASCII punctuation or category P*) of the result is a word of its
 *      own. Invalid UTF-8 bytes count as U+FFFD (dropped). The Unicode
 *      tables are generated from Python's unicodedata, with the answers of
 *      Hugging Face's tokenizers where its older tables differ (815 code
 *      points: tools/make_wordpiece_unicode.py, docs/minilm.md).
 *   2. WordPiece, word by word: a word of more than 100 characters is
 *      [UNK]; otherwise the longest vocabulary entry that starts the word,
 *      then the longest "##"-prefixed entry that continues it, and so on;
 *      if some position has no match, the whole word is [UNK].
 *   3. truncation: at most max_len tokens in all, so the first max_len - 2
 *      pieces are kept between [CLS] and [SEP].
 *
 * Nothing here prints; errors return a status with attn_last_error().
 */
#ifndef ATTN_WORDPIECE_H
#define ATTN_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_wordpiece attn_wordpiece;

/* The longest word WordPiece splits (in characters); longer words are [UNK]. */
#define ATTN_WORDPIECE_MAX_WORD_CHARS 100

/* A tokenizer from a vocab.txt: one token per line (LF or CRLF), id = line
 * number from 0. It must hold [PAD], [UNK], [CLS] and [SEP]; a token seen
 * twice keeps its first id. Errors: ATTN_ERR_INVALID_ARG (NULL),
 * ATTN_ERR_IO, ATTN_ERR_FORMAT (empty, a line with a NUL, an empty line, a
 * special token missing, more than 2^24 lines), ATTN_ERR_OOM. */
attn_status attn_wordpiece_load(const char *vocab_path, attn_wordpiece **out);
/* The same from the n bytes of a vocab.txt in memory. */
attn_status attn_wordpiece_from_text(const char *text, size_t n, attn_wordpiece **out);
void attn_wordpiece_free(attn_wordpiece *wp); /* NULL is fine */

int32_t attn_wordpiece_size(const attn_wordpiece *wp);
/* The id of a token (exact bytes), or -1. */
int32_t attn_wordpiece_id(const attn_wordpiece *wp, const char *token);
/* The token of an id (owned by wp), or NULL outside [0, size). */
const char *attn_wordpiece_token(const attn_wordpiece *wp, int32_t id);
/* The special ids: [PAD], [UNK], [CLS], [SEP]. */
int32_t attn_wordpiece_pad_id(const attn_wordpiece *wp);
int32_t attn_wordpiece_unk_id(const attn_wordpiece *wp);
int32_t attn_wordpiece_cls_id(const attn_wordpiece *wp);
int32_t attn_wordpiece_sep_id(const attn_wordpiece *wp);

/* Encodes the n bytes of text (no NUL needed; a NUL byte is U+0000 and
 * dropped) into ids[0 .. *n_ids - 1] = [CLS] pieces [SEP], at most max_len
 * ids (ids has room for max_len). *n_pieces, when not NULL, receives the
 * number of pieces before truncation (so truncation happened iff
 * *n_pieces > max_len - 2). Errors: ATTN_ERR_INVALID_ARG (NULL, max_len <
 * 2, n > 2^30), ATTN_ERR_OOM. */
attn_status attn_wordpiece_encode(const attn_wordpiece *wp, const char *text, size_t n,
                                  int32_t max_len, int32_t *ids, int32_t *n_ids,
                                  int64_t *n_pieces);

/* The basic tokenizer alone (step 1, no special tokens): the words of text as NUL-separated
 * UTF-8 in out (cap bytes; the words and a NUL after each); *n_words and
 * *n_bytes (bytes written) receive the counts. Errors: ATTN_ERR_INVALID_ARG,
 * ATTN_ERR_SHAPE (cap too small: *n_bytes receives the size needed),
 * ATTN_ERR_OOM. */
attn_status attn_wordpiece_basic(const char *text, size_t n, char *out, size_t cap,
                                 int64_t *n_words, size_t *n_bytes);

/* The Unicode version of the tables (e.g. "14.0.0"). */
const char *attn_wordpiece_unicode_version(void);

#ifdef __cplusplus
}
#endif
#endif
