/* deb_graph.h: Debian's package graph as a node-classification data set
 * (src/data/deb_graph.c, docs/graph_attention.md "Node classification").
 *
 * Read from an APT "Packages" index (the uncompressed text of
 * /var/lib/apt/lists/..._Packages.lz4; scripts/get_debian_graph.sh makes
 * data/debgraph/Packages):
 *   nodes    the packages (a name seen twice keeps its first stanza);
 *   label    the package's Section, without its archive area ("contrib/net"
 *            is "net"); sections are numbered in name order;
 *   features the words of the short description (the Description line:
 *            lower-cased runs of letters and digits), at most max_words
 *            distinct ones that are in the vocabulary, in order; the
 *            vocabulary is the vocab_size most frequent description words
 *            over all packages (ties by word), ids 1 .. V (0 pads);
 *   edges    Depends and Pre-Depends, every alternative of "a | b", names
 *            without version or architecture qualifiers, only names that
 *            are packages of the index; the graph is made undirected (a
 *            package attends to what it depends on and to what depends on
 *            it) and every node has a self-loop; CSR, rows sorted, no
 *            duplicates (graph_attention.h's layout);
 *   split    by a hash of the name (FNV-1a 64): 80% train, 10% valid, 10%
 *            test (0, 1, 2), the same on every machine for the same index.
 * Debtags (the Tag field) are not read: they restate the section.
 * Errors: ATTN_ERR_IO (the file), ATTN_ERR_FORMAT (no package, a stanza
 * without Package, a line over 1 MB), ATTN_ERR_INVALID_ARG (options),
 * ATTN_ERR_OOM. Nothing prints. */
#ifndef ATTN_DEB_GRAPH_H
#define ATTN_DEB_GRAPH_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_deb_graph_opts {
    int max_words;  /* features per package (default 16) */
    int vocab_size; /* description words kept (default 4000) */
} attn_deb_graph_opts;

typedef struct attn_deb_graph {
    int64_t n;          /* packages */
    int64_t n_edges;    /* CSR edges, self-loops included */
    int n_sections, vocab, max_words;
    char **names;       /* [n] package names */
    char **sections;    /* [n_sections] section names, sorted */
    char **words;       /* [vocab + 1]: words[0] = "" (padding) */
    int32_t *label;     /* [n] section index */
    int32_t *split;     /* [n] 0 train, 1 valid, 2 test */
    int32_t *feat;      /* [n, max_words] word ids, 0-padded */
    int64_t *row_ptr;   /* [n + 1] */
    int32_t *col;       /* [n_edges] */
} attn_deb_graph;

attn_status attn_deb_graph_load(const char *path, const attn_deb_graph_opts *opts,
                                attn_deb_graph *out);
void attn_deb_graph_free(attn_deb_graph *g);

#ifdef __cplusplus
}
#endif
#endif
