#!/usr/bin/env bash
# ctest `packaging_deb` (label packaging): builds the .deb with CPack and checks what a user
# gets from it and from `cmake --install`:
#   - dpkg-deb -c lists every expected path (binaries, units, man pages, completions);
#   - the binaries run from an extracted copy (dpkg-deb -x), and the units' ExecStart points at
#     /usr/bin in the .deb and at the prefix after `cmake --install --prefix`;
#   - each man page renders with `man -l --warnings` and `groff -ww` without a warning;
#   - every option a command's --help lists is in imgrecon(1), every emulator flag is in its
#     --help and in imgrecon-emulator(1);
#   - the bash and zsh completions offer the commands and a command's options from the
#     installed binary (zsh only when it is installed).
# Usage: check_package.sh BUILD_DIR SOURCE_DIR. Exits 77 (skipped) without dpkg-deb or man.
set -euo pipefail
build=$1
src=$2
for tool in dpkg-deb cpack groff man; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# Outputs are captured before grep -q reads them: with pipefail, a producer killed by SIGPIPE when
# grep -q stops reading early would make a found match look like a failure.
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# ---- the .deb ----
(cd "$build" && cpack -G DEB -B "$tmp/cpack" >"$tmp/cpack.log" 2>&1) || {
    cat "$tmp/cpack.log"
    echo "FAIL: cpack -G DEB"
    exit 1
}
deb=$(ls "$tmp"/cpack/imgrecon_*.deb)
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$tmp/contents"
expected=(
    /usr/bin/imgrecon
    /usr/bin/imgrecon-emulator
    /usr/lib/systemd/system/imgrecon.service
    /usr/lib/systemd/system/imgrecon@.service
    /usr/share/man/man1/imgrecon.1
    /usr/share/man/man1/imgrecon-emulator.1
    /usr/share/man/man5/imgrecon.yaml.5
    /usr/share/bash-completion/completions/imgrecon
    /usr/share/bash-completion/completions/imgrecon-emulator
    /usr/share/zsh/vendor-completions/_imgrecon
    /usr/share/doc/imgrecon/examples/config.yaml
)
for path in "${expected[@]}"; do
    grep -qxF "$path" "$tmp/contents" || fail "the .deb lacks $path"
done
grep -q '^/usr/local' "$tmp/contents" && fail "the .deb installs under /usr/local"
grep -q libuv1 <<<"$(dpkg-deb -f "$deb" Depends)" || fail "Depends lacks libuv1 (shlibdeps)"
# The daemon speaks the notify protocol itself (reconcile/daemon/rec_notify.c): no libsystemd.
grep -q libsystemd <<<"$(dpkg-deb -f "$deb" Depends)" && fail "Depends names libsystemd"

root=$tmp/root
dpkg-deb -x "$deb" "$root"
out=$("$root/usr/bin/imgrecon" version) || fail "imgrecon version from the .deb exits $?"
[[ $out == "imgrecon "[0-9]* ]] || fail "imgrecon version printed '$out'"
"$root/usr/bin/imgrecon-emulator" --help >"$tmp/emu-help" ||
    fail "imgrecon-emulator --help exits $?"
grep -q '^usage: imgrecon-emulator' "$tmp/emu-help" || fail "imgrecon-emulator --help: no usage"

# The units run the packaged binary and keep the hardening the daemon needs.
for unit in imgrecon.service imgrecon@.service; do
    f=$root/usr/lib/systemd/system/$unit
    grep -q '^ExecStart=/usr/bin/imgrecon run ' "$f" ||
        fail "$unit: ExecStart is not /usr/bin/imgrecon"
    grep -q '@[A-Z_]*@' "$f" && fail "$unit: an unreplaced @VARIABLE@"
    for line in LimitCORE=0 MemoryDenyWriteExecute=yes NoNewPrivileges=yes \
        'LoadCredential=webhook_secret:imgrecon-' \
        'LoadCredential=access_key_secret:'; do
        grep -q "^$line" "$f" || fail "$unit lacks $line"
    done
done
if command -v systemd-analyze >/dev/null; then
    # The unit's own syntax: verify also wants the binary, so a copy runs the extracted one.
    # Any message naming the unit file (such as "Invalid syntax, ignoring") is a failure, even
    # though verify exits 0 for those.
    sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" \
        "$root/usr/lib/systemd/system/imgrecon.service" >"$tmp/imgrecon.service"
    systemd-analyze verify "$tmp/imgrecon.service" >"$tmp/verify" 2>&1 || true
    if grep -q "^$tmp/imgrecon.service:" "$tmp/verify"; then
        cat "$tmp/verify"
        fail "systemd-analyze verify imgrecon.service"
    fi
fi

