/*  fuzz_cfg_file — the strategies config file (INI, inih) through
    cfg_file_load_string, as a node loads it at startup; a config that loads
    is read back through every accessor. */
#include "common/cfg_file.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char err[512];
    err[0] = 0;
    cfg_file_t *cfg = cfg_file_load_string(text, "<fuzz>", err, sizeof err);
    free(text);
    if (!cfg) {
        FUZZ_CHECK(err[0] && strlen(err) < sizeof err);
        return 0;
    }
    const cfg_strategy_t *def = cfg_file_default_strategy(cfg);
    FUZZ_CHECK(def && cfg_file_count(cfg) > 0);
    for (size_t i = 0; i < cfg_file_count(cfg); i++) {
        const cfg_strategy_t *s = cfg_file_at(cfg, i);
        FUZZ_CHECK(s && s->name && cfg_file_strategy(cfg, s->name) == s);
        FUZZ_CHECK(s->tools_count <= CFG_FILE_MAX_TOOLS);
        for (size_t t = 0; t < s->tools_count; t++) {
            FUZZ_CHECK(cfg_strategy_has_tool(s, s->tools[t]));
        }
        cfg_strategy_kind_name(s->kind);
        cfg_strategy_api_key(s);
    }
    FUZZ_CHECK(cfg_file_at(cfg, cfg_file_count(cfg)) == NULL);
    cfg_file_destroy(&cfg);
    FUZZ_CHECK(cfg == NULL);
    return 0;
}
