# Sourced by scripts/setup-python.sh and scripts/setup-ray.sh: a pinned Python venv, built anew.
#
#   venv_build VENV PYTHON REQUIREMENTS CONSTRAINTS
#
# Removes VENV, creates it with PYTHON and installs REQUIREMENTS (one pin a line) under
# CONSTRAINTS with pip, wheels only. Output goes to stderr; the caller checks the install and
# writes its marker file last (a venv cannot be moved into place atomically, since its scripts
# name their own path; the marker written last plays that part).
venv_build() {
    local venv="$1" python="$2" requirements="$3" constraints="$4" work
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    echo "creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv" >&2
    work="$(mktemp -d)"
    printf '%s\n' "$requirements" >"$work/requirements.txt"
    printf '%s\n' "$constraints" >"$work/constraints.txt"
    echo "installing $(echo "$requirements" | tr '\n' ' ')(wheels only)" >&2
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --only-binary :all: \
        -r "$work/requirements.txt" -c "$work/constraints.txt" >&2; then
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work"
}
