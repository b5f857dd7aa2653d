/* attn/safetensors.h: (being written) */
#ifndef ATTN_SAFETENSORS_H
#define ATTN_SAFETENSORS_H
#endif
