/* op_table.c: the dispatch table, generated from op_table.h. */
#include "internal.h"
#include "attn/info.h"

const attn__op_info attn__ops[ATTN_OP_COUNT] = {
#define ATTN__ROW(E, n, a, r, ga, gr) \
    [ATTN_OP_##E] = {#n, attn__##n##_forward, attn__##n##_backward, attn__##n##_ref, a, r, ga, gr},
    ATTN_OP_LIST(ATTN__ROW)
#undef ATTN__ROW
};

int attn_op_count(void) { return ATTN_OP_COUNT; }

const char *attn_op_name(int index) {
    return index >= 0 && index < ATTN_OP_COUNT ? attn__ops[index].name : NULL;
}
