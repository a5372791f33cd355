/*  gw_api_strat — GET /api/strategies, answered by the gateway itself from
    the config file it loaded at startup (--config / BICKY_CONFIG: the same
    file as the nodes'; without one, the built-in echo). Only non-secret
    fields: name, kind, model, tools, max_turns (null for echo, which makes
    no model call), whether it is the default; never base_url, api_key_env
    or a key. Loop thread only. */
#define LOG_MODULE "gw_api"
#include "gateway/gateway_internal.h"

#include "common/cfg_file.h"

static json_t *s_strategy(const cfg_strategy_t *s, bool is_default)
{
    json_t *tools = json_array();
    for (size_t i = 0; i < s->tools_count; i++) {
        json_array_append_new(tools, json_string(s->tools[i]));
    }
    /* Every entry has every documented key: max_turns bounds model calls, and an
       echo turn makes none, so it is null there (as model is). */
    json_t *max_turns = s->kind == CFG_STRATEGY_ECHO ? json_null() : json_integer(s->max_turns);
    return json_pack("{s:s, s:s, s:s?, s:b, s:o, s:o}", "name", s->name, "kind",
                     cfg_strategy_kind_name(s->kind), "model", s->model, "default", is_default,
                     "tools", tools, "max_turns", max_turns);
}

void gw_h_strategies(gw_req_t *req)
{
    const cfg_file_t *cfg = req->srv->cfg->strategies;
    cfg_file_t *builtin = cfg ? NULL : cfg_file_load(NULL, NULL, 0);
    const cfg_file_t *use = cfg ? cfg : builtin;
    json_t *data = json_array();
    for (size_t i = 0; i < cfg_file_count(use); i++) {
        const cfg_strategy_t *s = cfg_file_at(use, i);
        json_array_append_new(data, s_strategy(s, s == cfg_file_default_strategy(use)));
    }
    cfg_file_destroy(&builtin);
    gw_req_respond_value(req, 200, json_pack("{s:o, s:n}", "data", data, "next_cursor"));
}
