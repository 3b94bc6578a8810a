#include "tap.h"
#include "webhook.h"

int main(void)
{
    char sig[44];
    const char body[] = "{\"id\":\"Y7mQ2bWc9LkTz4HfPx3nRs8e\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"personio:Q4vX8kLm2PzR7tYb3NcW9sHd\",\"integration_tool\":\"personio\",\"integration_category\":\"HRIS\",\"changed_models\":[{\"name\":\"hris_employees\"},{\"name\":\"hris_employments\"}]}}";
    (void)sig;
    (void)body;
    ok(1, "placeholder until the receiver lands");
    return tap_done_testing();
}
