/* attn/text.h: text data sets and tokenisers for sequence-to-sequence models.
 *
 * Four parts, each usable alone (docs/data.md has the details and the
 * provenance of the real data):
 *
 *   splits      the one split rule of attn's text data sets: a hash of a key
 *               (the source sentence, or a date and its format) picks train,
 *               valid or test, so a split never depends on file order or on
 *               the size of the data set.
 *   dates       a generated date-normalisation task ("3rd of March 1997" ->
 *               "1997-03-03"), reproducible from (seed, index), with the true
 *               alignment of every output character.
 *   gettext     a strict reader of GNU .mo catalogs, the cleaning rules of
 *               parallel sentence pairs, and the builder of the English ->
 *               German/French TSV splits from Debian's catalogs.
 *   tokenisers  attn_vocab: characters or a subword BPE learned on the
 *               training split, one API for both: text -> int32 ids -> text.
 *
 * Strings are UTF-8 and NUL-terminated unless a length is given. Nothing here
 * prints; errors return a status with attn_last_error() naming the function,
 * the file or value, and what was expected.
 */
#ifndef ATTN_TEXT_H
#define ATTN_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- splits ------------------------------------------------------------- */

typedef enum attn_data_split {
    ATTN_SPLIT_TRAIN = 0,
    ATTN_SPLIT_VALID = 1,
    ATTN_SPLIT_TEST = 2,
    ATTN_SPLIT_COUNT
} attn_data_split;

/* "train", "valid", "test" ("?" for anything else). */
const char *attn_data_split_name(attn_data_split split);

/* FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t attn_fnv1a64(const void *bytes, size_t n);

/* The split of a key: bucket = (attn_fnv1a64(key) >> 32) % 100; buckets 0-89
 * are train, 90-94 valid, 95-99 test. The high half is used because the low
 * bits of FNV-1a mix poorly (its lowest bit is the parity of the keys'
 * lowest bits). A pure function of the bytes: fixed across machines, file
 * orders and data set sizes. */
attn_data_split attn_data_split_of(const void *key, size_t n);

/* ---- the date-normalisation task ----------------------------------------- */

/* Dates are drawn uniformly from ATTN_DATE_YEAR_MIN-01-01 to
 * ATTN_DATE_YEAR_MAX-12-31 (36,525 days). Two-digit years are unambiguous in
 * that range: 50-99 are 19xx, 00-49 are 20xx. */
#define ATTN_DATE_YEAR_MIN 1950
#define ATTN_DATE_YEAR_MAX 2049
#define ATTN_DATE_FORMATS 20    /* attn_date_format_name lists them */
#define ATTN_DATE_CASINGS 3     /* 0 as written ("Tuesday, July 4 2000"), 1 lower, 2 UPPER */
#define ATTN_DATE_SOURCE_MAX 48 /* bytes of source, NUL included; every format fits */
#define ATTN_DATE_TARGET_LEN 10 /* "yyyy-mm-dd" */

typedef enum attn_date_field {
    ATTN_DATE_SEP = 0, /* the '-' of the target: aligned to nothing */
    ATTN_DATE_YEAR = 1,
    ATTN_DATE_MONTH = 2,
    ATTN_DATE_DAY = 3
} attn_date_field;

/* One example. The source is ASCII, so its bytes are its characters. */
typedef struct attn_date_example {
    char source[ATTN_DATE_SOURCE_MAX];     /* NUL-terminated */
    int source_len;                        /* strlen(source) */
    char target[ATTN_DATE_TARGET_LEN + 1]; /* "yyyy-mm-dd", NUL-terminated */
    int year, month, day;                  /* the date (month 1-12, day 1-31) */
    int weekday;                           /* 0 = Monday ... 6 = Sunday */
    int format;                            /* 0 .. ATTN_DATE_FORMATS - 1 */
    int casing;                            /* 0 .. ATTN_DATE_CASINGS - 1 */
    attn_data_split split;                 /* attn_date_split of (date, format) */
    /* The true alignment: target character i belongs to field[i]; the same
     * field is written at source bytes [span_begin[i], span_end[i]): the
     * year digits ("97" of "03/03/97"), the month ("March", "mar", "03"),
     * or the day digits without an ordinal suffix ("3" of "3rd"). For '-'
     * both are -1. A weekday name is part of no field (it is redundant). */
    attn_date_field field[ATTN_DATE_TARGET_LEN];
    int span_begin[ATTN_DATE_TARGET_LEN], span_end[ATTN_DATE_TARGET_LEN];
} attn_date_example;

