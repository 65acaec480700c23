# fish completion for unitctl.
#
# Install: copy to ~/.config/fish/completions/unitctl.fish (one user) or
# /usr/share/fish/vendor_completions.d/unitctl.fish (everyone).
#
# Not the raw output of `_UNITCTL_COMPLETE=fish_source unitctl`: the script
# that click 8.4.0 generates does not parse (pallets/click#3502). This one
# speaks the same protocol with `unitctl` and reads both reply formats:
# click 8.4 prints three lines per candidate (type, value, help or "_"),
# older clicks one line "type,value<TAB>help".

function __unitctl_complete
    set -l reply (env _UNITCTL_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) unitctl 2>/dev/null)
    set -l n (count $reply)
    set -l i 1
    while test $i -le $n
        set -l type $reply[$i]
        set -l value
        set -l help _
        if contains -- $type plain dir file; and test $i -lt $n
            set value $reply[(math $i + 1)]
            if test (math $i + 2) -le $n
                set help $reply[(math $i + 2)]
            end
            set i (math $i + 3)
        else
            set -l parts (string split -m 1 , -- $type)
            set type $parts[1]
            set -l rest (string split -m 1 \t -- $parts[2])
            set value $rest[1]
            if set -q rest[2]
                set help $rest[2]
            end
            set i (math $i + 1)
        end
        switch $type
            case dir
                __fish_complete_directories $value
            case file
                __fish_complete_path $value
            case plain
                if test "$help" != _
                    printf '%s\t%s\n' $value $help
                else
                    printf '%s\n' $value
                end
        end
    end
end

complete --command unitctl --no-files --arguments '(__unitctl_complete)'
