#include "snaps.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct snap {
    int64_t n;          /* 0: empty */
    char *text;
    size_t len;
    int64_t ns;
};

struct snaps {
    snaps_render_fn render;
    void *ctx;
    pthread_mutex_t lock;
    int64_t last;
    struct snap ring[SNAPS_KEEP];   /* snapshot n lives at n % SNAPS_KEEP */
};

struct snaps *snaps_new(snaps_render_fn render, void *ctx)
{
    struct snaps *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->render = render;
    s->ctx = ctx;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void snaps_free(struct snaps *s)
{
    if (!s)
        return;
    for (int i = 0; i < SNAPS_KEEP; i++)
        free(s->ring[i].text);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int64_t snaps_take(struct snaps *s)
{
    char *text = s->render(s->ctx);     /* outside the lock: it may be slow */
    if (!text)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&s->lock);
    int64_t n = ++s->last;
    struct snap *p = &s->ring[n % SNAPS_KEEP];
    free(p->text);
    *p = (struct snap){ n, text, strlen(text), (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec };
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* With the lock held. */
static struct snap *find(struct snaps *s, int64_t n)
{
    struct snap *p = n > 0 ? &s->ring[n % SNAPS_KEEP] : NULL;
    return p && p->n == n ? p : NULL;
}

int snaps_stat(struct snaps *s, int64_t n, size_t *len, int64_t *ns)
{
    pthread_mutex_lock(&s->lock);
    struct snap *p = find(s, n);
    if (p) {
        *len = p->len;
        *ns = p->ns;
    }
    pthread_mutex_unlock(&s->lock);
    return p != NULL;
}

long snaps_read(struct snaps *s, int64_t n, size_t off, char *dst, size_t len)
{
    long copied = -1;
    pthread_mutex_lock(&s->lock);
    struct snap *p = find(s, n);
    if (p) {
        copied = 0;
        if (off < p->len) {
            copied = (long)(p->len - off < len ? p->len - off : len);
            memcpy(dst, p->text + off, (size_t)copied);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return copied;
}
