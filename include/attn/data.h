/* attn/data.h: (being written) */
#ifndef ATTN_DATA_H
#define ATTN_DATA_H
#endif
