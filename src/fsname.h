/*
 * fsname.h — the escaping of Kombo ids into file names (SPEC §2).
 *
 * Bytes outside [A-Za-z0-9._:-], and a leading '.', become %XX (upper-case
 * hex), so no id can produce "/", "..", a hidden file or a NUL. The mapping
 * is injective ('%' itself is escaped), so two ids never share a name.
 *
 * Ownership: the result is appended to a caller-owned struct buf.
 */
#ifndef KOMBOFS_FSNAME_H
#define KOMBOFS_FSNAME_H

#include <stddef.h>

#include "buf.h"

void fsname_escape(const char *id, size_t len, struct buf *out);

#endif
