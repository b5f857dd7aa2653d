/* dates.c: the date-normalisation task (include/attn/text.h).
 *
 * A format is a template: literal characters and %-fields. Rendering a
 * template records where each date field lands in the source, which gives
 * the true alignment of every target character. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../core/internal.h"
#include "attn/rng.h"
#include "attn/text.h"
#include "text_internal.h"

/* Fields of a template:
 *   %Y 4-digit year   %y 2-digit year
 *   %m 2-digit month  %n month without padding  %B month name  %b its 3-letter abbreviation
 *   %d 2-digit day    %e day without padding    %o the day's ordinal suffix (st, nd, rd, th)
 *   %A weekday name   %a its 3-letter abbreviation
 * Everything else is copied. The suffix and the weekday belong to no field. */
static const struct {
    const char *tmpl, *name;
} formats[ATTN_DATE_FORMATS] = {
    {"%e %B %Y", "D Month YYYY"},
    {"%B %e, %Y", "Month D, YYYY"},
    {"%m/%d/%y", "MM/DD/YY"},
    {"%a %e %b %Y", "Wkd D Mon YYYY"},
    {"%Y.%m.%d", "YYYY.MM.DD"},
    {"%e%o of %B %Y", "Dth of Month YYYY"},
    {"%A, %B %e %Y", "Weekday, Month D YYYY"},
    {"%d.%m.%Y", "DD.MM.YYYY"},
    {"%e %b %y", "D Mon YY"},
    {"%b %e, %Y", "Mon D, YYYY"},
    {"%Y-%m-%d", "YYYY-MM-DD"},
    {"%m/%d/%Y", "MM/DD/YYYY"},
    {"the %e%o of %B, %Y", "the Dth of Month, YYYY"},
    {"%A, %e %B %Y", "Weekday, D Month YYYY"},
    {"%e-%b-%Y", "D-Mon-YYYY"},
    {"%Y%m%d", "YYYYMMDD"},
    {"%b. %e%o, %Y", "Mon. Dth, YYYY"},
    {"%n/%e/%Y", "M/D/YYYY"},
    {"%a, %d %b %Y", "Wkd, DD Mon YYYY"},
    {"%e%o %B %y", "Dth Month YY"},
};

static const char *const month_names[12] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};
static const char *const weekday_names[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday"};

/* Number of days of the days_in_range: 1950-01-01 .. 2049-12-31. */
#define DATE_DAYS 36525
/* Third counter word of the Philox block of an example: "DATE", so that a
 * seed shared with other streams (initialisation, dropout) draws other
 * numbers here. */
#define DATE_STREAM_TAG 0x44415445u

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *year, int *month, int *day) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    const int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = m;
    *day = d;
}

