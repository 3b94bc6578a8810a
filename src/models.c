#include "models.h"

#include <stddef.h>
#include <string.h>

#define LIST(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

const struct model models_table[MODEL_COUNT] = {
    { 0, "employees", "/hris/employees",
      LIST("hris_employees", "hris_employments", "hris_join_employees_teams",
           "hris_legal_entities", "hris_locations", "hris_teams",
           "hris_time_off_balances"),
      LIST("employments", "time_off_balances", "manager", "groups", "teams",
           "legal_entity", "work_location") },
    { 1, "employments", "/hris/employments", LIST("hris_employments"), NONE },
    { 2, "groups", "/hris/groups", LIST("hris_teams"), NONE },
    { 3, "absences", "/hris/absences",
      LIST("hris_absences", "hris_absence_types"), LIST("type") },
    /* The three rows below are inferred (kombo-api.md §5, open question 11). */
    { 4, "absence-types", "/hris/absence-types", LIST("hris_absence_types"),
      NONE },
    { 5, "time-off-balances", "/hris/time-off-balances",
      LIST("hris_time_off_balances", "hris_absence_types"), LIST("type") },
    { 6, "timesheets", "/hris/timesheets", LIST("hris_timesheets"), NONE },
    { 7, "legal-entities", "/hris/legal-entities", LIST("hris_legal_entities"),
      NONE },
    { 8, "locations", "/hris/locations", LIST("hris_locations"), NONE },
};

const struct model *models_by_dir(const char *dir)
{
    for (int i = 0; i < MODEL_COUNT; i++)
        if (strcmp(models_table[i].dir, dir) == 0)
            return &models_table[i];
    return NULL;
}

unsigned models_mask_for_kombo_model(const char *name)
{
    unsigned mask = 0;
    for (int i = 0; i < MODEL_COUNT; i++)
        for (const char *const *t = models_table[i].triggers; *t; t++)
            if (strcmp(*t, name) == 0)
                mask |= 1u << i;
    return mask;
}

int models_parse_list(const char *list, unsigned *mask, const char **bad,
                      int *badlen)
{
    unsigned m = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < MODEL_COUNT; i++) {
            if (strlen(models_table[i].dir) == n &&
                memcmp(models_table[i].dir, p, n) == 0) {
                m |= 1u << i;
                found = 1;
            }
        }
        if (!found) {
            *bad = p;
            *badlen = (int)n;
            return -1;
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    *mask = m;
    return 0;
}
