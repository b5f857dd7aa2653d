/* attn/optim.h: (being written) */
#ifndef ATTN_OPTIM_H
#define ATTN_OPTIM_H
#endif
