#include <string.h>

#include "models.h"
#include "tap.h"

static unsigned bit(const char *dir)
{
    return 1u << models_by_dir(dir)->index;
}

int main(void)
{
    for (int i = 0; i < MODEL_COUNT; i++)
        ok(models_table[i].index == i && models_by_dir(models_table[i].dir) == &models_table[i],
           "row %d (%s) is at its index", i, models_table[i].dir);
    ok(models_by_dir("teams") == NULL, "no teams directory");
    ok(models_mask_for_kombo_model("hris_employments") == (bit("employees") | bit("employments")),
       "hris_employments -> employees, employments");
    ok(models_mask_for_kombo_model("hris_absence_types") ==
           (bit("absences") | bit("time-off-balances") | bit("absence-types")),
       "hris_absence_types -> absences, time-off-balances, absence-types");
    ok(models_mask_for_kombo_model("hris_teams") == (bit("employees") | bit("groups")),
       "hris_teams -> employees, groups");
    ok(models_mask_for_kombo_model("hris_join_employees_teams") == bit("employees"),
       "join table -> employees");
    ok(models_mask_for_kombo_model("hris_skills") == 0, "a model not mirrored -> nothing");
    unsigned m;
    const char *bad;
    int badlen;
    ok(models_parse_list("employees,absences", &m, &bad, &badlen) == 0 &&
       m == (bit("employees") | bit("absences")), "--models list");
    ok(models_parse_list("employees,nope", &m, &bad, &badlen) < 0 && badlen == 4 &&
       strncmp(bad, "nope", 4) == 0, "unknown entry named");
    ok(models_parse_list("employees,", &m, &bad, &badlen) < 0, "empty entry refused");
    return tap_done_testing();
}
