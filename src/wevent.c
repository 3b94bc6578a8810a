/*
 * wevent.c — the webhook receiver's pure parts: signature, event
 * classification, --webhook-listen (SPEC §6, kombo-api.md §5–§6). See
 * wevent.h for the contract; webhook.c is the receiver that calls them.
 */
#include "wevent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "models.h"

#define SIG_LEN 43                      /* base64url of 32 bytes, no padding */

/* ------------------------------------------------------------------------ */
/* Signature                                                                */
/* ------------------------------------------------------------------------ */

static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (left > 1)
            out[o++] = tab[(v >> 6) & 63];
        if (left > 2)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

void wevent_sign(const char *secret, const char *body, size_t len, char out[44])
{
    static const unsigned char empty[1];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *key = secret ? secret : "";
    out[0] = '\0';
    if (!HMAC(EVP_sha256(), key, (int)strlen(key),
              body ? (const unsigned char *)body : empty, len, mac, &maclen) ||
        maclen != 32)
        return;
    base64url(mac, maclen, out);
    OPENSSL_cleanse(mac, sizeof mac);
}

int wevent_verify(const char *secret, const char *body, size_t len,
                  const char *signature)
{
    char want[44];
    char got[SIG_LEN];
    size_t n = signature ? strlen(signature) : 0;
    if (!secret || !*secret)
        return 0;       /* never accept anything without a secret */
    wevent_sign(secret, body, len, want);
    memset(got, 0, sizeof got);
    if (n)
        memcpy(got, signature, n < SIG_LEN ? n : SIG_LEN);
    /* Always compare all SIG_LEN bytes; the length is checked afterwards. */
    int diff = CRYPTO_memcmp(want, got, SIG_LEN);
    int good = (diff == 0) & (n == SIG_LEN) & (want[0] != '\0');
    OPENSSL_cleanse(want, sizeof want);
    return good;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* An event id: 1..127 printable ASCII characters without spaces. */
static int copy_id(const char *s, char *dst, size_t n)
{
    size_t len = strlen(s);
    if (len == 0 || len >= n)
        return -1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return -1;
    memcpy(dst, s, len + 1);
    return 0;
}

/* obj[key] as a string; NULL if absent, null, or (with *bad set) another type. */
static const char *opt_string(json_t *obj, const char *key, int *bad)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_string(v) && !json_is_null(v))
        *bad = 1;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The integration a parse is for: one id, or any (then copied to *any). */
struct target {
    const char *integration;
    char *any;                  /* NULL: only `integration` */
    size_t anylen;
};

/* 1 ours, 0 another integration's, -1 an id that cannot be taken (too long). */
static int is_ours(const char *id, const struct target *t)
{
    if (t->any)
        return copy_id(id, t->any, t->anylen) == 0 ? 1 : -1;
    return t->integration && strcmp(id, t->integration) == 0;
}

static enum wevent_kind parse_data_changed(json_t *data, const struct target *integration,
                                            unsigned *mask)
{
    json_t *iid = json_object_get(data, "integration_id");
    if (!json_is_string(iid))
        return WEVENT_INVALID;
    int ours = is_ours(json_string_value(iid), integration);
    if (ours <= 0)
        return ours < 0 ? WEVENT_INVALID : WEVENT_IGNORED;
    json_t *models = json_object_get(data, "changed_models");
    if (!json_is_array(models))
        return WEVENT_INVALID;
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        json_t *name = json_object_get(m, "name");
        if (!json_is_object(m) || !json_is_string(name))
            return WEVENT_INVALID;
        *mask |= models_mask_for_kombo_model(json_string_value(name));
    }
    return WEVENT_DATA_CHANGED;
}

static enum wevent_kind parse_deleted(json_t *data, const struct target *integration)
{
    json_t *iid = json_object_get(data, "id");
    if (!json_is_string(iid))
        return WEVENT_INVALID;
    int ours = is_ours(json_string_value(iid), integration);
    if (ours <= 0)
        return ours < 0 ? WEVENT_INVALID : WEVENT_IGNORED;
    if (!json_is_string(json_object_get(data, "deleted_at")))
        return WEVENT_INVALID;
    return WEVENT_INTEGRATION_DELETED;
}

static enum wevent_kind parse_state(json_t *data, const struct target *integration)
{
    static const char *const keys[] = { "state", "setup_status", "qa_status",
                                        "updated_at" };
    json_t *iid = json_object_get(data, "integration_id");
    if (!json_is_string(iid))
        return WEVENT_INVALID;
    int ours = is_ours(json_string_value(iid), integration);
    if (ours <= 0)
        return ours < 0 ? WEVENT_INVALID : WEVENT_IGNORED;
    int bad = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        opt_string(data, keys[i], &bad);
    return bad ? WEVENT_INVALID : WEVENT_INTEGRATION_STATE;
}

