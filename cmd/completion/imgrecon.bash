# bash completion for imgrecon and imgrecon-emulator (installed as
# share/bash-completion/completions/imgrecon and .../imgrecon-emulator).
# The commands and each command's options are read from the program's own --help, so the
# completion follows the binary it completes and needs no list of its own to keep in step.

# Prints the long options (--name) that "$@ --help" lists, one per line.
_imgrecon_help_options()
{
    "$@" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u
}

# Completes the value of an option that takes one, or returns 1 when prev takes none.
_imgrecon_option_value()
{
    local prev=$1 cur=$2
    case $prev in
    -c | --config | --out | --fixture | --journal | --port-file)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    -f | --file)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    --state-dir)
        COMPREPLY=($(compgen -d -- "$cur")) ;;
    --log-format)
        COMPREPLY=($(compgen -W 'text json' -- "$cur")) ;;
    --method)
        COMPREPLY=($(compgen -W 'GET POST' -- "$cur")) ;;
    --endpoint | --profile | --rate-limit | --interval | --region | --listen | --create-delay | \
        --list-lag | --fault-rate | --seed | --clock-skew)
        COMPREPLY=() ;;
    *)
        return 1 ;;
    esac
    return 0
}

_imgrecon()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        local cmds
        cmds=$("$prog" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
        COMPREPLY=($(compgen -W "$cmds help --help --version" -- "$cur"))
        return 0
    fi
    _imgrecon_option_value "$prev" "$cur" && return 0
    local cmd=${COMP_WORDS[1]}
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_imgrecon_help_options "$prog" "$cmd")" -- "$cur"))
        return 0
    fi
    case $cmd in
    api)
        if ((COMP_CWORD == 2)); then
            COMPREPLY=($(compgen -W 'swas ecs' -- "$cur"))
        fi ;;
    apply | validate | plan | run)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}

_imgrecon_emulator()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    _imgrecon_option_value "$prev" "$cur" && return 0
    COMPREPLY=($(compgen -W "$(_imgrecon_help_options "${COMP_WORDS[0]}")" -- "$cur"))
    return 0
}

complete -o filenames -F _imgrecon imgrecon
complete -o filenames -F _imgrecon_emulator imgrecon-emulator
