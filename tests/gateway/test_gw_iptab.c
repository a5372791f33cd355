/*  test_gw_iptab — the per-IP table (gw_iptab): address keys, connection
    counts and the per-IP limit, failed authentications blocking for the rest
    of their window, addresses forgotten when nothing is left to remember,
    and the capacity bound with its eviction rules. */
#include "gateway/gateway_internal.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

TestSuite(gw_iptab, .timeout = 10);

Test(gw_iptab, lifecycle)
{
    gw_iptab_t *t = gw_iptab_new(8, 3, 1000);
    cr_assert_not_null(t);
    cr_assert_eq(gw_iptab_size(t), 0);
    gw_iptab_destroy(&t);
    cr_assert_null(t);
    gw_iptab_destroy(&t);
}

Test(gw_iptab, keys_of_addresses)
{
    char key[GW_IP_KEY_MAX];
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    cr_assert_eq(gw_iptab_key((struct sockaddr *)&a4, key), 0);
    cr_assert_str_eq(key, "192.0.2.7", "no port");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    inet_pton(AF_INET6, "2001:db8::ffff:ffff:ffff:ffff", &a6.sin6_addr);
    cr_assert_eq(gw_iptab_key((struct sockaddr *)&a6, key), 0);
    cr_assert_str_eq(key, "2001:db8::ffff:ffff:ffff:ffff");
    struct sockaddr un = {.sa_family = AF_UNIX};
    cr_assert_eq(gw_iptab_key(&un, key), -1);
    cr_assert_str_eq(key, "?");
    cr_assert_eq(gw_iptab_key(NULL, key), -1);
}

Test(gw_iptab, connections_per_address_are_limited)
{
    gw_iptab_t *t = gw_iptab_new(8, 3, 1000);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(gw_iptab_open(t, "10.0.0.1", 4, 100), 0);
    }
    cr_assert_eq(gw_iptab_open(t, "10.0.0.1", 4, 100), -1, "the fifth is refused");
    cr_assert_eq(gw_iptab_conns(t, "10.0.0.1"), 4, "a refusal counts nothing");
    cr_assert_eq(gw_iptab_open(t, "10.0.0.2", 4, 100), 0, "another address is not limited");
    gw_iptab_close(t, "10.0.0.1");
    cr_assert_eq(gw_iptab_open(t, "10.0.0.1", 4, 100), 0, "one closed, one more allowed");
    cr_assert_eq(gw_iptab_open(t, "10.0.0.3", 0, 100), 0, "0 = no limit");
    for (int i = 0; i < 4; i++) {
        gw_iptab_close(t, "10.0.0.1");
    }
    gw_iptab_close(t, "10.0.0.1"); /* one too many: ignored */
    gw_iptab_close(t, "10.9.9.9"); /* never seen: ignored */
    cr_assert_eq(gw_iptab_conns(t, "10.0.0.1"), 0);
    cr_assert_eq(gw_iptab_size(t), 2, "an address with nothing left is forgotten");
    gw_iptab_destroy(&t);
}

Test(gw_iptab, failures_block_for_the_rest_of_the_window)
{
    gw_iptab_t *t = gw_iptab_new(8, 3, 1000);
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 0), 0);
    gw_iptab_fail(t, "10.0.0.1", 100);
    gw_iptab_fail(t, "10.0.0.1", 200);
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 250), 0, "two of three");
    gw_iptab_fail(t, "10.0.0.1", 300);
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 300), 800, "blocked until 100 + 1000");
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 1099), 1);
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.2", 300), 0, "other addresses are free");
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 1100), 0, "the window is over");
    cr_assert_eq(gw_iptab_size(t), 0, "and the address is forgotten");
    /* A new window starts with the next failure; old failures do not count. */
    gw_iptab_fail(t, "10.0.0.1", 1200);
    gw_iptab_fail(t, "10.0.0.1", 1300);
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 1300), 0);
    gw_iptab_destroy(&t);
}

