# bash completion for hcr (make install puts it in
# $(PREFIX)/share/bash-completion/completions/hcr; or source it).
# The option lists are each command's --help; tests/test_install.sh checks
# that they stay the same.

_hcr_commands="train eval summary data report show predict read serve help"
_hcr_datasets="mnist fashion-mnist kmnist emnist-letters emnist-balanced emnist-digits emnist-byclass idx:"

_hcr_options() {
    case $1 in
    train) echo "--dataset --arch --epochs --batch-size --lr --lr-schedule --seed --shift --flip
                 --threads --val-split --limit --data --out --history --no-report --resume
                 --no-checkpoint -q --quiet -h --help" ;;
    eval) echo "--dataset --data --limit --threads --json -h --help" ;;
    summary) echo "--arch --classes --size -h --help" ;;
    data) echo "--dir --json -h --help" ;;
    report) echo "--dataset --data --out --threads -h --help" ;;
    show) echo "--dataset --data -n --split --start -h --help" ;;
    predict) echo "-k --min-confidence --json --dump-preprocessed --raw -h --help" ;;
    read) echo "--json --min-confidence --dump-preprocessed --eval --dataset --data --count
                --digits --seed --save-examples --verbose -h --help" ;;
    serve) echo "--host --port --threads --max-body --max-connections --timeout -q --quiet -h --help" ;;
    esac
}

# COMPREPLY=(the lines "$@" prints), a file name with spaces kept whole;
# with -a added to those already there
_hcr_reply() {
    if [ "$1" = -a ]; then
        shift
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <("$@")
    else
        mapfile -t COMPREPLY < <("$@")
    fi
}

# options followed by a value
_hcr_valued="--dataset --arch --epochs --batch-size --lr --lr-schedule --seed --shift --threads
             --val-split --limit --data --out --history --classes --size --dir -n --split --start -k
             --min-confidence --dump-preprocessed --count --digits --save-examples --host --port
             --max-body --max-connections --timeout"

_hcr() {
    local cur prev cmd i w args=0
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    # the command (the first word after hcr that is not an option), and how
    # many arguments that are not options or their values come after it
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [ -z "$cmd" ]; then
            case $w in -*) ;; *) cmd=$w ;; esac
        elif [[ " ${_hcr_valued//$'\n'/ } " == *" $w "* ]]; then
            i=$((i + 1)) # skip the option's value
        elif [ "$w" = ":" ]; then
            i=$((i + 1)) # idx:DIR, split by bash at ':'
        else
            case $w in -* | = | "") ;; *) args=$((args + 1)) ;; esac
        fi
    done
    if [ -z "$cmd" ]; then
        _hcr_reply compgen -W "$_hcr_commands --help --version" -- "$cur"
        return
    fi

    # --resume=FILE (bash splits the word at '=')
    if [ "$prev" = "=" ] && [ "${COMP_WORDS[COMP_CWORD - 2]}" = --resume ]; then
        _hcr_reply compgen -f -- "$cur"
        return
    fi
    [ "$cur" = "=" ] && [ "$prev" = --resume ] && { _hcr_reply compgen -f -- ""; return; }

    # --dataset idx:DIR, which bash splits at ':' (COMP_WORDBREAKS)
    if [ "$prev" = ":" ] && [ "${COMP_WORDS[COMP_CWORD - 2]}" = idx ] &&
        [ "${COMP_WORDS[COMP_CWORD - 3]}" = --dataset ]; then
        _hcr_reply compgen -d -- "$cur"
        compopt -o nospace 2>/dev/null
        return
    fi
    if [ "$cur" = ":" ] && [ "$prev" = idx ]; then
        _hcr_reply compgen -d -- ""
        compopt -o nospace 2>/dev/null
        return
    fi

    # the value of an option
    case $prev in
    --dataset)
        case $cur in
        idx:*) # idx:DIR: a folder
            local d
            while IFS= read -r d; do COMPREPLY+=("idx:$d/"); done < <(compgen -d -- "${cur#idx:}")
            compopt -o nospace 2>/dev/null ;;
        *) _hcr_reply compgen -W "$_hcr_datasets" -- "$cur"
           [ "${COMPREPLY[0]-}" = "idx:" ] && compopt -o nospace 2>/dev/null ;;
        esac
        return ;;
    --arch) _hcr_reply compgen -W "default wide wide-bn" -- "$cur"; return ;;
    --lr-schedule) _hcr_reply compgen -W "constant cosine" -- "$cur"; return ;;
    --split) _hcr_reply compgen -W "train test" -- "$cur"; return ;;
    --data | --dir | --save-examples) _hcr_reply compgen -d -- "$cur"; return ;;
    --out | --history | --dump-preprocessed) _hcr_reply compgen -f -- "$cur"; return ;;
    esac
    [[ " ${_hcr_valued//$'\n'/ } " == *" $prev "* ]] && return # a number

    if [[ $cur == -* ]]; then
        _hcr_reply compgen -W "$(_hcr_options "$cmd")" -- "$cur"
        return
    fi

    case $cmd in
    help) [ "$args" -eq 0 ] && _hcr_reply compgen -W "${_hcr_commands% help}" -- "$cur" ;;
    data)
        if [ "$args" -eq 0 ]; then
            _hcr_reply compgen -W "list fetch where" -- "$cur"
        elif [ "$args" -eq 1 ] && [ "$prev" = fetch ]; then
            _hcr_reply compgen -W "${_hcr_datasets% idx:}" -- "$cur"
        fi ;;
    serve) # models, any number
        _hcr_reply compgen -f -X '!*.safetensors' -- "$cur"
        _hcr_reply -a compgen -d -- "$cur" ;;
    eval | summary | report | predict | read)
        if [ "$args" -eq 0 ]; then # the model
            _hcr_reply compgen -f -X '!*.safetensors' -- "$cur"
            _hcr_reply -a compgen -d -- "$cur"
        elif [ "$cmd" = predict ] || { [ "$cmd" = read ] && [ "$args" -eq 1 ]; }; then
            _hcr_reply compgen -f -- "$cur" # images
        fi ;;
    esac
}
complete -o filenames -F _hcr hcr
