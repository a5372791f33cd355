/*  reg_ctl_keys — `bickyctl keys init DIR` and `bickyctl keys add ROLE NAME`:
    the cluster's CURVE keys directory (common/keys.h has the layout). */
#include "common/keys.h"
#include "registry/reg_ctl.h"

#include <stdio.h>

int reg_ctl_keys_init(reg_ctl_t *ctl, int argc, char **argv)
{
    char **pos = NULL;
    int rc = reg_ctl_parse(ctl, "DIR [--json]", NULL, argc, argv, 1, &pos);
    if (rc >= 0) {
        return rc;
    }
    char err[1024];
    if (keys_init(pos[0], err, sizeof err) < 0) {
        return reg_ctl_fail("%s", err);
    }
    if (ctl->json) {
        printf("{\"dir\":");
        reg_ctl_json_str(stdout, pos[0]);
        printf("}\n");
    } else {
        printf("keys directory %s: public/{registry,node,gateway,admin}/ (copy to every host), "
               "secret/ (mode 700)\n"
               "next: bickyctl --keys %s keys add registry registry (then node, gateway, admin "
               "keys)\n",
               pos[0], pos[0]);
    }
    return REG_CTL_EXIT_OK;
}

int reg_ctl_keys_add(reg_ctl_t *ctl, int argc, char **argv)
{
    char **pos = NULL;
    int rc =
        reg_ctl_parse(ctl, "ROLE NAME --keys DIR [--json]  (ROLE = registry|node|gateway|admin)",
                      NULL, argc, argv, 2, &pos);
    if (rc >= 0) {
        return rc;
    }
    keys_role_t role = keys_role_parse(pos[0]);
    if (role == KEYS_ROLE_NONE) {
        fprintf(stderr, "bickyctl: unknown role '%s': one of registry, node, gateway, admin\n",
                pos[0]);
        return REG_CTL_EXIT_USAGE;
    }
    if (!ctl->kc.keys || !*ctl->kc.keys) {
        fprintf(stderr, "bickyctl: keys add needs --keys DIR (BICKY_KEYS)\n");
        return REG_CTL_EXIT_USAGE;
    }
    char path[1100], err[1024];
    if (keys_add(ctl->kc.keys, role, pos[1], path, sizeof path, err, sizeof err) < 0) {
        return reg_ctl_fail("%s", err);
    }
    if (ctl->json) {
        printf("{\"role\":\"%s\",\"name\":", keys_role_name(role));
        reg_ctl_json_str(stdout, pos[1]);
        printf(",\"cert\":");
        reg_ctl_json_str(stdout, path);
        printf("}\n");
    } else {
        printf("%s key %s: secret %s (give it as --cert), public %s/public/%s/%s.cert\n",
               keys_role_name(role), pos[1], path, ctl->kc.keys, keys_role_name(role), pos[1]);
    }
    return REG_CTL_EXIT_OK;
}