static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static const char *ordinal_suffix(int d) {
    if (d >= 11 && d <= 13) return "th";
    switch (d % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

const char *attn_date_format_name(int format) {
    if (format < 0 || format >= ATTN_DATE_FORMATS) return NULL;
    return formats[format].name;
}

attn_data_split attn_date_split(int year, int month, int day, int format) {
    char key[16];
    /* Fixed width: 10 date bytes, '/', one format letter. */
    snprintf(key, sizeof key, "%04u-%02u-%02u/%c", (unsigned)year % 10000u, (unsigned)month % 100u,
             (unsigned)day % 100u, 'a' + (format & 31));
    return attn_data_split_of(key, 12);
}

/* Appends text to the source, recording the span when `field` is set. */
static void put(attn_date_example *ex, const char *text, int field, int spans[4][2]) {
    size_t n = strlen(text);
    if (field) {
        spans[field][0] = ex->source_len;
        spans[field][1] = ex->source_len + (int)n;
    }
    memcpy(ex->source + ex->source_len, text, n);
    ex->source_len += (int)n;
}

attn_status attn_date_render(int year, int month, int day, int format, int casing,
                             attn_date_example *ex) {
    if (!ex) return attn__error(ATTN_ERR_INVALID_ARG, "attn_date_render: ex is NULL");
    if (format < 0 || format >= ATTN_DATE_FORMATS)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_date_render: format %d outside [0, %d)",
                           format, ATTN_DATE_FORMATS);
    if (casing < 0 || casing >= ATTN_DATE_CASINGS)
        return attn__error(ATTN_ERR_INVALID_ARG, "attn_date_render: casing %d outside [0, %d)",
                           casing, ATTN_DATE_CASINGS);
    if (year < ATTN_DATE_YEAR_MIN || year > ATTN_DATE_YEAR_MAX || month < 1 || month > 12 ||
        day < 1 || day > days_in_month(year, month))
        return attn__error(ATTN_ERR_INVALID_ARG,
                           "attn_date_render: %d-%d-%d is not a date between %d-01-01 and "
                           "%d-12-31",
                           year, month, day, ATTN_DATE_YEAR_MIN, ATTN_DATE_YEAR_MAX);
    memset(ex, 0, sizeof *ex);
    ex->year = year;
    ex->month = month;
    ex->day = day;
    const int64_t z = days_from_civil(year, month, day);
    ex->weekday = (int)(((z + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday (3) */
    ex->format = format;
    ex->casing = casing;
    ex->split = attn_date_split(year, month, day, format);

    int spans[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    char tmp[16];
    for (const char *t = formats[format].tmpl; *t; t++) {
        if (*t != '%') {
            ex->source[ex->source_len++] = *t;
            continue;
        }
        t++;
        switch (*t) {
        case 'Y':
            snprintf(tmp, sizeof tmp, "%04d", year);
            put(ex, tmp, ATTN_DATE_YEAR, spans);
            break;
        case 'y':
            snprintf(tmp, sizeof tmp, "%02d", year % 100);
            put(ex, tmp, ATTN_DATE_YEAR, spans);
            break;
        case 'm':
            snprintf(tmp, sizeof tmp, "%02d", month);
            put(ex, tmp, ATTN_DATE_MONTH, spans);
            break;
        case 'n':
            snprintf(tmp, sizeof tmp, "%d", month);
            put(ex, tmp, ATTN_DATE_MONTH, spans);
            break;
        case 'B': put(ex, month_names[month - 1], ATTN_DATE_MONTH, spans); break;
        case 'b':
            memcpy(tmp, month_names[month - 1], 3);
            tmp[3] = '\0';
            put(ex, tmp, ATTN_DATE_MONTH, spans);
            break;
        case 'd':
            snprintf(tmp, sizeof tmp, "%02d", day);
            put(ex, tmp, ATTN_DATE_DAY, spans);
            break;
        case 'e':
            snprintf(tmp, sizeof tmp, "%d", day);
            put(ex, tmp, ATTN_DATE_DAY, spans);
            break;
        case 'o': put(ex, ordinal_suffix(day), 0, spans); break;
        case 'A': put(ex, weekday_names[ex->weekday], 0, spans); break;
        case 'a':
            memcpy(tmp, weekday_names[ex->weekday], 3);
            tmp[3] = '\0';
            put(ex, tmp, 0, spans);
            break;
        default: break; /* the templates above use only these fields */
        }
    }
    ex->source[ex->source_len] = '\0';
    for (int i = 0; i < ex->source_len; i++) {
        unsigned char c = (unsigned char)ex->source[i];
        if (casing == 1) ex->source[i] = (char)tolower(c);
        if (casing == 2) ex->source[i] = (char)toupper(c);
    }

    /* Validated above; the unsigned remainders only bound the widths for the
     * compiler. */
    snprintf(ex->target, sizeof ex->target, "%04u-%02u-%02u", (unsigned)year % 10000u,
             (unsigned)month % 100u, (unsigned)day % 100u);
    static const attn_date_field target_fields[ATTN_DATE_TARGET_LEN] = {
        ATTN_DATE_YEAR,  ATTN_DATE_YEAR,  ATTN_DATE_YEAR, ATTN_DATE_YEAR, ATTN_DATE_SEP,
        ATTN_DATE_MONTH, ATTN_DATE_MONTH, ATTN_DATE_SEP,  ATTN_DATE_DAY,  ATTN_DATE_DAY};
    for (int i = 0; i < ATTN_DATE_TARGET_LEN; i++) {
        ex->field[i] = target_fields[i];
        ex->span_begin[i] = spans[target_fields[i]][0];
        ex->span_end[i] = spans[target_fields[i]][1];
        if (target_fields[i] == ATTN_DATE_SEP) ex->span_begin[i] = ex->span_end[i] = -1;
    }
    return ATTN_OK;
}

void attn_date_example_at(uint64_t seed, uint64_t index, attn_date_example *ex) {
    const uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), DATE_STREAM_TAG, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    attn_philox4x32(ctr, key, w);
    /* Multiply-shift maps a word to [0, n) with a bias below n / 2^32. */
    const int64_t day_index = (int64_t)(((uint64_t)w[0] * DATE_DAYS) >> 32);
    const int format = (int)(((uint64_t)w[1] * ATTN_DATE_FORMATS) >> 32);
    const int casing = w[2] < 2576980378u ? 0 : w[2] < 3435973837u ? 1 : 2; /* 0.6, 0.8 of 2^32 */
    int y, m, d;
    civil_from_days(days_from_civil(ATTN_DATE_YEAR_MIN, 1, 1) + day_index, &y, &m, &d);
    attn_date_render(y, m, d, format, casing, ex); /* valid by construction */
}

void attn_date_next(uint64_t seed, attn_data_split split, uint64_t *cursor, attn_date_example *ex) {
    for (;;) {
        attn_date_example_at(seed, (*cursor)++, ex);
        /* Every split has examples (5 % of them at least), so this ends; a
         * value that is no split takes the next example of any split. */
        if (ex->split == split || (unsigned)split >= ATTN_SPLIT_COUNT) return;
    }
}
