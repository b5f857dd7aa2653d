/* attn/attn.h: the whole public API of attn.
 *
 *   status.h       status codes, attn_status_str, attn_last_error
 *   tensor.h       the tensor descriptor, dtypes, the dimension legend
 *   context.h      the context: arena, tape, backward, settings
 *   ops.h          the graph ops (forward + recorded backward)
 *   params.h       the parameter store and initialisers
 *   rng.h          the counter-based RNG (Philox4x32-10)
 *   optim.h        SGD, Adam, AdamW, gradient clipping, LR schedule
 *   safetensors.h  weights and checkpoints in the safetensors format
 *   data.h         data set readers (IDX)
 *   info.h         version, SIMD level, matrix library
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#include "status.h"
#include "tensor.h"
#include "context.h"
#include "ops.h"
#include "params.h"
#include "rng.h"
#include "optim.h"
#include "safetensors.h"
#include "data.h"
#include "info.h"

#endif