static enum wevent_kind parse_created(json_t *data, const struct target *integration)
{
    if (!integration->any)
        return WEVENT_IGNORED;      /* single mode does not act on it */
    json_t *iid = json_object_get(data, "id");
    if (!json_is_string(iid))
        return WEVENT_INVALID;
    return is_ours(json_string_value(iid), integration) > 0 ? WEVENT_INTEGRATION_CREATED
                                                            : WEVENT_INVALID;
}

static void parse(const char *body, size_t len, const struct target *integration,
                  struct wevent *ev, json_t **root_out);

void wevent_parse(const char *body, size_t len, const char *integration,
                  struct wevent *ev, json_t **root_out)
{
    struct target t = { integration, NULL, 0 };
    parse(body, len, &t, ev, root_out);
}

void wevent_parse_any(const char *body, size_t len, struct wevent *ev, json_t **root_out)
{
    struct wevent tmp;
    struct target t = { NULL, tmp.integration, sizeof tmp.integration };
    parse(body, len, &t, &tmp, root_out);
    *ev = tmp;
}

static void parse(const char *body, size_t len, const struct target *integration,
                  struct wevent *ev, json_t **root_out)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = WEVENT_INVALID;
    if (root_out)
        *root_out = NULL;
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *id = json_object_get(root, "id");
    json_t *type = json_object_get(root, "type");
    json_t *data = json_object_get(root, "data");
    if (!json_is_object(root) || !json_is_string(id) || !json_is_string(type) ||
        !json_is_object(data) ||
        copy_id(json_string_value(id), ev->id, sizeof ev->id) < 0) {
        ev->id[0] = '\0';
        json_decref(root);
        return;
    }
    const char *t = json_string_value(type);
    if (strcmp(t, "data-changed") == 0)
        ev->kind = parse_data_changed(data, integration, &ev->mask);
    else if (strcmp(t, "integration-deleted") == 0)
        ev->kind = parse_deleted(data, integration);
    else if (strcmp(t, "integration-state-changed") == 0)
        ev->kind = parse_state(data, integration);
    else if (strcmp(t, "integration-created") == 0)
        ev->kind = parse_created(data, integration);
    else
        ev->kind = WEVENT_IGNORED;      /* integration-created, sync-finished, ... */
    if (ev->kind == WEVENT_INVALID)
        ev->mask = 0;
    if (root_out && ev->kind != WEVENT_INVALID)
        *root_out = root;
    else
        json_decref(root);
}

/* ------------------------------------------------------------------------ */
/* --webhook-listen                                                         */
/* ------------------------------------------------------------------------ */

static int parse_port(const char *s, in_port_t *port)
{
    unsigned long v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = htons((in_port_t)v);
    return 0;
}

static int listen_fail(char *err, size_t errlen, const char *value, const char *why)
{
    snprintf(err, errlen, "--webhook-listen=%.100s: %s", value, why);
    return -1;
}

int wevent_parse_listen(const char *value, struct sockaddr_storage *sa,
                        socklen_t *salen, char *err, size_t errlen)
{
    char host[64];
    const char *colon;
    in_port_t port;
    memset(sa, 0, sizeof *sa);
    if (!value || !*value)
        return listen_fail(err, errlen, "", "expected ADDR:PORT, [IPv6]:PORT or :PORT");
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (!close || close[1] != ':')
            return listen_fail(err, errlen, value, "expected [IPv6]:PORT");
        const char *addr = value + 1;
        colon = close + 1;
        if ((size_t)(close - addr) >= sizeof host || close == addr)
            return listen_fail(err, errlen, value, "not an IPv6 address");
        memcpy(host, addr, (size_t)(close - addr));
        host[close - addr] = '\0';
    } else {
        colon = strchr(value, ':');
        if (!colon)
            return listen_fail(err, errlen, value, "expected ADDR:PORT, [IPv6]:PORT or :PORT");
        if (strchr(colon + 1, ':'))
            return listen_fail(err, errlen, value, "an IPv6 address must be in brackets: [ADDR]:PORT");
        if ((size_t)(colon - value) >= sizeof host)
            return listen_fail(err, errlen, value, "not an IPv4 address");
        memcpy(host, value, (size_t)(colon - value));
        host[colon - value] = '\0';
    }
    if (parse_port(colon + 1, &port) < 0)
        return listen_fail(err, errlen, value, "the port must be a number from 1 to 65535");

    if (value[0] == '[' || host[0] == '\0') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
        if (host[0] == '\0')
            s6->sin6_addr = in6addr_any;
        else if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return listen_fail(err, errlen, value, "not an IPv6 address");
        *salen = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = port;
    if (strcmp(host, "localhost") == 0)
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return listen_fail(err, errlen, value, "ADDR must be a numeric IPv4 address, localhost or [IPv6]");
    *salen = sizeof *s4;
    return 0;
}
