/* checkpoint.c: parameter stores and training checkpoints in safetensors
 * files (include/attn/checkpoint.h), on the format's reader and writer
 * (src/io/safetensors.c): this module knows the parameter store and the
 * optimizer, the format knows neither.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../io/safetensors_internal.h"
#include "attn/checkpoint.h"
#include "attn/optim.h"
#include "attn/params.h"
#include "attn/safetensors.h"

#define ST_NAME_MAX 255 /* attn_params' limit on names */
#define ST_OPT_PREFIX "optimizer.state."

/* ---- parameter stores ------------------------------------------------------------ */

/* Fills out[i] with the parameters of ps; returns their count, -1 on OOM. */
static int params_out(const attn_params *ps, attn__st_out **out) {
    int n = attn_params_count(ps);
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!*out) return -1;
    for (int i = 0; i < n; i++) {
        const attn_tensor *p = attn_params_at(ps, i);
        (*out)[i] = (attn__st_out){p->name, p->ndim, p->shape, attn_f32(p), attn_tensor_numel(p)};
    }
    return n;
}

attn_status attn_safetensors_save_params(const char *path, const attn_params *ps,
                                         const attn_kv *meta, int n_meta) {
    const char *fn = "attn_safetensors_save_params";
    if (!path || !ps || n_meta < 0 || (n_meta > 0 && !meta))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL path, store or metadata", fn);
    attn__st_out *t;
    int n = params_out(ps, &t);
    if (n < 0) return attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
    attn_status st = attn__st_write(fn, path, t, n, meta, n_meta);
    free(t);
    return st;
}

static int has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Checks that tensor t can fill parameter p (dtype convertible, same shape). */
static attn_status check_fit(const char *fn, const char *path, const attn_st_tensor *t,
                             const attn_tensor *p, int f32_only) {
    if (t->dtype != ATTN_ST_F32 && (f32_only || (t->dtype != ATTN_ST_F16 &&
                                                 t->dtype != ATTN_ST_BF16)))
        return attn__error(ATTN_ERR_DTYPE, "%s: %s: tensor '%s' is %s, expected %s", fn, path,
                           t->name, attn_st_dtype_name(t->dtype),
                           f32_only ? "F32" : "F32 (or F16/BF16, converted)");
    int same = t->ndim == p->ndim;
    for (int k = 0; same && k < p->ndim; k++) same = t->shape[k] == p->shape[k];
    if (!same) {
        char fs[ATTN_ST_MAX_DIMS * 24 + 3];
        size_t k = 0;
        fs[k++] = '[';
        for (int d = 0; d < t->ndim; d++)
            k += (size_t)snprintf(fs + k, sizeof fs - k, d ? ",%lld" : "%lld",
                                  (long long)t->shape[d]);
        snprintf(fs + k, sizeof fs - k, "]");
        return attn__error(ATTN_ERR_SHAPE, "%s: %s: tensor '%s' has shape %s, parameter '%s' "
                           "is %s", fn, path, t->name, fs, p->name, attn__shp(p));
    }
    return ATTN_OK;
}

/* The first element of t that is NaN or Inf (read from the raw bytes, by
 * the exponent field of its dtype), or -1. */
static int64_t first_nonfinite(const attn_st_tensor *t) {
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ATTN_ST_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7F800000u) == 0x7F800000u) return i;
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            const uint16_t e = t->dtype == ATTN_ST_F16 ? 0x7C00u : 0x7F80u;
            if ((h & e) == e) return i;
        }
    }
    return -1;
}

/* ATTN_ERR_NUMERIC naming tensor t when it holds a NaN or Inf. */
static attn_status check_finite(const char *fn, const char *path, const attn_st_tensor *t) {
    const int64_t i = first_nonfinite(t);
    if (i < 0) return ATTN_OK;
    float v = 0.0f;
    if (t->dtype == ATTN_ST_F32) memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
    else v = NAN;
    return attn__error(ATTN_ERR_NUMERIC,
                       "%s: %s: tensor '%s' holds a non-finite value (%s at element %lld of "
                       "%lld): a diverged run? (attn_safetensors_load_params with "
                       "ATTN_ST_ALLOW_NONFINITE loads it for debugging)",
                       fn, path, t->name, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                       (long long)i, (long long)t->numel);
}

