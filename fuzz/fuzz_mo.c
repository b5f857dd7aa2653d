/* fuzz_mo: gettext catalogs: attn_mo_parse on the bytes and attn_mo_load
 * on a file holding them (they must agree); every entry of a parsed catalog
 * is read. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_mo mo;
    memset(&mo, 0, sizeof mo);
    const attn_status a = attn_mo_parse(data, size, "fuzz", &mo);
    if (a == ATTN_OK) {
        if (mo.n < 0) fz_fail("negative count");
        for (int64_t i = 0; i < mo.n; i++) {
            const attn_mo_entry *e = &mo.entries[i];
            if (!e->msgid || !e->msgstr) fz_fail("NULL msgid or msgstr");
            (void)strlen(e->msgid);
            (void)strlen(e->msgstr);
            if (e->context) (void)strlen(e->context);
            if (e->msgid_plural) (void)strlen(e->msgid_plural);
        }
        if (!mo.header) fz_fail("NULL header");
        (void)strlen(mo.header);
        if (!memchr(mo.charset, 0, sizeof mo.charset)) fz_fail("charset not terminated");
    }
    attn_mo_free(&mo);
    attn_mo_free(&mo); /* documented as harmless */

    attn_mo m2;
    memset(&m2, 0, sizeof m2);
    const attn_status b = attn_mo_load(fz_file(0, data, size), &m2);
    if ((a == ATTN_OK) != (b == ATTN_OK)) fz_fail("attn_mo_parse and attn_mo_load disagree");
    attn_mo_free(&m2);
    return 0;
}