# ---- man pages ----
for page in "$root"/usr/share/man/man1/*.1 "$root"/usr/share/man/man5/*.5; do
    warn=$(MANWIDTH=80 man -l --warnings "$page" 2>&1 >/dev/null) || fail "man -l $page exits $?"
    [ -z "$warn" ] || fail "man -l --warnings $(basename "$page"): $warn"
    warn=$(groff -ww -z -man "$page" 2>&1) || fail "groff $page exits $?"
    [ -z "$warn" ] || fail "groff -ww $(basename "$page"): $warn"
done
# The pages' roff source with \- as -, so an option is searched as it is typed.
sed 's/\\-/-/g' "$root/usr/share/man/man1/imgrecon.1" >"$tmp/imgrecon.txt"
sed 's/\\-/-/g' "$root/usr/share/man/man1/imgrecon-emulator.1" >"$tmp/emu.txt"
commands=$("$root/usr/bin/imgrecon" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$commands" ] || fail "imgrecon --help lists no commands"
for cmd in $commands; do
    grep -qx ".B $cmd" "$tmp/imgrecon.txt" || fail "imgrecon(1) does not describe the command $cmd"
    for opt in $("$root/usr/bin/imgrecon" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -qF -- "$opt" "$tmp/imgrecon.txt" || fail "imgrecon(1) lacks $cmd's option $opt"
    done
done
# Every flag in the emulator's option table is in its --help and its man page.
emu_flags=$(sed -n 's/^ *{"\([a-z-]*\)", *\(no\|required\)_argument.*/--\1/p' \
    "$src/tests/emulator/main.c")
[ "$(echo "$emu_flags" | wc -l)" -ge 10 ] || fail "could not read the emulator's option table"
for opt in $emu_flags; do
    grep -qF -- "$opt" "$tmp/emu-help" || fail "imgrecon-emulator --help lacks $opt"
    grep -qF -- "$opt" "$tmp/emu.txt" || fail "imgrecon-emulator(1) lacks $opt"
done

# ---- completions ----
bash_file=$root/usr/share/bash-completion/completions/imgrecon
complete_words() { # completes the words "$@" (the last one partial) with the packaged script
    PATH="$root/usr/bin:$PATH" bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        if [ "$1" = imgrecon-emulator ]; then _imgrecon_emulator; else _imgrecon; fi
        printf "%s\n" "${COMPREPLY[@]}"' _ "$bash_file" "$@"
}
[ "$(complete_words imgrecon sta)" = status ] || fail "bash: 'sta' does not complete to status"
for cmd in $commands; do
    grep -qx "$cmd" <<<"$(complete_words imgrecon "${cmd:0:2}")" ||
        fail "bash: '${cmd:0:2}' does not offer $cmd"
done
[ "$(complete_words imgrecon plan --detail)" = --detailed-exitcode ] ||
    fail "bash: 'plan --detail' does not complete to --detailed-exitcode"
grep -qx -- --endpoint <<<"$(complete_words imgrecon status --)" &&
    fail "bash: status offers --endpoint"
[ "$(complete_words imgrecon run --log-format j)" = json ] || fail "bash: --log-format values"
[ "$(complete_words imgrecon-emulator --fault)" = --fault-rate ] || fail "bash: emulator flags"
# zsh: the completion system's builtins and helpers are replaced by functions that print what
# they are offered, and _imgrecon runs with words/CURRENT set as a completion widget would.
zsh_file=$root/usr/share/zsh/vendor-completions/_imgrecon
zcomplete() { # service word... (the last one partial)
    PATH="$root/usr/bin:$PATH" zsh -f -c '
        compadd() { local a; for a in "$@"; do [[ $a == -- ]] || print -r -- $a; done }
        _describe() { print -rl -- ${(P)${4}%%:*} }
        _files() { print -r -- "<files>" }
        _directories() { print -r -- "<dirs>" }
        _message() { print -r -- "<message>" }
        file=$1; service=$2; shift 2
        words=("$@"); CURRENT=$#; PREFIX=${words[-1]}
        source $file' _ "$zsh_file" "$@"
}
if command -v zsh >/dev/null; then
    zsh -n "$zsh_file" || fail "zsh cannot parse _imgrecon"
    for cmd in $commands; do
        grep -qx "$cmd" <<<"$(zcomplete imgrecon imgrecon "")" || fail "zsh: commands lack $cmd"
    done
    grep -qx -- --detailed-exitcode <<<"$(zcomplete imgrecon imgrecon plan --)" ||
        fail "zsh: plan options"
    grep -qx -- --endpoint <<<"$(zcomplete imgrecon imgrecon status --)" &&
        fail "zsh: status offers --endpoint"
    [ "$(zcomplete imgrecon imgrecon api "")" = "$(printf 'swas\necs')" ] ||
        fail "zsh: api products"
    grep -qx -- --clock-skew <<<"$(zcomplete imgrecon-emulator imgrecon-emulator --)" ||
        fail "zsh: emulator flags"
else
    echo "note: zsh is not installed; _imgrecon was not checked"
fi

# ---- cmake --install into a prefix ----
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"
    fail "cmake --install"
}
"$prefix/bin/imgrecon" version >/dev/null || fail "installed imgrecon version"
grep -q "^ExecStart=$prefix/bin/imgrecon run " "$prefix/lib/systemd/system/imgrecon.service" ||
    fail "cmake --install: ExecStart does not point at $prefix/bin"
[ -f "$prefix/share/zsh/site-functions/_imgrecon" ] || fail "cmake --install: no zsh completion"
[ -f "$prefix/share/man/man5/imgrecon.yaml.5" ] || fail "cmake --install: no imgrecon.yaml(5)"

if [ "$fails" -gt 0 ]; then
    echo "$fails packaging check(s) failed"
    exit 1
fi
echo "packaging: all checks passed ($deb)"
