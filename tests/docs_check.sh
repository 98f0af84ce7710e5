#!/usr/bin/env bash
# The repository explains itself: every document a comment, script or README names exists, every
# section named as `path.md "Section"` is a heading or a bold bullet of that document, and nothing
# points back to the design notes that used to live outside the repository (the design contract
# and the API notes). Run by ctest as docs_check (label docs); usage: docs_check.sh SOURCE_DIR.
set -u
root=${1:?usage: docs_check.sh SOURCE_DIR}
cd "$root" || exit 2
fail=0

# The files whose comments and text are checked: sources, scripts, docs, templates, man pages.
list_files() {
    find . \( -name build -o -name 'build-*' -o -name node_modules -o -name .git \) -prune -o \
        -type f \( -name '*.c' -o -name '*.h' -o -name '*.md' -o -name '*.js' -o -name '*.sh' \
        -o -name '*.in' -o -name '*.1' -o -name '*.5' -o -name '*.yaml' -o -name '*.txt' \) \
        -print | sort
}

# The documents a name from FILE may mean: relative to FILE's folder, and to the repository root
# (a bare README.md in reconcile/README.md may mean either).
resolve() {
    local from=$1 doc=$2
    [ -f "$(dirname "$from")/$doc" ] && printf '%s\n' "$(dirname "$from")/$doc"
    [ -f "$doc" ] && printf '%s\n' "$doc"
    return 0
}

# True when one of the DOCS has a heading (its number aside) or a bold bullet or paragraph that
# starts with SECTION.
has_section() {
    local sec=$1
    shift
    awk -v s="$sec" '
        /^#+ / { h = $0; sub(/^#+ +([0-9]+\. )?/, "", h); if (index(h, s) == 1) found = 1 }
        /^([-*] )?\*\*/ { b = $0; sub(/^([-*] )?\*\*`?/, "", b); if (index(b, s) == 1) found = 1 }
        END { exit found ? 0 : 1 }' "$@"
}

self=tests/docs_check.sh
while IFS= read -r f; do
    [ "$f" = "./$self" ] && continue
    if grep -nE 'DESIGN[.]md|API[-]NOTES' "$f" /dev/null; then
        echo "docs_check: $f points to the old design notes; name the in-repo document instead"
        fail=1
    fi
    while IFS=: read -r line ref; do
        doc=${ref%%.md*}.md
        case $doc in *DESIGN[.]md | *API[-]NOTES[.]md | '.md') continue ;; esac
        case $doc in http* | *'*'*) continue ;; esac
        mapfile -t paths < <(resolve "$f" "$doc")
        if [ ${#paths[@]} -eq 0 ]; then
            echo "docs_check: $f:$line names $doc, which does not exist"
            fail=1
            continue
        fi
        if [[ $ref == *'.md "'* ]]; then
            sec=${ref#*.md \"}
            sec=${sec%\"}
            if ! has_section "$sec" "${paths[@]}"; then
                echo "docs_check: $f:$line names section \"$sec\" of $doc, which has none"
                fail=1
            fi
        fi
    done < <(sed -E 's/\\-/-/g; s/\[[^]]*\]\(/(/g' "$f" | grep -noE '[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md( "[^"]+")?')
done < <(list_files)

[ $fail -eq 0 ] && echo "docs_check: every named document and section exists"
exit $fail