/* ATTN_ERR_FORMAT naming tensor t (an Adam second moment) when an element
 * is below 0 (its sign bit set on a nonzero value): the square root of the
 * update would be NaN in every weight it touches. */
static attn_status check_nonnegative(const char *fn, const char *path, const attn_st_tensor *t) {
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        int neg;
        if (t->dtype == ATTN_ST_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            neg = (u & 0x80000000u) && (u & 0x7FFFFFFFu);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            neg = (h & 0x8000u) && (h & 0x7FFFu);
        }
        if (neg)
            return attn__error(ATTN_ERR_FORMAT,
                               "%s: %s: optimizer state '%s' has a negative element (%lld of %lld): "
                               "a second moment is a mean of squares, >= 0",
                               fn, path, t->name, (long long)i, (long long)t->numel);
    }
    return ATTN_OK;
}

/* Checks the file's tensors against the store (flags as for load_params;
 * tensors named optimizer.state.* are left aside when skip_opt). */
static attn_status check_params(const char *fn, const char *path, const attn_safetensors *f,
                                const attn_params *ps, unsigned flags, int skip_opt) {
    attn_status st;
    int n = attn_params_count(ps);
    for (int i = 0; i < n; i++) {
        const attn_tensor *p = attn_params_at(ps, i);
        const attn_st_tensor *t = attn_safetensors_find(f, p->name);
        if (!t) {
            if (flags & ATTN_ST_ALLOW_MISSING) continue;
            return attn__error(ATTN_ERR_FORMAT, "%s: %s: parameter '%s' %s is missing from the "
                               "file (%d tensors)", fn, path, p->name, attn__shp(p),
                               attn_safetensors_count(f));
        }
        if ((st = check_fit(fn, path, t, p, 0))) return st;
        if (!(flags & ATTN_ST_ALLOW_NONFINITE) && (st = check_finite(fn, path, t))) return st;
    }
    if (flags & ATTN_ST_ALLOW_UNEXPECTED) return ATTN_OK;
    for (int k = 0; k < attn_safetensors_count(f); k++) {
        const attn_st_tensor *t = attn_safetensors_at(f, k);
        if (skip_opt && has_prefix(t->name, ST_OPT_PREFIX)) continue;
        if (!attn_params_find(ps, t->name))
            return attn__error(ATTN_ERR_FORMAT, "%s: %s: tensor '%s' is not a parameter of the "
                               "store (pass ATTN_ST_ALLOW_UNEXPECTED to ignore it)", fn, path,
                               t->name);
    }
    return ATTN_OK;
}

/* Copies the (checked) tensors into the parameters present in the file. */
static void copy_params(const attn_safetensors *f, attn_params *ps) {
    int n = attn_params_count(ps);
    for (int i = 0; i < n; i++) {
        attn_tensor *p = attn_params_at(ps, i);
        const attn_st_tensor *t = attn_safetensors_find(f, p->name);
        if (t) attn_safetensors_read_f32(t, attn_f32(p)); /* dtype checked: cannot fail */
    }
}

