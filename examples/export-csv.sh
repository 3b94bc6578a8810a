#!/bin/bash
# export-csv.sh: every employee of a kombofs mount as one CSV row, for spreadsheets.
# See docs/recipes.md.
#
#   export-csv.sh [--bom] MNT [FILE]
#
# Columns: id, employee_number, first_name, last_name, display_full_name, work_email,
# job_title, employment_status, start_date (YYYY-MM-DD), department (the first group of
# type DEPARTMENT), manager_id; a header row first. RFC 4180 quoting (jq's @csv), UTF-8,
# LF line ends; an empty cell is a missing value. --bom writes a UTF-8 byte order mark
# first (for older Excel). Without FILE (or with -) the CSV goes to stdout; otherwise it
# is written to a temporary file (mode 0600) that replaces FILE once complete.
set -eu -o pipefail

prog=${0##*/}
usage() { echo "usage: $prog [--bom] MNT [FILE]"; }

bom=0
while [ $# -gt 0 ]; do
    case $1 in
        --bom) bom=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -?*) echo "$prog: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage >&2; exit 2; fi
mnt=${1%/}
out=${2:--}
command -v jq >/dev/null || { echo "$prog: jq is not installed" >&2; exit 2; }
[ -d "$mnt/employees" ] || { echo "$prog: $mnt/employees: not a kombofs mount" >&2; exit 1; }

header='["id", "employee_number", "first_name", "last_name", "display_full_name",
         "work_email", "job_title", "employment_status", "start_date", "department",
         "manager_id"]'
row='[.id, .employee_number, .first_name, .last_name, .display_full_name,
      .work_email, .job_title, .employment_status, .start_date[:10],
      (first(.groups[]? | select(.type == "DEPARTMENT") | .name) // null),
      .manager_id]'

export_csv() {
    if [ $bom -eq 1 ]; then
        printf '\357\273\277'
    fi
    jq -n -r "$header | @csv"
    find "$mnt/employees" -name '*.json' -exec cat -- {} + | jq -r "$row | @csv"
}

if [ "$out" = - ]; then
    export_csv
    exit
fi

dir=$(dirname -- "$out")
tmp=$(mktemp -- "$dir/.${out##*/}.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
export_csv >"$tmp"
mv -f -- "$tmp" "$out"
trap - EXIT
