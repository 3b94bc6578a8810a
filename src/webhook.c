/* Placeholder until the receiver lands (issue 6): refuses to start. */
#include "webhook.h"

#include <stdio.h>
#include <string.h>

struct webhook *webhook_start(const struct options *o, struct sync *sync,
                              struct store *st, char *err, size_t errlen)
{
    (void)o;
    (void)sync;
    (void)st;
    snprintf(err, errlen, "not implemented yet");
    return NULL;
}

void webhook_stop(struct webhook *w)
{
    (void)w;
}

void *webhook_status_json(struct webhook *w)
{
    (void)w;
    return NULL;
}

void webhook_sign(const char *secret, const char *body, size_t len, char out[44])
{
    (void)secret;
    (void)body;
    (void)len;
    out[0] = '\0';
}