attn_status attn_safetensors_load_params(const char *path, attn_params *ps, unsigned flags) {
    const char *fn = "attn_safetensors_load_params";
    if (!path || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL path or store", fn);
    attn_safetensors *f;
    attn_status st = attn_safetensors_open(&f, path);
    if (st) return st;
    st = check_params(fn, path, f, ps, flags, 0);
    if (!st) copy_params(f, ps);
    attn_safetensors_close(f);
    return st;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static const char *const ckpt_reserved[] = {"format", "version", "step", "optimizer",
                                            "optimizer_steps", "lr", "weight_decay", "momentum",
                                            "nesterov", "betas", "eps"};
#define N_RESERVED ((int)(sizeof ckpt_reserved / sizeof ckpt_reserved[0]))

static const char *opt_kind_name(attn_optim_kind k) {
    return k == ATTN_OPTIM_SGD ? "sgd" : k == ATTN_OPTIM_ADAM ? "adam" : "adamw";
}

/* State buffer names by optimizer kind. */
static const char *state_name(attn_optim_kind k, int b) {
    if (k == ATTN_OPTIM_SGD) return "momentum_buffer";
    return b == 0 ? "exp_avg" : "exp_avg_sq";
}

/* The optimizer's buffers per parameter (0, 1 or 2), after checking that it
 * has state for exactly n parameters when it has any (its store must be ps). */
static int opt_nbuf(attn_optim *opt, int n, const char *fn, attn_status *st) {
    *st = ATTN_OK;
    if (n == 0) return 0;
    int nb = attn_optim_state(opt, 0, NULL, NULL);
    if (nb > 0 && (attn_optim_state(opt, n - 1, NULL, NULL) != nb ||
                   attn_optim_state(opt, n, NULL, NULL) != 0))
        *st = attn__error(ATTN_ERR_INVALID_ARG,
                          "%s: the optimizer was made for a store of another size (this one "
                          "has %d parameters)", fn, n);
    return nb;
}

/* The shortest decimal that reads back as the same float. */
/* The shortest "%g" text that reads back as v, written and read back under
 * the "C" numeric locale (a decimal comma would make the round trip lie). */
static void fmt_float(char *buf, size_t n, float v) {
    attn__c_locale loc = attn__c_locale_begin();
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    attn__c_locale_end(loc);
}

attn_status attn_checkpoint_save(const char *path, const attn_params *ps, attn_optim *opt,
                                 int64_t step, const attn_kv *meta, int n_meta) {
    const char *fn = "attn_checkpoint_save";
    if (!path || !ps || n_meta < 0 || (n_meta > 0 && !meta))
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL path, store or metadata", fn);
    if (step < 0)
        return attn__error(ATTN_ERR_INVALID_ARG, "%s: step %lld < 0", fn, (long long)step);
    for (int i = 0; i < n_meta; i++)
        for (int r = 0; meta[i].key && r < N_RESERVED; r++)
            if (strcmp(meta[i].key, ckpt_reserved[r]) == 0)
                return attn__error(ATTN_ERR_INVALID_ARG,
                                   "%s: metadata key '%s' is reserved for the checkpoint", fn,
                                   meta[i].key);
    int n = attn_params_count(ps);
    for (int i = 0; i < n; i++)
        if (has_prefix(attn_params_at(ps, i)->name, ST_OPT_PREFIX))
            return attn__error(ATTN_ERR_INVALID_ARG,
                               "%s: parameter '%s': names beginning with '" ST_OPT_PREFIX
                               "' are reserved for optimizer state", fn,
                               attn_params_at(ps, i)->name);
    attn_status st = ATTN_OK;
    int nb = opt ? opt_nbuf(opt, n, fn, &st) : 0;
    if (st) return st;

    /* Tensors: parameters, then optimizer state; metadata: ours, then the
     * caller's. */
    size_t n_out = (size_t)n * (size_t)(1 + nb);
    attn__st_out *t = calloc(n_out + 1, sizeof *t);
    char **names = calloc((size_t)n * (size_t)nb + 1, sizeof *names);
    attn_kv *kv = calloc((size_t)n_meta + 12, sizeof *kv);
    char vals[12][64];
    int nk = 0;
    if (!t || !names || !kv) {
        st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const attn_tensor *p = attn_params_at(ps, i);
        t[i] = (attn__st_out){p->name, p->ndim, p->shape, attn_f32(p), attn_tensor_numel(p)};
        float *buf[2];
        attn_optim_state(opt, i, &buf[0], &buf[1]);
        for (int b = 0; b < nb; b++) {
            attn_optim_kind kind = attn_optim_get_config(opt)->kind;
            size_t len = strlen(ST_OPT_PREFIX) + strlen(p->name) + 32;
            char *nm = malloc(len);
            if (!nm) {
                st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
                goto done;
            }
            snprintf(nm, len, ST_OPT_PREFIX "%s.%s", p->name, state_name(kind, b));
            names[i * nb + b] = nm;
            t[n + i * nb + b] = (attn__st_out){nm, p->ndim, p->shape, buf[b], attn_tensor_numel(p)};
        }
    }
    kv[nk++] = (attn_kv){"format", "attn-checkpoint"};
    kv[nk++] = (attn_kv){"version", "1"};
    snprintf(vals[0], sizeof vals[0], "%lld", (long long)step);
    kv[nk++] = (attn_kv){"step", vals[0]};
    if (opt) {
        const attn_optim_config *c = attn_optim_get_config(opt);
        char f0[32], f1[32];
        kv[nk++] = (attn_kv){"optimizer", opt_kind_name(c->kind)};
        snprintf(vals[1], sizeof vals[1], "%lld", (long long)attn_optim_steps(opt));
        kv[nk++] = (attn_kv){"optimizer_steps", vals[1]};
        fmt_float(vals[2], sizeof vals[2], c->lr);
        kv[nk++] = (attn_kv){"lr", vals[2]};
        fmt_float(vals[3], sizeof vals[3], c->weight_decay);
        kv[nk++] = (attn_kv){"weight_decay", vals[3]};
        if (c->kind == ATTN_OPTIM_SGD) {
            fmt_float(vals[4], sizeof vals[4], c->momentum);
            kv[nk++] = (attn_kv){"momentum", vals[4]};
            kv[nk++] = (attn_kv){"nesterov", c->nesterov ? "1" : "0"};
        } else {
            fmt_float(f0, sizeof f0, c->beta1);
            fmt_float(f1, sizeof f1, c->beta2);
            snprintf(vals[4], sizeof vals[4], "%s,%s", f0, f1);
            kv[nk++] = (attn_kv){"betas", vals[4]};
            fmt_float(vals[5], sizeof vals[5], c->eps);
            kv[nk++] = (attn_kv){"eps", vals[5]};
        }
    }
    for (int i = 0; i < n_meta; i++) kv[nk++] = meta[i];
    st = attn__st_write(fn, path, t, (int)n_out, kv, nk);
done:
    for (size_t i = 0; names && i < (size_t)n * (size_t)nb; i++) free(names[i]);
    free(names);
    free(t);
    free(kv);
    return st;
}

/* A decimal int64 >= 0 with nothing else, or -1. */
static int64_t parse_count(const char *s) {
    if (!s || !*s) return -1;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

attn_status attn_checkpoint_load(const char *path, attn_params *ps, attn_optim *opt,
                                 int64_t *step) {
    const char *fn = "attn_checkpoint_load";
    if (!path || !ps) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL path or store", fn);
    attn_safetensors *f;
    attn_status st = attn_safetensors_open(&f, path);
    if (st) return st;
    const char *fmt = attn_safetensors_metadata(f, "format");
    const char *ver = attn_safetensors_metadata(f, "version");
    int64_t ck_step = parse_count(attn_safetensors_metadata(f, "step"));
    int64_t opt_steps = -1;
    int n = attn_params_count(ps), nb = 0;
    if (!fmt || strcmp(fmt, "attn-checkpoint") != 0) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not an attn checkpoint (metadata format "
                         "is %s%s%s, expected \"attn-checkpoint\")", fn, path, fmt ? "\"" : "",
                         fmt ? fmt : "absent", fmt ? "\"" : "");
        goto done;
    }
    if (!ver || strcmp(ver, "1") != 0) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s: checkpoint version %s, this build reads 1",
                         fn, path, ver ? ver : "absent");
        goto done;
    }
    if (ck_step < 0) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s: metadata step is %s, expected a decimal "
                         "integer >= 0", fn, path,
                         attn_safetensors_metadata(f, "step") ? "malformed" : "absent");
        goto done;
    }
    if ((st = check_params(fn, path, f, ps, 0, 1))) goto done;
    if (opt) {
        const attn_optim_config *c = attn_optim_get_config(opt);
        const char *kind = attn_safetensors_metadata(f, "optimizer");
        if (!kind) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s holds no optimizer state", fn, path);
            goto done;
        }
        if (strcmp(kind, opt_kind_name(c->kind)) != 0) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s holds the state of optimizer \"%.32s\", "
                             "this one is %s", fn, path, kind, opt_kind_name(c->kind));
            goto done;
        }
        opt_steps = parse_count(attn_safetensors_metadata(f, "optimizer_steps"));
        if (opt_steps < 0 || opt_steps > ((int64_t)1 << 53)) {
            /* (2^53: beyond it the next step's count is no longer exact in the
             * bias corrections' double, and INT64_MAX wrapped to a negative
             * count whose first update made every weight NaN) */
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: metadata optimizer_steps is %s, expected "
                             "a decimal integer in [0, 2^53]", fn, path,
                             attn_safetensors_metadata(f, "optimizer_steps") ? "out of range or "
                             "malformed" : "absent");
            goto done;
        }
        nb = opt_nbuf(opt, n, fn, &st);
        if (st) goto done;
        int expected = 0;
        for (int i = 0; i < n; i++) {
            const attn_tensor *p = attn_params_at(ps, i);
            for (int b = 0; b < nb; b++) {
                char nm[ST_NAME_MAX + 64];
                snprintf(nm, sizeof nm, ST_OPT_PREFIX "%s.%s", p->name, state_name(c->kind, b));
                const attn_st_tensor *t = attn_safetensors_find(f, nm);
                if (!t) {
                    st = attn__error(ATTN_ERR_FORMAT, "%s: %s: optimizer state '%s' is missing",
                                     fn, path, nm);
                    goto done;
                }
                if ((st = check_fit(fn, path, t, p, 1))) goto done;
                if ((st = check_finite(fn, path, t))) goto done;
                if (c->kind != ATTN_OPTIM_SGD && b == 1 && (st = check_nonnegative(fn, path, t)))
                    goto done;
                expected++;
            }
        }
        /* Every expected name was found and names are unique, so equal
         * counts mean there is no other state tensor. */
        int present = 0;
        const char *extra = NULL;
        for (int k = 0; k < attn_safetensors_count(f); k++) {
            const char *nm = attn_safetensors_at(f, k)->name;
            if (!has_prefix(nm, ST_OPT_PREFIX)) continue;
            present++;
            if (!extra) {
                /* remember one name that is not expected, for the message */
                int ok = 0;
                for (int i = 0; i < n && !ok; i++) {
                    const char *pn = attn_params_at(ps, i)->name;
                    size_t pl = strlen(pn), ol = strlen(ST_OPT_PREFIX);
                    for (int b = 0; b < nb && !ok; b++)
                        ok = strncmp(nm + ol, pn, pl) == 0 && nm[ol + pl] == '.' &&
                             strcmp(nm + ol + pl + 1, state_name(c->kind, b)) == 0;
                }
                if (!ok) extra = nm;
            }
        }
        if (present != expected) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: unexpected optimizer state '%s' (the "
                             "%s optimizer has %d state buffers per parameter)", fn, path,
                             extra ? extra : "?", opt_kind_name(c->kind), nb);
            goto done;
        }
    }
    /* All checked: copy. */
    copy_params(f, ps);
    if (opt) {
        const attn_optim_config *c = attn_optim_get_config(opt);
        for (int i = 0; i < n; i++) {
            float *buf[2];
            attn_optim_state(opt, i, &buf[0], &buf[1]);
            for (int b = 0; b < nb; b++) {
                char nm[ST_NAME_MAX + 64];
                snprintf(nm, sizeof nm, ST_OPT_PREFIX "%s.%s", attn_params_at(ps, i)->name,
                         state_name(c->kind, b));
                attn_safetensors_read_f32(attn_safetensors_find(f, nm), buf[b]);
            }
        }
        attn_optim_set_steps(opt, opt_steps);
    }
    if (step) *step = ck_step;
done:
    attn_safetensors_close(f);
    return st;
}
