/*  test_endpoint — bind versus advertise: wildcard binds need an advertised
    address, advertised addresses are checked (no wildcard, tcp only, a valid
    port), the advertised endpoint takes the bound port when it names none, and
    the local endpoint for children turns a wildcard host into loopback. */
#include "common/endpoint.h"

#include <criterion/criterion.h>
#include <string.h>

static int s_check(const char *bind, const char *adv, char *err)
{
    return endpoint_check("--bind", bind, "--advertise", adv, err, 256);
}

Test(endpoint, wildcards_are_recognised)
{
    cr_assert(endpoint_is_wildcard("tcp://*:7110"));
    cr_assert(endpoint_is_wildcard("tcp://0.0.0.0:7110"));
    cr_assert(endpoint_is_wildcard("tcp://[::]:7110"));
    cr_assert(endpoint_is_wildcard("tcp://0.0.0.0:*"));
    cr_assert_not(endpoint_is_wildcard("tcp://127.0.0.1:7110"));
    cr_assert_not(endpoint_is_wildcard("tcp://[::1]:7110"));
    cr_assert_not(endpoint_is_wildcard("tcp://eth0:7110"));
    cr_assert_not(endpoint_is_wildcard("ipc:///tmp/x"));
    cr_assert_not(endpoint_is_wildcard(NULL));
}

Test(endpoint, a_concrete_bind_needs_no_advertise)
{
    char err[256] = "";
    cr_assert_eq(s_check("tcp://127.0.0.1:7110", NULL, err), 0);
    cr_assert_eq(s_check("tcp://127.0.0.1:7110", "", err), 0);
    cr_assert_eq(s_check("ipc:///tmp/node.sock", NULL, err), 0);
    cr_assert_eq(s_check("tcp://127.0.0.1:*", NULL, err), 0);
}

Test(endpoint, a_wildcard_bind_without_advertise_is_refused)
{
    const char *binds[] = {"tcp://*:7110", "tcp://0.0.0.0:7110", "tcp://[::]:7110"};
    for (size_t i = 0; i < sizeof binds / sizeof *binds; i++) {
        char err[256] = "";
        cr_assert_eq(s_check(binds[i], NULL, err), -1, "%s", binds[i]);
        cr_assert(strstr(err, "--bind") && strstr(err, "--advertise"), "%s", err);
        cr_assert(strstr(err, binds[i]), "%s", err);
    }
}

Test(endpoint, bad_advertise_values_are_refused)
{
    const char *bad[] = {
        "10.0.0.2:7110",   "tcp://*:7110",     "tcp://0.0.0.0:7110",   "tcp://[::]:7110",
        "tcp://:7110",     "tcp://10.0.0.2:0", "tcp://10.0.0.2:70000", "tcp://10.0.0.2:7x",
        "tcp://10.0.0.2:", "tcp://a b:7110",   "tcp://h/x:7110",       "tcp://a;b:7110",
        "tcp://fe80::1",   "tcp://[fe80::1",   "udp://10.0.0.2:7110"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        cr_assert_eq(s_check("tcp://0.0.0.0:7110", bad[i], err), -1, "%s", bad[i]);
        cr_assert(strstr(err, "--advertise"), "%s: %s", bad[i], err);
    }
    char err[256] = "";
    cr_assert_eq(s_check("ipc:///tmp/x", "tcp://10.0.0.2:7110", err), -1);
    cr_assert_eq(s_check("", "tcp://10.0.0.2:7110", err), -1);
}

Test(endpoint, good_advertise_values_are_accepted)
{
    const char *good[] = {"tcp://10.0.0.2:7110",      "tcp://10.0.0.2",       "tcp://10.0.0.2:*",
                          "tcp://node1.example:7110", "tcp://[fe80::1]:7110", "tcp://[fe80::1]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char err[256] = "";
        cr_assert_eq(s_check("tcp://0.0.0.0:7110", good[i], err), 0, "%s: %s", good[i], err);
    }
}

Test(endpoint, the_advertised_endpoint_takes_the_bound_port_when_it_names_none)
{
    char out[256];
    cr_assert_eq(endpoint_advertised("tcp://0.0.0.0:41234", "tcp://10.0.0.2", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://10.0.0.2:41234");
    cr_assert_eq(endpoint_advertised("tcp://0.0.0.0:41234", "tcp://10.0.0.2:*", out, sizeof out),
                 0);
    cr_assert_str_eq(out, "tcp://10.0.0.2:41234");
    cr_assert_eq(endpoint_advertised("tcp://0.0.0.0:41234", "tcp://10.0.0.2:7000", out, sizeof out),
                 0);
    cr_assert_str_eq(out, "tcp://10.0.0.2:7000");
    cr_assert_eq(endpoint_advertised("tcp://[::]:5", "tcp://[fe80::1]", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://[fe80::1]:5");
    cr_assert_eq(endpoint_advertised("tcp://127.0.0.1:5", NULL, out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://127.0.0.1:5");
    cr_assert_eq(endpoint_advertised("tcp://127.0.0.1:5", "", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://127.0.0.1:5");
    char small[8];
    cr_assert_eq(endpoint_advertised("tcp://127.0.0.1:5", NULL, small, sizeof small), -1);
}

Test(endpoint, the_local_endpoint_turns_a_wildcard_into_loopback)
{
    char out[256];
    cr_assert_eq(endpoint_local("tcp://0.0.0.0:7110", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://127.0.0.1:7110");
    cr_assert_eq(endpoint_local("tcp://[::]:7110", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://[::1]:7110");
    cr_assert_eq(endpoint_local("tcp://127.0.0.3:7110", out, sizeof out), 0);
    cr_assert_str_eq(out, "tcp://127.0.0.3:7110");
    cr_assert_eq(endpoint_local("ipc:///tmp/x", out, sizeof out), 0);
    cr_assert_str_eq(out, "ipc:///tmp/x");
}