/* A short description of format `format` ("D Month YYYY", ...); NULL when
 * out of range. */
const char *attn_date_format_name(int format);

/* Renders a date in a format and casing into *ex (every field filled, split
 * included). Errors: ATTN_ERR_INVALID_ARG (ex NULL; a date that does not
 * exist or lies outside the year range; format or casing out of range). */
attn_status attn_date_render(int year, int month, int day, int format, int casing,
                             attn_date_example *ex);

/* The split of a (date, format) pair: attn_data_split_of the 12 bytes
 * "yyyy-mm-dd/F" with F = 'a' + format. The casing is not part of the key, so
 * "March 3, 1997" and "MARCH 3, 1997" always fall in the same split. */
attn_data_split attn_date_split(int year, int month, int day, int format);

/* Example number `index` of the stream `seed`: a pure function of the two.
 * The date, format and casing come from one Philox4x32-10 block (counter =
 * index, key = seed, a constant tag in the third counter word): day =
 * (w0 * 36525) >> 32, format = (w1 * 20) >> 32, casing = 0 if w2 < 0.6 * 2^32,
 * else 1 if w2 < 0.8 * 2^32, else 2. `ex` must not be NULL. */
void attn_date_example_at(uint64_t seed, uint64_t index, attn_date_example *ex);

/* The next example of the stream `seed` that lies in `split`, starting at
 * index *cursor; on return *cursor is one past the index used, so repeated
 * calls walk the split's examples in order (a `split` that is not one of
 * the three takes the next example of any split). Both pointers must be
 * non-NULL.
 * About 1.1 draws per train example and 20 per valid or test example. */
void attn_date_next(uint64_t seed, attn_data_split split, uint64_t *cursor, attn_date_example *ex);

/* ---- gettext catalogs ---------------------------------------------------- */

/* One message of a catalog. The strings point into the attn_mo's storage
 * and are NUL-terminated. */
typedef struct attn_mo_entry {
    const char *context;      /* the msgctxt (before 0x04 in the msgid), or NULL */
    const char *msgid;        /* the (singular) source text, context stripped */
    const char *msgid_plural; /* the plural source (after the NUL), or NULL */
    const char *msgstr;       /* the translation; for plurals its first form */
    int n_forms;              /* msgstr forms: 1 + the NULs inside the msgstr */
} attn_mo_entry;

/* A catalog in memory. */
typedef struct attn_mo {
    int64_t n;              /* messages, the header excluded */
    attn_mo_entry *entries; /* n entries in file order; owned */
    const char *header;     /* msgstr of the empty msgid ("" when absent) */
    char charset[32];       /* from the header's "charset=" ("UTF-8" when absent) */
    int big_endian;         /* byte order of the file */
    uint32_t revision;      /* the file's format revision (major << 16 | minor) */
    char *storage_;         /* owned: the file's bytes, with separators made NULs */
} attn_mo;

/* Parses a .mo image of `size` bytes (copied; `bytes` is not kept). `name`
 * (may be NULL) names it in messages. The layout, all u32 in the file's byte
 * order:
 *   0 magic 0x950412de (read as little- or big-endian), 4 revision (major 0
 *   or 1), 8 N, 12 offset of the msgid table, 16 offset of the msgstr table,
 *   20 hash table size, 24 its offset; each table is N (length, offset)
 *   pairs; string i is `length` bytes at `offset`, followed by a NUL.
 * Entry 0 is the header when its msgid is empty. In a msgid, bytes before an
 * 0x04 are the context and a NUL separates singular and plural.
 * Errors: ATTN_ERR_INVALID_ARG (bytes or out NULL), ATTN_ERR_FORMAT (shorter
 * than the 28-byte header, bad magic, unknown major revision, a table or
 * string outside the file, a string without its NUL, a msgid with more than
 * one NUL or context separator, an empty msgid other than entry 0's),
 * ATTN_ERR_OOM. On error *out is empty (attn_mo_free is harmless). */
attn_status attn_mo_parse(const void *bytes, size_t size, const char *name, attn_mo *out);

/* Reads and parses the file at `path`. Errors as attn_mo_parse, plus
 * ATTN_ERR_IO (cannot open or read, not a regular file). */
attn_status attn_mo_load(const char *path, attn_mo *out);

/* Frees the storage and empties *mo. Safe on NULL, on an emptied or
 * zero-initialised struct, and twice. */
void attn_mo_free(attn_mo *mo);

/* ---- cleaning of parallel pairs ----------------------------------------- */

