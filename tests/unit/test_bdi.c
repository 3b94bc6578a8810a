/*
 * test_bdi.c — finding a FUSE mount's device in mountinfo text (bdi.h):
 * escaped mount points, stacked mounts, optional fields, other file system
 * types, prefixes, short lines, a missing final newline.
 */
#include <string.h>

#include "bdi.h"
#include "tap.h"

static const char *find(const char *text, const char *path)
{
    static char dev[BDI_DEV_SIZE];
    return bdi_find(text, path, dev, sizeof dev) == 0 ? dev : "none";
}

int main(void)
{
    const char *one =
        "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 22 0:52 / /tmp/a rw,nosuid,nodev,relatime shared:20 - fuse.kombofs kombofs rw,user_id=0\n";
    ok(strcmp(find(one, "/tmp/a"), "0:52") == 0, "a fuse.kombofs mount: %s", find(one, "/tmp/a"));
    ok(strcmp(find(one, "/"), "none") == 0, "an ext4 mount is no FUSE mount");
    ok(strcmp(find(one, "/tmp"), "none") == 0 && strcmp(find(one, "/tmp/ab"), "none") == 0 &&
       strcmp(find(one, "/tmp/"), "none") == 0, "a prefix or a longer path is another path");

    const char *stacked =
        "40 22 0:52 / /srv/hr rw - fuse.kombofs kombofs rw\n"
        "41 40 0:53 / /srv/hr rw master:3 shared:4 - fuse kombofs rw\n"
        "42 41 0:54 / /srv/hr rw - tmpfs tmpfs rw\n";
    ok(strcmp(find(stacked, "/srv/hr"), "0:53") == 0,
       "stacked mounts: the last FUSE one (type fuse), not the tmpfs on top: %s",
       find(stacked, "/srv/hr"));

    const char *escaped = "40 22 0:60 / /mnt/hr\\040data\\134x rw - fuse.kombofs kombofs rw";
    ok(strcmp(find(escaped, "/mnt/hr data\\x"), "0:60") == 0,
       "\\040 and \\134 in the mount point, no final newline");
    ok(strcmp(find(escaped, "/mnt/hr\\040data\\134x"), "none") == 0,
       "the escaped text is not the path");

    const char *odd =
        "40 22 0:61 / /x\n"
        "41 22 0:62 / /y rw - fuseblk /dev/sdb rw\n"
        "42 22 0:63 / /z rw -\n"
        "43 22 0:64 / /w rw - fuse.\n"
        "44 22 0:65 / /v\\04 rw - fuse x rw\n";
    ok(strcmp(find(odd, "/x"), "none") == 0, "a line cut short");
    ok(strcmp(find(odd, "/y"), "none") == 0, "fuseblk is not asked for");
    ok(strcmp(find(odd, "/z"), "none") == 0 && strcmp(find(odd, "/w"), "none") == 0,
       "no type, or an empty subtype");
    ok(strcmp(find(odd, "/v\\04"), "0:65") == 0, "a backslash without three octal digits is itself");
    ok(strcmp(find("", "/x"), "none") == 0, "empty text");

    char small[3];
    ok(bdi_find(one, "/tmp/a", small, sizeof small) == -1, "a device that does not fit: none");
    ok(bdi_set_read_ahead("../../etc", 1024) < 0, "a device name with a slash is refused");
    return tap_done_testing();
}
