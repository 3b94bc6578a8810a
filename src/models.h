/*
 * models.h — the one table of what kombofs mirrors: directory name, Kombo
 * API path, the Kombo model names whose data-changed webhook triggers a
 * delta fetch of it (kombo-api.md §5), and the top-level keys that hold
 * embedded objects (for the change log's "nested", SPEC §3).
 *
 * Everything here is static, read-only data; nothing is allocated.
 */
#ifndef KOMBOFS_MODELS_H
#define KOMBOFS_MODELS_H

#define MODEL_COUNT 9

struct model {
    int index;                      /* position in models_table, 0..8 */
    const char *dir;                /* "employees" */
    const char *path;               /* "/hris/employees", appended to --api-url */
    const char *const *triggers;    /* NULL-terminated Kombo model names */
    const char *const *nested;      /* NULL-terminated embedded-object keys */
};

extern const struct model models_table[MODEL_COUNT];

/* The model whose directory is `dir`, or NULL. */
const struct model *models_by_dir(const char *dir);

/* Bit mask (1u << index) of the models that a webhook naming the Kombo
 * model `name` (e.g. "hris_employments") must refetch; 0 if none. */
unsigned models_mask_for_kombo_model(const char *name);

/* All models. */
#define MODELS_ALL ((1u << MODEL_COUNT) - 1)

/* Parse a comma-separated list of directory names into a mask.
 * Returns 0 and sets *mask, or -1 naming the first unknown entry in *bad
 * (a pointer into `list`, not NUL-terminated at the comma; *badlen its length). */
int models_parse_list(const char *list, unsigned *mask, const char **bad,
                      int *badlen);

#endif
