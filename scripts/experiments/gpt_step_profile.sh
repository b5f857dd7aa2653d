#!/usr/bin/env bash
# gpt_step_profile.sh: where a GPT training step's time goes, f32 and bf16
# (docs/mixed_precision.md, "Where the time goes"). Trains the GPT of
# mixed_precision.sh for STEPS steps under `perf record` once per precision
# and sums perf's self-time shares by category (matrix products, packing,
# attention, GELU, layer norm, softmax/cross-entropy, optimizer, elementwise,
# memory and kernel, other). Needs perf (Debian: linux-perf).
#
#   bash scripts/experiments/gpt_step_profile.sh     # STEPS=12
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-12}"
OUT="${OUT:-runs/gpt_profile}"
command -v perf >/dev/null || { echo "gpt_step_profile.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
make -s build/attn
mkdir -p "$OUT"
for p in f32 bf16; do
    [ -f "$OUT/$p.txt" ] && continue
    perf record -q -o "$OUT/$p.data" -F 999 build/attn lm train --data data/wiki --out "$OUT/$p" --arch gpt \
        --ctx 128 --d-model 256 --heads 8 --layers 4 --batch 16 --steps "$STEPS" --warmup 0 --lr 1e-3 --seed 1 \
        --threads 1 --eval-every 0 --final-eval-n 128 --quiet --force --precision "$p" >/dev/null 2>&1
    perf report -i "$OUT/$p.data" --stdio --sort symbol 2>/dev/null | grep -v '^#' | grep '%' >"$OUT/$p.txt"
done
categorize() {
    awk '{
        pct = $1; sub("%", "", pct); sym = $3;
        c = "other";
        if (sym ~ /amx_block|sgemm_kernel|sgemm_small|ukr_|dgemm/) c = "matrix products";
        else if (sym ~ /pack_a|pack_b|sgemm_.*copy|plan_pack|gemm_rounded/) c = "packing / conversion";
        else if (sym ~ /sdpa|flash|forward_unit|backward_unit|row_dsoftmax|row_exp|row_max|softmax_row/) c = "attention (softmax, masks)";
        else if (sym ~ /gelu/) c = "GELU";
        else if (sym ~ /layernorm|ln_/) c = "layer norm";
        else if (sym ~ /cross_entropy|log_softmax/) c = "cross-entropy";
        else if (sym ~ /adam|optim|clip|grad_norm/) c = "optimizer";
        else if (sym ~ /binary|unary|add_|mul_|linear_backward|linear_fwd|embedding|reduce|view|contig|copy_/) c = "elementwise, bias, views";
        else if (sym ~ /memset|memcpy|page|clear_page|_raw_spin|memcg|\[k\]/ || $0 ~ /\[k\]/) c = "memory, kernel";
        else if (sym ~ /rng|philox|normal|cos_|log_fma/) c = "random numbers (init)";
        s[c] += pct;
    } END { for (c in s) printf "%s\t%.1f\n", c, s[c] }' "$1" | sort -t$'\t' -k2 -rn
}
{
    echo "| category | f32 % of samples | bf16 % of samples |"
    echo "|---|---|---|"
    join -t$'\t' -a1 -a2 -e 0 -o 0,1.2,2.2 <(categorize "$OUT/f32.txt" | sort) <(categorize "$OUT/bf16.txt" | sort) |
        sort -t$'\t' -k2 -rn | awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
} | tee "$OUT/profile.md"