/* Why attn_clean_pair rejected a pair: the first rule, in this order, that
 * either side breaks. */
typedef enum attn_clean_reason {
    ATTN_CLEAN_OK = 0,
    ATTN_CLEAN_EMPTY,       /* a side is empty or only spaces (untranslated) */
    ATTN_CLEAN_ENCODING,    /* invalid UTF-8, or a control character other than \t \n \r */
    ATTN_CLEAN_NEWLINE,     /* a newline, carriage return or tab */
    ATTN_CLEAN_PLACEHOLDER, /* % { } $ (printf, Python, shell-style placeholders) */
    ATTN_CLEAN_MARKUP,      /* < or > (tags), or an entity "&name;" / "&#" */
    ATTN_CLEAN_URL,         /* "://", "www." (any case), or an e-mail address (x@y) */
    ATTN_CLEAN_OPTION,      /* a command option: a token "-x..." (x a letter) or "--..." */
    ATTN_CLEAN_ACCEL,       /* more than one accelerator marker, or a stray '_' or '~' */
    ATTN_CLEAN_TOKENS,      /* fewer than 3 or more than 60 tokens on a side */
    ATTN_CLEAN_RATIO,       /* target / source length in characters outside [0.4, 2.5] */
    ATTN_CLEAN_SAME,        /* source and target are equal */
    ATTN_CLEAN_REASON_COUNT
} attn_clean_reason;

#define ATTN_CLEAN_MIN_TOKENS 3
#define ATTN_CLEAN_MAX_TOKENS 60
#define ATTN_CLEAN_MIN_RATIO 0.4
#define ATTN_CLEAN_MAX_RATIO 2.5

/* "ok", "empty", "encoding", ... ("?" out of range). */
const char *attn_clean_reason_name(attn_clean_reason reason);

/* Normalises and checks one (source, target) pair. Each side is normalised
 * first: the no-break, narrow no-break and thin spaces (U+00A0, U+202F,
 * U+2009) become ' ', runs of spaces become one, and the ends are trimmed;
 * then one menu accelerator marker is removed: a '_' (GTK) or '~'
 * (LibreOffice) directly before a letter or digit ("~Close" -> "Close",
 * "E_xit" -> "Exit"), or a '&' (Qt) that starts a word and precedes a letter
 * or digit ("&Close"); a side with two such markers is rejected
 * (ATTN_CLEAN_ACCEL), and so is a '_' or '~' left afterwards (identifiers,
 * "~/path"). Any other '&' is text ("Black & White", "AT&T").
 * Tokens are the runs of non-space characters; lengths are counted in code
 * points. On ATTN_CLEAN_OK the normalised sides are written to src_out and
 * tgt_out, which hold `cap` bytes each (strlen of the input + 1 suffices);
 * they are left unspecified otherwise. A NULL argument, or a cap too small,
 * is ATTN_CLEAN_EMPTY. */
attn_clean_reason attn_clean_pair(const char *src, const char *tgt, char *src_out, char *tgt_out,
                                  size_t cap);

/* ---- the gettext parallel data set --------------------------------------- */

/* What attn_gettext_build did. */
typedef struct attn_gettext_stats {
    int64_t catalogs;         /* .mo files of the language that were read */
    int64_t catalogs_skipped; /* dropped: iso_* domain, unsupported charset, malformed */
    int64_t entries;          /* messages read, headers excluded */
    /* Messages by the first cleaning rule they broke; [ATTN_CLEAN_OK] are
     * the clean pairs before deduplication. */
    int64_t cleaned[ATTN_CLEAN_REASON_COUNT];
    int64_t duplicates;              /* clean pairs dropped by deduplication */
    int64_t pairs[ATTN_SPLIT_COUNT]; /* pairs written per split */
} attn_gettext_stats;

