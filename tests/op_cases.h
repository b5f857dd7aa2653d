/* op_cases.h: how the generic op tests (test_ops.c) turn a fixture case into
 * a call of a public op (op_cases.c).
 *
 * Every op of src/core/op_table.h has one entry in op_cases[] (same order as
 * the table), with
 *   - build:  reads case k of the op's fixture (tensors "c<k>.*", see
 *             docs/testing.md), creates the inputs as leaf tensors with
 *             opc_input and calls the public op; sets c->out.
 *   - errors: calls the op with wrong shapes, dtypes, attributes and NULL
 *             inputs and checks the status and the message (test.h CHECKs).
 * The table is generated from ATTN_OP_LIST, so an op added to the table
 * without build_<name> and errors_<name> in op_cases.c does not compile.
 */
#ifndef ATTN_TEST_OP_CASES_H
#define ATTN_TEST_OP_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "attn/attn.h"
#include "fixture.h"

#define OPC_MAX_INPUTS 10 /* txl_attention with span and persistent vectors has 9 */

typedef struct op_case {
    /* set by the caller */
    const atfx_file *fx;
    int k;           /* case number: the case's tensors are "c<k>.*" */
    attn_ctx *ctx;
    /* finite differences: when pert_input >= 0, element pert_elem (storage
     * order) of the pert_input-th input created gets the value pert_value */
    int pert_input;
    int64_t pert_elem;
    float pert_value;

    /* set by the builder (through opc_input) */
    int n_inputs;
    char names[OPC_MAX_INPUTS][32];          /* "x", "mask", "x0" ... */
    attn_tensor *leaves[OPC_MAX_INPUTS];     /* the leaf tensors, storage layout */
    attn_tensor *out;                        /* the op's result, NULL if it failed */
    size_t arena_after_inputs;               /* arena use once the inputs exist */
    char err[256];                           /* fixture problem ("" if none) */
} op_case;

/* Returns 0 when the case was built (c->out may still be NULL: the op
 * failed, status in c->ctx) and -1 when the fixture lacks something the
 * builder needs (c->err says what). Builders create all inputs first, then
 * call ops. */
typedef int op_case_fn(op_case *c);
typedef void op_errors_fn(attn_ctx *ctx);

typedef struct op_case_entry {
    const char *name; /* as attn__ops[i].name */
    op_case_fn *build;
    op_errors_fn *errors;
} op_case_entry;

/* One entry per op of ATTN_OP_LIST, in table order. */
extern const op_case_entry op_cases[];
extern const int op_cases_count;

/* Creates input `name` of the current case from tensor "c<k>.<name>": a
 * leaf (f32 inputs require gradients), then permuted by "c<k>.view.<name>"
 * when present. Returns NULL (c->err set) if absent; opc_input_opt returns
 * NULL without complaint (optional inputs: bias, mask, gamma ...). */
attn_tensor *opc_input(op_case *c, const char *name);
attn_tensor *opc_input_opt(op_case *c, const char *name);

#endif
