/*
 * fuzz_webhook.c — the webhook receiver's pure parts (wevent.c, SPEC §6,
 * kombo-api.md §5): wevent_sign, wevent_verify, wevent_parse and
 * wevent_parse_listen.
 *
 * Input: [secret length][header length][secret][header][body...]
 * (each length is the byte mod 65; secret and header end at a NUL too,
 * like the C strings they become). The body is an exact-size heap copy.
 *
 * Properties:
 *  - sign: 43 characters of the base64url alphabet, deterministic; the
 *    kombo-api.md §5 test vector is checked once at start-up;
 *  - verify: 1 exactly when the secret is non-empty and the header is the
 *    signature, byte for byte (a prefix, an extension, a one-character
 *    change, NULL, or any other header: 0); a body changed in one bit no
 *    longer verifies;
 *  - parse: never crashes or leaks; a body jansson cannot parse (or that is
 *    not an object with string id and type and object data) is INVALID; an
 *    accepted event's id is jansson's, 1..127 printable ASCII; the mask is
 *    set only for DATA_CHANGED, within MODELS_ALL, and equals the union of
 *    models_mask_for_kombo_model over changed_models; without an
 *    integration of our own nothing is DATA_CHANGED, and an event INVALID
 *    without is INVALID with; the parsed document is handed back exactly
 *    when the kind is not INVALID, equal to jansson's;
 *  - parse_listen on the header string: never crashes; a success gives an
 *    AF_INET/AF_INET6 address with a port 1..65535 that prints and parses
 *    back to the same address; a failure leaves a one-line message that
 *    starts with "--webhook-listen=".
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "models.h"
#include "wevent.h"

#define OURS "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* kombo-api.md §5 test vector */
    static const char body[] =
        "{\"id\":\"Y7mQ2bWc9LkTz4HfPx3nRs8e\",\"type\":\"data-changed\",\"data\":{"
        "\"integration_id\":\"personio:Q4vX8kLm2PzR7tYb3NcW9sHd\",\"integration_tool\":"
        "\"personio\",\"integration_category\":\"HRIS\",\"changed_models\":[{\"name\":"
        "\"hris_employees\"},{\"name\":\"hris_employments\"}]}}";
    char sig[44];
    FUZZ_CHECK(sizeof body - 1 == 250, "test vector length %zu", sizeof body - 1);
    wevent_sign("test-webhook-secret", body, sizeof body - 1, sig);
    FUZZ_CHECK(strcmp(sig, "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU") == 0,
               "test vector signs as %s", sig);
    FUZZ_CHECK(wevent_verify("test-webhook-secret", body, sizeof body - 1,
                              "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU") == 1,
               "test vector does not verify");
    return 0;
}

static void check_signature(const char *secret, const char *header, char *body,
                            size_t len)
{
    char sig[44], again[44];
    wevent_sign(secret, body, len, sig);
    size_t n = strlen(sig);
    FUZZ_CHECK(n == 43, "signature of %zu characters", n);
    FUZZ_CHECK(strspn(sig, b64url) == 43, "signature '%s' outside base64url", sig);
    wevent_sign(secret, body, len, again);
    FUZZ_CHECK(strcmp(sig, again) == 0, "signing is not deterministic");

    int keyed = secret[0] != '\0';
    FUZZ_CHECK(wevent_verify(secret, body, len, sig) == keyed,
               "own signature: verify %d with secret '%s'", !keyed, secret);
    FUZZ_CHECK(wevent_verify(secret, body, len, NULL) == 0, "NULL header accepted");
    int want = keyed && strcmp(header, sig) == 0;
    FUZZ_CHECK(wevent_verify(secret, body, len, header) == want,
               "header '%s' against '%s': want %d", header, sig, want);

    /* Near misses of the right signature. */
    char near[64];
    memcpy(near, sig, 44);
    near[42] = '\0';                                /* a prefix */
    FUZZ_CHECK(wevent_verify(secret, body, len, near) == 0, "42-character prefix accepted");
    memcpy(near, sig, 43);
    near[43] = '=';                                 /* padded, or extended */
    near[44] = '\0';
    FUZZ_CHECK(wevent_verify(secret, body, len, near) == 0, "extended signature accepted");
    memcpy(near, sig, 44);
    size_t at = len ? (unsigned char)body[0] % 43 : 0;
    near[at] = near[at] == 'A' ? 'B' : 'A';         /* one character changed */
    FUZZ_CHECK(wevent_verify(secret, body, len, near) == 0, "changed signature accepted");

    if (len) {
        body[len - 1] ^= 1;                         /* one bit of the body */
        FUZZ_CHECK(wevent_verify(secret, body, len, sig) == 0, "changed body accepted");
        body[len - 1] ^= 1;
    }
}

/* The expected mask of a data-changed body jansson parsed. */
static unsigned expected_mask(json_t *root)
{
    unsigned mask = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(json_object_get(root, "data"), "changed_models"), i, m)
        mask |= models_mask_for_kombo_model(json_string_value(json_object_get(m, "name")));
    return mask;
}