/* Builds the English -> `lang` data set from every catalog found under the
 * directories mo_dirs[0 .. n_dirs-1] (searched recursively, symbolic links to
 * directories not followed): a file DOMAIN.mo in a directory LC_MESSAGES
 * whose parent is named exactly `lang` ("de" takes .../de/LC_MESSAGES/x.mo,
 * not de_CH). Domains starting with "iso_" (country and language names) are
 * dropped; catalogs in UTF-8, ASCII or ISO-8859-1 (converted) are read,
 * others skipped. Every message gives the pair (msgid, msgstr) (singular
 * forms, context stripped), cleaned by attn_clean_pair. Deduplication keeps
 * one target per source: the target of the most messages, ties broken by
 * the bytewise smallest target. The split is attn_data_split_of(source).
 * Writes, in out_dir/en-LANG/ (created as needed):
 *   train.tsv valid.tsv test.tsv   "source\ttarget\n" per pair, no header,
 *                                  ordered by (attn_fnv1a64(source), source),
 *                                  so the files do not depend on the order
 *                                  in which catalogs were found
 *   catalogs.tsv                   per catalog: path, domain, status ("ok" or
 *                                  why it was skipped), messages, clean pairs
 * The splits depend only on the contents of the catalogs selected, not on
 * their paths or the order in which they are found. `stats` may be NULL.
 * Errors: ATTN_ERR_INVALID_ARG (NULL or empty argument; lang with '/' or
 * longer than 31 bytes; out_dir longer than 3000 bytes), ATTN_ERR_IO (a directory cannot be read,
 * an output cannot be written), ATTN_ERR_FORMAT (no catalog of `lang` was found), ATTN_ERR_OOM. A
 * malformed catalog is skipped and listed, not an error. */
attn_status attn_gettext_build(const char *const *mo_dirs, int n_dirs, const char *lang,
                               const char *out_dir, attn_gettext_stats *stats);

/* Parallel pairs loaded from a TSV file written by attn_gettext_build. */
typedef struct attn_pairs {
    int64_t n;
    const char **src; /* n NUL-terminated sources */
    const char **tgt; /* n NUL-terminated targets */
    char *storage_;   /* owned */
} attn_pairs;

/* Reads "source\ttarget\n" lines (the last newline optional). Strict: each
 * line has exactly one tab, both sides non-empty, valid UTF-8, no '\r'.
 * Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO, ATTN_ERR_FORMAT (naming the
 * line), ATTN_ERR_OOM. On error *out is empty. */
attn_status attn_pairs_load(const char *path, attn_pairs *out);

/* Frees and empties *pairs; safe on NULL, an emptied struct, and twice. */
void attn_pairs_free(attn_pairs *pairs);

/* ---- tokenisers ---------------------------------------------------------- */

/* A vocabulary maps text to token ids and back. Two kinds share one API:
 *
 *   ATTN_VOCAB_CHAR  one token per Unicode code point seen in the training
 *                    texts (at least min_count times).
 *   ATTN_VOCAB_BPE   byte-pair encoding (Sennrich et al., 2016) over code
 *                    points, learned on the training texts.
 *
 * Ids 0-3 are the specials; the alphabet follows in increasing code point
 * order, then (BPE) one token per merge, in the order learned. Encoding does
 * not add <bos> or <eos>: the model does. A code point outside the alphabet
 * encodes as <unk>. Decoding writes each token's text, skips <pad>, <bos>
 * and <eos>, and writes <unk> as the five characters "<unk>". So
 * decode(encode(t)) == t exactly for every text t whose code points are all
 * in the alphabet (invalid UTF-8 bytes encode as <unk> too).
 *
 * BPE: a text is first cut into chunks, each a run of letters, a run of
 * digits, or a run of other non-space characters, with at most one space in
 * front of it: "Open the file." -> "Open" " the" " file" "."; a space that
 * does not precede a run is a chunk of its own. Merges never cross chunks,
 * so a word carries its leading space (as in GPT-2) instead of an
 * end-of-word marker: spacing is part of the tokens and decoding is exact.
 * Letters are ASCII letters and every code point >= 0x80 except the Latin-1
 * punctuation and symbols (U+00A1-U+00BF, U+00D7, U+00F7) and the general
 * punctuation block U+2000-U+206F (so "«", "’" and "…" are not letters).
 * Learning: each step merges the adjacent pair of tokens with the highest
 * count over the training chunks (counted with their frequencies, every
 * adjacent position counted); ties go to the pair with the smallest (left
 * id, right id). The merge replaces the pair's occurrences left to right.
 * Learning stops after n_merges steps or when no pair occurs twice.
 * Encoding a chunk repeats: take the adjacent pair with the lowest merge
 * rank and merge its occurrences left to right, which reproduces the
 * segmentation of training.
 *
 * A vocabulary is read-only once built or loaded: encode, decode and the
 * lookups may run on several threads at once. */
typedef struct attn_vocab attn_vocab;

typedef enum attn_vocab_kind { ATTN_VOCAB_CHAR = 0, ATTN_VOCAB_BPE = 1 } attn_vocab_kind;

