/*  fuzz_sse_resume — the SSE resume id: a Last-Event-ID header value (or
    ?after=) as both SSE routes read it (gw_parse_int from 0 to INT64_MAX in
    gw_api_events.c and gw_legacy.c), checked against a reference reading of
    the same text; an accepted id must come back out of the frames the
    streams write (gw_sse_frame, gw_legacy_sse_frame) as the same id. The
    same text is also the WebSocket join's last_event_id (gw_phx_resume_point),
    as a string and as JSON. Byte 0 picks the legacy event type. */
#include "gateway/gw_legacy.h"
#include "gateway/gw_ws.h"
#include "tests/fuzz/fuzz.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>

/* The reference: decimal digits (a leading '-' only before a zero value),
   at most 20 characters, value up to INT64_MAX. */
static bool s_reference(const char *text, uint64_t *out)
{
    size_t n = strlen(text);
    const char *p = text[0] == '-' ? text + 1 : text;
    if (n == 0 || n > 20 || !*p) {
        return false;
    }
    uint64_t v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (text[0] == '-' && v != 0) {
        return false;
    }
    *out = v;
    return true;
}

/* The id line of a frame, read back as a client sends it again. */
static void s_frame_id(const char *frame, uint64_t id)
{
    char want[32];
    snprintf(want, sizeof want, "id: %" PRIu64 "\n", id);
    FUZZ_CHECK(strncmp(frame, want, strlen(want)) == 0);
    char *line = strndup(frame + 4, strcspn(frame + 4, "\n"));
    long long back;
    FUZZ_CHECK(gw_parse_int(line, 0, INT64_MAX, &back) == 0 && (uint64_t)back == id);
    free(line);
}

static const char *const s_types[] = {"message.created",      "message.completed",
                                      "conversation.created", "conversation.updated",
                                      "turn.started",         "message.delta"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *type = s_types[data[0] % (sizeof s_types / sizeof s_types[0])];
    char *text = strndup((const char *)data + 1, size - 1);
    long long v = -1;
    uint64_t ref = 0;
    bool ok = gw_parse_int(text, 0, INT64_MAX, &v) == 0;
    FUZZ_CHECK(ok == s_reference(text, &ref));
    if (ok && v > 0) {
        FUZZ_CHECK((uint64_t)v == ref);
        size_t len = 0;
        char *frame = gw_sse_frame((uint64_t)v, type, "{\"id\":1}", &len);
        FUZZ_CHECK(frame && len == strlen(frame));
        s_frame_id(frame, (uint64_t)v);
        free(frame);
        frame = gw_legacy_sse_frame((uint64_t)v, type, "{\"conversation_id\":\"c\"}", &len);
        FUZZ_CHECK(frame && len == strlen(frame));
        if (len) {
            s_frame_id(frame, (uint64_t)v);
        }
        free(frame);
    }
    /* The legacy stream shapes stored events; the text as one. */
    size_t len = 0;
    free(gw_legacy_sse_frame(1, type, text, &len));
    gw_phx_chan_t c;
    memset(&c, 0, sizeof c);
    json_t *payload = json_pack("{s:s?}", "last_event_id", text);
    if (gw_phx_resume_point(&c, payload) == 0 && c.resume) {
        FUZZ_CHECK(ok && c.last_id == ref);
    }
    json_decref(payload);
    json_t *any = json_loads(text, JSON_DECODE_ANY, NULL);
    payload = any ? json_pack("{s:o}", "last_event_id", any) : NULL;
    memset(&c, 0, sizeof c);
    if (payload && gw_phx_resume_point(&c, payload) == 0 && c.resume) {
        FUZZ_CHECK(c.last_id <= INT64_MAX);
    }
    json_decref(payload);
    free(text);
    return 0;
}
