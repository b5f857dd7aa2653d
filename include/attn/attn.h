/* attn/attn.h: the whole public API of attn.
 *
 *   status.h       status codes, attn_status_str, attn_last_error
 *   tensor.h       the tensor descriptor, dtypes, the dimension legend
 *   context.h      the context: arena, tape, backward, settings
 *   ops.h          the graph ops (forward + recorded backward)
 *   rnn_cell.h     the fused GRU/LSTM cells (graph ops)
 *   rnn.h          GRU/LSTM layers (torch.nn.GRU/LSTM compatible)
 *   rnn_attention.h  Bahdanau/Luong attention: score functions, global, local-m, local-p
 *   sdpa.h         scaled dot-product attention (masks, GQA, dropout), basic self-attention
 *   sparse.h       block-sparse attention patterns (local, strided, fixed, windows), tile layouts
 *   positions.h    positional encodings: sinusoidal, RoPE, Shaw relative positions, ALiBi
 *   params.h       the parameter store and initialisers
 *   rng.h          the counter-based RNG (Philox4x32-10)
 *   optim.h        SGD, Adam, AdamW, gradient clipping, LR schedule
 *   safetensors.h  the safetensors format: strict reader, metadata
 *   checkpoint.h   parameter stores and training checkpoints in safetensors files
 *   idx.h          the IDX reader (MNIST, Fashion-MNIST)
 *   scenes.h       captioned 2x2 scenes of Fashion-MNIST items (Show, Attend and Tell data)
 *   seq2seq.h      the RNN encoder-decoder with attention
 *   caption.h      Show, Attend and Tell: soft, hard and no attention LSTM captioner
 *   s2s_types.h    the batch and decoding options both encoder-decoders share
 *   s2s_data.h     minibatches for seq2seq: padded batches, length-bucketed sampler
 *   text.h         text data sets (dates, gettext pairs) and tokenisers (characters, BPE)
 *   info.h         version, SIMD level, matrix library
 *   eval.h         BLEU (sacrebleu-compatible), exact match, character error rate
 *   viz.h          SVG attention heatmaps, heatmap grids, line charts
 *   explorer.h     the interactive attention explorer: one self-contained HTML page
 *   png.h          PNG images in and out (image grids, attention overlays, user images)
 *   progress.h     progress line for long jobs, JSONL logger
 *   transformer.h  multi-head attention (GQA, relative positions, KV cache), Transformer blocks
 *   lm_data.h      language-model data: token streams, seeded window batches
 *   gpt.h          the decoder-only GPT language model, sampling, generation with a KV cache
 *   transformer_s2s.h  the encoder-decoder Transformer (translation; greedy and beam decoding)
 *   bert_corpus.h  the BERT's corpus: fortune-format texts, labels, [CLS] batches
 *   bert.h         the BERT-style encoder: masked-LM pretraining, [CLS] classification
 *   wordpiece.h    BERT's uncased WordPiece tokenizer (Hugging Face-identical ids)
 *   minilm.h       pretrained sentence encoders (all-MiniLM-L6-v2): load, embed
 *   conv.h         convolutions, pooling, batch and spectral normalisation
 *   vision_attention.h  SAGAN and Simple Self-Attention blocks for feature maps
 *   vision_modules.h    CBAM, channel-wise soft attention, GC, SAG mask, PSA, AA-conv
 *   cnn.h          the CNN image classifier (optional attention block), features
 *   mask_head.h    per-pixel item masks of the scenes with the SAG map (CenterMask)
 *   fid.h          the Frechet distance of feature sets (FID), symmetric eigensolver
 *   gan.h          the small SAGAN (spectral norm, hinge losses) for 28x28 images
 *   lstmn.h        the Long Short-Term Memory-Network layer (intra-attention over a tape; graph op)
 *   lstmn_lm.h     the word-level LSTMN / LSTM language model
 *   sha_rnn.h      the SHA-RNN's single-headed attention and Boom feed-forward
 *   sha_lstm.h     the SHA-LSTM and plain LSTM byte language models (state carried)
 *   lama.h         LAMA: low-rank factorised multi-head attention pooling
 *   gru_classifier.h  a BiGRU text classifier with mean / attention / MHSA / LAMA pooling
 *   wavenet.h      the WaveNet-style causal dilated convolution LM, incremental generation
 *   word2vec.h     word2vec: skip-gram and CBOW with negative sampling, analogies, similarity
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#include "status.h"
#include "tensor.h"
#include "context.h"
#include "ops.h"
#include "rnn_cell.h"
#include "lstmn.h"
#include "rnn.h"
#include "rnn_attention.h"
#include "sdpa.h"
#include "sparse.h"
#include "positions.h"
#include "long_context.h"
#include "reformer.h"
#include "reformer_lm.h"
#include "reversible.h"
#include "params.h"
#include "rng.h"
#include "optim.h"
#include "safetensors.h"
#include "checkpoint.h"
#include "idx.h"
#include "scenes.h"
#include "text.h"
#include "info.h"
#include "eval.h"
#include "viz.h"
#include "explorer.h"
#include "png.h"
#include "progress.h"
#include "seq2seq.h"
#include "caption.h"
#include "s2s_types.h"
#include "s2s_data.h"
#include "transformer.h"
#include "lm_data.h"
#include "gpt.h"
#include "txl.h"
#include "transformer_s2s.h"
#include "bert_corpus.h"
#include "bert.h"
#include "wordpiece.h"
#include "minilm.h"
#include "conv.h"
#include "vision_attention.h"
#include "synthesizer.h"
#include "linformer.h"
#include "routing.h"
#include "sinkhorn.h"
#include "graph_attention.h"
#include "deb_graph.h"
#include "node_classifier.h"
#include "vision_modules.h"
#include "cnn.h"
#include "mask_head.h"
#include "fid.h"
#include "gan.h"
#include "lstmn_lm.h"
#include "wavenet.h"
#include "word2vec.h"
#include "sha_rnn.h"
#include "sha_lstm.h"
#include "lama.h"
#include "gru_classifier.h"

#endif
