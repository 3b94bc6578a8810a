#include "control.h"

#include <string.h>

#include "models.h"

int control_parse(const char *buf, size_t len, enum sync_kind *kind,
                  unsigned *mask)
{
    char cmd[64];
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    if (len == 0 || len >= sizeof cmd || memchr(buf, '\0', len))
        return -1;
    memcpy(cmd, buf, len);
    cmd[len] = '\0';

    char *arg = strchr(cmd, ' ');
    if (arg)
        *arg++ = '\0';
    if (strcmp(cmd, "sync") == 0)
        *kind = SYNC_DELTA;
    else if (strcmp(cmd, "resync") == 0)
        *kind = SYNC_FULL;
    else
        return -1;
    if (!arg) {
        *mask = MODELS_ALL;
        return 0;
    }
    const struct model *m = models_by_dir(arg);
    if (!m)
        return -1;
    *mask = 1u << m->index;
    return 0;
}