Test(gw_iptab, zero_failures_means_never_blocked)
{
    gw_iptab_t *t = gw_iptab_new(8, 0, 1000);
    for (int i = 0; i < 100; i++) {
        gw_iptab_fail(t, "10.0.0.1", 100);
    }
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 100), 0);
    cr_assert_eq(gw_iptab_size(t), 0, "nothing is remembered");
    gw_iptab_destroy(&t);
}

Test(gw_iptab, connections_and_failures_share_one_entry)
{
    gw_iptab_t *t = gw_iptab_new(8, 2, 1000);
    cr_assert_eq(gw_iptab_open(t, "10.0.0.1", 0, 100), 0);
    gw_iptab_fail(t, "10.0.0.1", 100);
    gw_iptab_fail(t, "10.0.0.1", 100);
    gw_iptab_close(t, "10.0.0.1");
    cr_assert_eq(gw_iptab_size(t), 1, "the live window is kept after the close");
    cr_assert_eq(gw_iptab_blocked_ms(t, "10.0.0.1", 200), 900);
    gw_iptab_destroy(&t);
}

Test(gw_iptab, the_table_is_bounded)
{
    gw_iptab_t *t = gw_iptab_new(4, 2, 1000);
    char key[GW_IP_KEY_MAX];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "10.0.0.%d", i);
        cr_assert_eq(gw_iptab_open(t, key, 0, 100), 0);
    }
    cr_assert_eq(gw_iptab_open(t, "10.0.1.1", 0, 100), -1, "full of open connections: refused");
    gw_iptab_fail(t, "10.0.1.1", 100); /* no room: not remembered */
    cr_assert_eq(gw_iptab_size(t), 4);
    gw_iptab_close(t, "10.0.0.0");
    cr_assert_eq(gw_iptab_open(t, "10.0.1.1", 0, 100), 0, "a closed address made room");
    /* Failures from many addresses never grow the table past its capacity,
       and never evict an address that has connections open. */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "10.1.%d.%d", i / 256, i % 256);
        gw_iptab_fail(t, key, 200);
        cr_assert_leq(gw_iptab_size(t), 4);
    }
    for (int i = 1; i < 4; i++) {
        snprintf(key, sizeof key, "10.0.0.%d", i);
        cr_assert_eq(gw_iptab_conns(t, key), 1, "%s kept", key);
    }
    cr_assert_eq(gw_iptab_conns(t, "10.0.1.1"), 1);
    gw_iptab_destroy(&t);
}

Test(gw_iptab, eviction_prefers_finished_windows)
{
    gw_iptab_t *t = gw_iptab_new(2, 2, 1000);
    gw_iptab_fail(t, "10.0.0.1", 100);
    gw_iptab_fail(t, "10.0.0.1", 100); /* blocked until 1100 */
    gw_iptab_fail(t, "10.0.0.2", 100); /* its window ends at 1100 too */
    /* At 1050 both windows are live: one is evicted for the newcomer. */
    gw_iptab_fail(t, "10.0.0.3", 1050);
    cr_assert_eq(gw_iptab_size(t), 2);
    /* At 5000 every window is over: the newcomer takes a finished one and
       the blocked one is never chosen while a finished one exists. */
    gw_iptab_t *u = gw_iptab_new(2, 2, 1000);
    gw_iptab_fail(u, "10.0.0.1", 4500);
    gw_iptab_fail(u, "10.0.0.1", 4500); /* blocked until 5500 */
    gw_iptab_fail(u, "10.0.0.2", 100);  /* finished */
    gw_iptab_fail(u, "10.0.0.3", 5000);
    cr_assert_eq(gw_iptab_blocked_ms(u, "10.0.0.1", 5000), 500, "the blocked one stays");
    gw_iptab_destroy(&u);
    gw_iptab_destroy(&t);
}