enum {
    ATTN_TOKEN_PAD = 0, /* padding; also what decoding skips */
    ATTN_TOKEN_BOS = 1, /* begin of sequence (decoder input at step 0) */
    ATTN_TOKEN_EOS = 2, /* end of sequence */
    ATTN_TOKEN_UNK = 3, /* a code point outside the alphabet */
    ATTN_TOKEN_SPECIALS = 4
};

/* A character vocabulary from texts[0 .. n_texts-1]: every code point seen
 * at least min_count times (min_count < 1 counts as 1). Errors:
 * ATTN_ERR_INVALID_ARG (texts or out NULL, a NULL text), ATTN_ERR_OOM. */
attn_status attn_vocab_build_chars(const char *const *texts, int64_t n_texts, int min_count,
                                   attn_vocab **out);

/* Learns a BPE vocabulary of at most n_merges merges on texts (see above);
 * the alphabet is every code point seen at least min_count times. The size
 * is ATTN_TOKEN_SPECIALS + alphabet + merges learned. Deterministic: the
 * same texts give the same merges, whatever their order. Errors:
 * ATTN_ERR_INVALID_ARG (NULL argument, n_merges < 0 or > 1,000,000),
 * ATTN_ERR_OOM. */
attn_status attn_bpe_learn(const char *const *texts, int64_t n_texts, int n_merges, int min_count,
                           attn_vocab **out);

void attn_vocab_free(attn_vocab *vocab); /* NULL is fine */

attn_vocab_kind attn_vocab_kind_of(const attn_vocab *vocab);
int attn_vocab_size(const attn_vocab *vocab); /* ids are 0 .. size-1 */
int attn_vocab_alphabet_size(const attn_vocab *vocab);
int attn_bpe_merge_count(const attn_vocab *vocab); /* 0 for ATTN_VOCAB_CHAR */

/* Merge number `rank` (0 = first learned): the ids of its left and right
 * tokens; its own id is ATTN_TOKEN_SPECIALS + alphabet + rank. Errors:
 * ATTN_ERR_INVALID_ARG (not a BPE vocabulary, rank out of range, NULL). */
attn_status attn_bpe_merge(const attn_vocab *vocab, int rank, int32_t *left, int32_t *right);

/* The text of token `id` ("<pad>", "a", " the"), for labels of plots; NULL
 * when id is out of range. Owned by the vocabulary. */
const char *attn_vocab_piece(const attn_vocab *vocab, int32_t id);

/* The id of the token whose text is exactly `piece`, or -1. */
int32_t attn_vocab_find(const attn_vocab *vocab, const char *piece);

/* Encodes `len` bytes of text (no NUL needed; len may be 0) into ids.
 * *n_ids receives the number of ids of the whole text. With ids NULL and cap
 * 0 nothing is written (a length query). Errors: ATTN_ERR_INVALID_ARG (NULL
 * vocab, text or n_ids; ids NULL with cap > 0; cap < *n_ids, in which case
 * the first cap ids are written). */
attn_status attn_vocab_encode(const attn_vocab *vocab, const char *text, size_t len, int32_t *ids,
                              size_t cap, size_t *n_ids);

/* Decodes n ids into text, NUL-terminated; *len receives the length without
 * the NUL. With text NULL and cap 0 nothing is written (a length query).
 * Errors: ATTN_ERR_INVALID_ARG (NULL vocab or len, ids NULL with n > 0, an id
 * out of range, text NULL with cap > 0, cap < *len + 1, in which case the
 * text is truncated and still NUL-terminated). */
attn_status attn_vocab_decode(const attn_vocab *vocab, const int32_t *ids, size_t n, char *text,
                              size_t cap, size_t *len);

/* Saves to a small text file:
 *   "attn-vocab 1 char|bpe A M"  (A = alphabet size, M = merges)
 *   A lines: the code point in hex (the character follows after a tab when
 *            printable, for reading; the loader ignores it)
 *   M lines: "left right" token ids of each merge, in rank order
 * Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO. */
attn_status attn_vocab_save(const attn_vocab *vocab, const char *path);

/* Loads a file written by attn_vocab_save. Strict: code points must be
 * plain hex digits (no 0x, sign or spaces), increasing valid scalar values
 * (not surrogates), each merge must refer to earlier tokens (not specials),
 * repeat no earlier merge and make no piece over 1 KiB (64 MiB in all).
 * Errors: ATTN_ERR_INVALID_ARG, ATTN_ERR_IO, ATTN_ERR_FORMAT (naming the
 * file and the line), ATTN_ERR_OOM. */
attn_status attn_vocab_load(const char *path, attn_vocab **out);

#ifdef __cplusplus
}
#endif
#endif
