/*
 * control.h — the .control command language (SPEC §4):
 *   sync | sync <dir> | resync | resync <dir>   (one per write, "\n" allowed)
 * Pure parsing, no I/O; the caller runs the command.
 */
#ifndef KOMBOFS_CONTROL_H
#define KOMBOFS_CONTROL_H

#include <stddef.h>

#include "sync.h"

/* Parse one write. On success returns 0 with *kind and *mask (a single
 * model or MODELS_ALL); returns -1 for anything else (EINVAL). */
int control_parse(const char *buf, size_t len, enum sync_kind *kind,
                  unsigned *mask);

#endif