static void check_parse(const char *body, size_t len)
{
    struct wevent ev, none;
    json_t *doc = json_null();
    wevent_parse(body, len, OURS, &ev, &doc);
    wevent_parse(body, len, NULL, &none, NULL);
    FUZZ_CHECK((doc != NULL) == (ev.kind != WEVENT_INVALID),
               "document %s for kind %d", doc ? "handed back" : "not handed back", (int)ev.kind);

    FUZZ_CHECK(ev.kind >= WEVENT_INVALID && ev.kind <= WEVENT_INTEGRATION_STATE,
               "kind %d", (int)ev.kind);
    FUZZ_CHECK(none.kind == WEVENT_INVALID || none.kind == WEVENT_IGNORED,
               "kind %d without an integration", (int)none.kind);
    FUZZ_CHECK(none.kind != WEVENT_INVALID || ev.kind == WEVENT_INVALID,
               "INVALID without an integration, %d with", (int)ev.kind);
    FUZZ_CHECK(memchr(ev.id, '\0', sizeof ev.id) != NULL, "id not terminated");
    FUZZ_CHECK((ev.mask & ~MODELS_ALL) == 0, "mask %#x", ev.mask);
    FUZZ_CHECK(ev.kind == WEVENT_DATA_CHANGED || ev.mask == 0,
               "mask %#x for kind %d", ev.mask, (int)ev.kind);

    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(!doc || json_equal(doc, root), "the document handed back is not jansson's");
    json_decref(doc);
    json_t *id = json_object_get(root, "id");
    if (!json_is_object(root) || !json_is_string(id) ||
        !json_is_string(json_object_get(root, "type")) ||
        !json_is_object(json_object_get(root, "data"))) {
        FUZZ_CHECK(ev.kind == WEVENT_INVALID, "kind %d for a body that is not the envelope",
                   (int)ev.kind);
        json_decref(root);
        return;
    }
    if (ev.kind != WEVENT_INVALID) {
        size_t n = strlen(ev.id);
        FUZZ_CHECK(n >= 1 && n <= 127, "id length %zu", n);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ev.id[i] >= 0x21 && ev.id[i] <= 0x7e, "id byte %#x", ev.id[i]);
        FUZZ_CHECK(strcmp(ev.id, json_string_value(id)) == 0, "id '%s', jansson '%s'",
                   ev.id, json_string_value(id));
    }
    if (ev.kind == WEVENT_DATA_CHANGED)
        FUZZ_CHECK(ev.mask == expected_mask(root), "mask %#x, want %#x", ev.mask,
                   expected_mask(root));
    json_decref(root);
}

static void check_listen(const char *value)
{
    struct sockaddr_storage sa, back;
    socklen_t salen = 0, backlen = 0;
    char err[256], err2[256];
    memset(err, 'x', sizeof err);
    int rc = wevent_parse_listen(value, &sa, &salen, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc < 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "message not terminated");
        FUZZ_CHECK(strncmp(err, "--webhook-listen=", 17) == 0, "message '%s'", err);
        FUZZ_CHECK(strchr(err, '\n') == NULL || strchr(value, '\n') != NULL,
                   "message of two lines");
        return;
    }
    char host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 16];
    unsigned port;
    if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa;
        FUZZ_CHECK(salen == sizeof *s4, "salen %u", (unsigned)salen);
        port = ntohs(s4->sin_port);
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(text, sizeof text, "%s:%u", host, port);
    } else {
        FUZZ_CHECK(sa.ss_family == AF_INET6, "family %d", sa.ss_family);
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa;
        FUZZ_CHECK(salen == sizeof *s6, "salen %u", (unsigned)salen);
        port = ntohs(s6->sin6_port);
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(text, sizeof text, "[%s]:%u", host, port);
    }
    FUZZ_CHECK(port >= 1 && port <= 65535, "port %u", port);
    FUZZ_CHECK(wevent_parse_listen(text, &back, &backlen, err2, sizeof err2) == 0,
               "'%s' (from '%s') does not parse back: %s", text, value, err2);
    FUZZ_CHECK(backlen == salen && memcmp(&back, &sa, salen) == 0,
               "'%s' parses back to another address", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t slen = data[0] % 65, hlen = data[1] % 65;
    data += 2;
    size -= 2;
    if (slen > size)
        slen = size;
    if (hlen > size - slen)
        hlen = size - slen;
    char *secret = fuzz_strdup(data, slen);
    char *header = fuzz_strdup(data + slen, hlen);
    size_t blen = size - slen - hlen;
    char *body = fuzz_dup(data + slen + hlen, blen);

    check_signature(secret, header, body, blen);
    check_parse(body, blen);
    check_listen(header);

    free(secret);
    free(header);
    free(body);
    return 0;
}
