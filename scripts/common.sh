# Shared by the scripts: workspace root, and installing what a fresh Debian machine lacks.
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

need_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || {
        echo "cargo not found: install a Rust toolchain (rustup, Rust >= 1.87) first" >&2
        exit 1
    }
}

# apt_install PACKAGE... : installs the Debian packages that are not installed yet.
apt_install() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -q >&2
    # shellcheck disable=SC2086
    $sudo_cmd apt-get install -y -q $missing >&2
}
