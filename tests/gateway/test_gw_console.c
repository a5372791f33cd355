/*  test_gw_console — the embedded console table (console/CMakeLists.txt,
    gateway/gw_console.h): index.html and app.js are there with their
    Content-Type and a quoted ETag, names are flat, lookups of anything else
    (traversal, empty, NULL) find nothing. */
#include "gateway/gw_console.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(gw_console, .timeout = 10);

Test(gw_console, the_pages_are_embedded_with_their_types)
{
    const gw_console_file_t *f = gw_console_find("index.html");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->type, "text/html; charset=utf-8");
    cr_assert_gt(f->size, 100);
    cr_assert_not_null(strstr((const char *)f->data, "<script type=\"module\""));
    f = gw_console_find("app.js");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->type, "text/javascript; charset=utf-8");
    cr_assert_eq(f->data[f->size], 0, "a NUL follows the bytes");
    f = gw_console_find("style.css");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->type, "text/css; charset=utf-8");
}

Test(gw_console, every_file_has_a_flat_name_and_a_quoted_etag)
{
    cr_assert_gt(gw_console_files_count, 2);
    for (size_t i = 0; i < gw_console_files_count; i++) {
        const gw_console_file_t *f = &gw_console_files[i];
        cr_expect_null(strchr(f->name, '/'), "%s", f->name);
        cr_expect_eq(f->name[0] == '.', false, "%s", f->name);
        size_t n = strlen(f->etag);
        cr_expect_eq(n, 22, "%s", f->etag);
        cr_expect(f->etag[0] == '"' && f->etag[n - 1] == '"', "%s", f->etag);
        cr_expect_eq(gw_console_find(f->name), f);
    }
}

Test(gw_console, other_names_are_not_found)
{
    const char *bad[] = {
        "",           "..",    "../gateway/gw_console.c", "/index.html", "index.html/",
        "INDEX.HTML", "index", "CMakeLists.txt",          "%2e%2e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_null(gw_console_find(bad[i]), "%s", bad[i]);
    }
    cr_expect_null(gw_console_find(NULL));
}
